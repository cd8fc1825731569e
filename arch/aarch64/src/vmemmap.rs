//! The aarch64 vmemmap, as Linux's `arch/arm64/mm/mmu.c` with the 4 KiB granule: the
//! memory-model constants and `vmemmap_populate` / `vmemmap_free` over the stage-1
//! format (linux-mm.md §3.2).
//!
//! - A sub-section range (less than one section's 2 MiB memmap) takes 4 KiB pages, from
//!   the altmap when one is given (the 2025 fix: a block is never shared by two adds).
//! - A whole section takes one 2 MiB L2 block through the kernel's
//!   `vmemmap_populate_hugepages`, from the altmap if given (no fallback then), else from
//!   RAM, falling back to 4 KiB pages.
//! - Page tables always come from RAM; `vmemmap_free` is `unmap_hotplug_range` plus
//!   `free_empty_tables`, which the kernel's remove walk does in one pass.
//!
//! The 2017 RFC's arm64 code took the same leaves, so `mm.semantics=rfc-2017` changes
//! nothing here.

use kernel::mm::PhysAddr;
use kernel::mm::arch::MmArch;
use kernel::mm::error::MmError;
use kernel::mm::phys::{FrameSource, PhysMem};
use kernel::mm::vmemmap::{Block, HugePmd, Populate, Remove, Trace, VmemmapArch};

use crate::paging::Aarch64Paging;

/// aarch64, 4K granule, 48-bit VA: 128 MiB sections, 2 MiB L2 blocks in 4 KiB tables,
/// 2 MiB pageblocks. The vmemmap sits in the TTBR1 half at 0xffff_fc00_0000_0000 (L0
/// index 504), a 2 TiB window: 47 physical bits × 64 B per 4 KiB page. Unlike Linux it
/// is not biased by the start of DRAM, so `pfn_to_page(pfn) = base + 64·pfn` holds on
/// every arch.
pub const MM: MmArch = MmArch {
    name: "aarch64",
    section_shift: 27,
    max_phys_bits: 47,
    vmemmap_base: 0xffff_fc00_0000_0000,
    vmemmap_leaf_shift: 21,
    pte_table_bytes: 4096,
    leaf_table_bytes: 4096,
    leaf_table_span_shift: 30,
    pageblock_order: 9,
};

impl VmemmapArch for Aarch64Paging {
    const MM: &'static MmArch = &MM;

    fn vmemmap_populate<M: PhysMem + FrameSource, T: Trace>(
        call: &mut Populate<'_, Self, M, T>,
        start: u64,
        end: u64,
    ) -> Result<(), MmError> {
        if call.sub_section(start, end) || !call.huge_available() {
            return call.populate_basepages(start, end);
        }
        call.populate_hugepages(start, end)
    }

    fn vmemmap_free<M: PhysMem + FrameSource, T: Trace>(
        call: &mut Remove<'_, Self, M, T>,
        start: u64,
        end: u64,
    ) -> Result<(), MmError> {
        call.remove_pagetable(start, end)
    }
}

impl HugePmd for Aarch64Paging {
    /// `pmd_set_huge` with normal memory attributes. Linux keeps no record of which
    /// pages of a block are used (a block only ever backs a whole section here); the
    /// kernel's leaf book still notes them, so the remove walk knows when it is unused.
    fn vmemmap_set_pmd<M: PhysMem + FrameSource, T: Trace>(
        call: &mut Populate<'_, Self, M, T>,
        pmd: PhysAddr,
        block: Block,
        addr: u64,
        next: u64,
    ) {
        call.set_huge_leaf(pmd, block, addr, next);
    }

    /// `pmd_leaf`: an L2 block is kept; a table sends the range to base pages.
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

    /// Linux's arm64 (4K granule) figures.
    const PROFILE: Profile = Profile {
        features: &[Features::NO_EXECUTE],
        upper_tables: 2, // L1 and L2
        pte_tables_per_section: 1,
        subsection_pieces: 2,
        subsection_takes_base_pages: true,
        subsection_altmap_source: Source::Altmap,
        base_pages_with_altmap: BasePagesWithAltmap::FromAltmap,
        huge_altmap_failure_falls_back: false,
        altmap_short_by: 1,
        exhausted: MmError::AltmapExhausted {
            requested: 512,
            padding: 0,
            nr_free: 511,
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

    kernel::vmemmap_suite!(Aarch64Paging, PROFILE);

    #[test]
    fn constants_are_linuxs_and_the_kernels_test_model() {
        assert_eq!(MM.subsections_per_section(), 64);
        assert_eq!(
            MM.section_memmap_bytes(),
            2 << 20,
            "one L2 block per section"
        );
        assert_eq!(
            MM.page_to_pfn(kernel::mm::VirtAddr(0xffff_fc00_0000_1000)),
            kernel::mm::Pfn(64)
        );
        let model = kernel::mm::sim::models::SECTIONS_128M_LEAF_2M_47BIT;
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
