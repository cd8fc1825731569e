//! The x86_64 vmemmap, as Linux's `arch/x86/mm/init_64.c`: the memory-model constants
//! and `vmemmap_populate` / `vmemmap_free` over the 4-level format (linux-mm.md §3.1).
//!
//! - A sub-section range (less than one section's 2 MiB memmap) takes 4 KiB pages from
//!   RAM and ignores the altmap (`vmemmap_populate_basepages(.., NULL)`).
//! - With PSE, a whole section takes one 2 MiB PMD leaf through the kernel's
//!   `vmemmap_populate_hugepages`, from the altmap if given (no fallback then), else
//!   from RAM, falling back to 4 KiB pages.
//! - Without PSE an altmap is refused ("no cpu support for altmap allocations");
//!   without one, 4 KiB pages from RAM.
//! - Page tables always come from RAM; `vmemmap_free` is `remove_pagetable`.
//!
//! The 2017 RFC's x86 code took the same leaves, so `mm.semantics=rfc-2017` changes
//! nothing here.

use kernel::mm::PhysAddr;
use kernel::mm::arch::MmArch;
use kernel::mm::error::MmError;
use kernel::mm::pgtable::Features;
use kernel::mm::phys::{FrameSource, PhysMem};
use kernel::mm::vmemmap::{Block, HugePmd, Populate, Remove, Trace, VmemmapArch};

use crate::paging::X86_64Paging;

/// x86_64 with 4-level paging: 128 MiB sections, 46 physical bits, Linux's fixed
/// `__VMEMMAP_BASE_L4`, 2 MiB PMD leaves in 4 KiB tables, 2 MiB pageblocks.
pub const MM: MmArch = MmArch {
    name: "x86_64",
    section_shift: 27,
    max_phys_bits: 46,
    vmemmap_base: 0xffff_ea00_0000_0000,
    vmemmap_leaf_shift: 21,
    pte_table_bytes: 4096,
    leaf_table_bytes: 4096,
    leaf_table_span_shift: 30,
    pageblock_order: 9,
};

impl VmemmapArch for X86_64Paging {
    const MM: &'static MmArch = &MM;

    fn vmemmap_populate<M: PhysMem + FrameSource, T: Trace>(
        call: &mut Populate<'_, Self, M, T>,
        start: u64,
        end: u64,
    ) -> Result<(), MmError> {
        if call.sub_section(start, end) {
            return call.populate_basepages_without_altmap(start, end);
        }
        if call.features().contains(Features::PSE) {
            return call.populate_hugepages(start, end);
        }
        if call.has_altmap() {
            log::error!("vmemmap: no cpu support for altmap allocations");
            return Err(MmError::NoHugeSupportForAltmap);
        }
        call.populate_basepages(start, end)
    }

    fn vmemmap_free<M: PhysMem + FrameSource, T: Trace>(
        call: &mut Remove<'_, Self, M, T>,
        start: u64,
        end: u64,
    ) -> Result<(), MmError> {
        call.remove_pagetable(start, end)
    }

    /// A span under one section's memmap is mapped from RAM base pages, whatever the
    /// altmap (the first branch of `vmemmap_populate` above).
    fn altmap_backs(start: u64, end: u64) -> bool {
        end - start >= Self::MM.section_memmap_bytes()
    }
}

impl HugePmd for X86_64Paging {
    /// A `PAGE_KERNEL_LARGE` PMD; the pages of it the range uses are marked (Linux's
    /// `vmemmap_use_new_sub_pmd` for a range that does not cover the PMD).
    fn vmemmap_set_pmd<M: PhysMem + FrameSource, T: Trace>(
        call: &mut Populate<'_, Self, M, T>,
        pmd: PhysAddr,
        block: Block,
        addr: u64,
        next: u64,
    ) {
        call.set_huge_leaf(pmd, block, addr, next);
    }

    /// A PMD leaf is reused and gains the range's pages (`vmemmap_use_sub_pmd`); a PTE
    /// table sends the range to base pages.
    fn vmemmap_check_pmd<M: PhysMem + FrameSource, T: Trace>(
        call: &mut Populate<'_, Self, M, T>,
        pmd: PhysAddr,
        addr: u64,
        next: u64,
    ) -> Result<bool, MmError> {
        call.reuse_pmd_leaf(pmd, addr, next)
    }
}

#[cfg(test)]
mod tests {
    use kernel::mm::error::MmError;
    use kernel::mm::pgtable::Features;
    use kernel::mm::sim::suite::{BasePagesWithAltmap, NvdimmFigures, Profile};
    use kernel::mm::vmemmap::Source;

    use super::*;

    const PSE: Features = Features::PSE.union(Features::NO_EXECUTE);
    const NO_PSE: Features = Features::NO_EXECUTE;

    /// Linux's x86_64 figures.
    const PROFILE: Profile = Profile {
        features: &[PSE, NO_PSE],
        upper_tables: 2, // PDPT and PD
        pte_tables_per_section: 1,
        subsection_pieces: 4,
        subsection_takes_base_pages: true,
        subsection_altmap_source: Source::Ram,
        base_pages_with_altmap: BasePagesWithAltmap::Refused(MmError::NoHugeSupportForAltmap),
        huge_altmap_failure_falls_back: false,
        altmap_short_by: 512,
        exhausted: MmError::AltmapExhausted {
            requested: 512,
            padding: 0,
            nr_free: 0,
        },
        nvdimm: |n| NvdimmFigures {
            dataoff: (2 * n + 2) << 20,
            reserve: 2,
            free: 512 * (n + 1) - 2,
            align: 510,
            alloc: 512 * n,
            nr_free: 0,
        },
        rfc_2017_base_pages_from_ram: false,
    };

    kernel::vmemmap_suite!(X86_64Paging, PROFILE);

    #[test]
    fn constants_are_linuxs_and_the_kernels_test_model() {
        assert_eq!(MM.subsections_per_section(), 64);
        assert_eq!(MM.section_memmap_bytes(), 2 << 20, "one PMD per section");
        assert_eq!(MM.pfn_to_page(kernel::mm::Pfn(1)).0, 0xffff_ea00_0000_0040);
        let model = kernel::mm::sim::models::SECTIONS_128M_LEAF_2M;
        assert!(kernel::mm::sim::models::same_model(&MM, &model));
    }

    #[test]
    fn readme_cost_table_rows_are_this_arch() {
        let rows = kernel::mm::cost::render_cost_table(&[&MM]);
        let readme = include_str!("../../../README.md");
        for row in rows.lines().skip(2) {
            assert!(readme.contains(row), "README lacks {row}");
        }
    }
}
