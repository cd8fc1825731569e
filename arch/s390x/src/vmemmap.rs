//! The s390x vmemmap, as Linux's `arch/s390/mm/vmem.c`: the memory-model constants and
//! s390's own walker over its region-first, region-second, region-third, segment and
//! page tables — `modify_pagetable` and its per-level helpers, for adding — with
//! `vmemmap_free` as `remove_pagetable` (linux-mm.md §3.3).
//!
//! - Region and segment tables (16 KiB) and page tables (2 KiB) always come from RAM.
//! - An empty segment with EDAT-1 takes a whole 1 MiB frame, even if the range uses only
//!   part of it ("otherwise we would need page tables, since vmemmap_populate gets called
//!   for each section separately"); if that allocation fails, or without EDAT-1, a page
//!   table plus 4 KiB pages. Both leaf sizes go through one
//!   `vmemmap_alloc_block_buf(size, altmap)`: from the altmap when one is given.
//! - Under hotmem a segment only partly in the range takes 4 KiB pages when an altmap is
//!   given, so no altmap frame backs struct pages of another range.
//! - `mm.semantics=rfc-2017` is the walker of the July 2017 RFC "mm, arch: unify
//!   vmemmap_populate altmap handling": its segment path passed the altmap, its PTE path
//!   still called `vmemmap_alloc_block(PAGE_SIZE)` — RAM, the altmap ignored. Without
//!   EDAT-1 (always under QEMU TCG) every leaf then comes from RAM and `altmap.alloc`
//!   stays 0: the gap Gerald Schaefer pointed at, reproduced.

use kernel::mm::addr::{PAGE_SIZE, PhysAddr};
use kernel::mm::arch::MmArch;
use kernel::mm::error::MmError;
use kernel::mm::pgtable::{Entry, PageTableFormat};
use kernel::mm::phys::{FrameSource, PhysMem};
use kernel::mm::vmemmap::{Block, Populate, Remove, Trace, VmemmapArch, conflict};

use crate::paging::S390xPaging;

/// s390x with a region-first rooted ASCE: 256 MiB sections, 1 MiB segment leaves in
/// 16 KiB segment tables, 2 KiB page tables, 1 MiB pageblocks. The vmemmap starts at
/// 4 TiB (0x400_0000_0000, proven on QEMU per s390x.md §4), above any identity map we
/// build, with a 1 TiB window (46 physical bits).
pub const MM: MmArch = MmArch {
    name: "s390x",
    section_shift: 28,
    max_phys_bits: 46,
    vmemmap_base: 0x400_0000_0000,
    vmemmap_leaf_shift: 20,
    pte_table_bytes: 2048,
    leaf_table_bytes: 16384,
    leaf_table_span_shift: 31,
    pageblock_order: 8,
};

const REGION_FIRST: usize = 0;
const SEGMENT: usize = 3;
const PAGE: usize = 4;
const SEGMENT_BYTES: u64 = 1 << 20;

impl VmemmapArch for S390xPaging {
    const MM: &'static MmArch = &MM;

    /// `vmemmap_populate` = `add_pagetable(start, end, direct = false, altmap)`; the
    /// caller's undo log plays Linux's `remove_pagetable` on failure.
    fn vmemmap_populate<M: PhysMem + FrameSource, T: Trace>(
        call: &mut Populate<'_, Self, M, T>,
        start: u64,
        end: u64,
    ) -> Result<(), MmError> {
        let root = call.root();
        modify_region_table(call, REGION_FIRST, root, start, end)
    }

    fn vmemmap_free<M: PhysMem + FrameSource, T: Trace>(
        call: &mut Remove<'_, Self, M, T>,
        start: u64,
        end: u64,
    ) -> Result<(), MmError> {
        call.remove_pagetable(start, end)
    }
}

/// The end of the `level` entry holding `addr`, clipped to `end`.
fn entry_end(level: usize, addr: u64, end: u64) -> u64 {
    let span = S390xPaging::LEVELS[level].entry_span();
    (addr & !(span - 1))
        .checked_add(span)
        .map_or(end, |next| next.min(end))
}

/// `modify_p4d_table` / `modify_pud_table` (region-first to region-third): the table
/// below each entry, from RAM when missing, then the next level down.
fn modify_region_table<M: PhysMem + FrameSource, T: Trace>(
    call: &mut Populate<'_, S390xPaging, M, T>,
    level: usize,
    table: PhysAddr,
    start: u64,
    end: u64,
) -> Result<(), MmError> {
    let mut addr = start;
    while addr < end {
        let next = entry_end(level, addr, end);
        let (at, _) = call.entry(level, table, addr);
        let child = call.table(level, at, addr)?;
        if level + 1 == SEGMENT {
            modify_pmd_table(call, child, addr, next)?;
        } else {
            modify_region_table(call, level + 1, child, addr, next)?;
        }
        addr = next;
    }
    Ok(())
}

/// `modify_pmd_table` for the vmemmap: a 1 MiB frame per empty segment with EDAT-1, a
/// page table plus 4 KiB pages otherwise; an existing frame gains the range's pages
/// (`vmemmap_use_sub_pmd`), an existing page table gets its missing pages.
fn modify_pmd_table<M: PhysMem + FrameSource, T: Trace>(
    call: &mut Populate<'_, S390xPaging, M, T>,
    segment_table: PhysAddr,
    start: u64,
    end: u64,
) -> Result<(), MmError> {
    let mut addr = start;
    while addr < end {
        let next = entry_end(SEGMENT, addr, end);
        let (pmd, entry) = call.entry(SEGMENT, segment_table, addr);
        match entry {
            Entry::Empty => {
                if call.huge_available() && !call.altmap_crosses_boundary(addr, next) {
                    match call.alloc_block_buf(SEGMENT_BYTES) {
                        Ok(block) => {
                            call.set_huge_leaf(pmd, block, addr, next);
                            addr = next;
                            continue;
                        }
                        Err(error) => log::debug!(
                            "vmemmap: 1 MiB frame for {addr:#x} failed ({error}); using a page table"
                        ),
                    }
                }
                let page_table = call.table(SEGMENT, pmd, addr)?;
                modify_pte_table(call, page_table, addr, next)?;
            }
            Entry::Leaf { frame, attrs } => call.reuse_huge_leaf(frame, attrs, addr, next)?,
            Entry::Table(page_table) => modify_pte_table(call, page_table, addr, next)?,
            Entry::Malformed => return Err(conflict(addr, SEGMENT)),
        }
        addr = next;
    }
    Ok(())
}

/// `modify_pte_table` for the vmemmap: every empty entry gets a 4 KiB page.
fn modify_pte_table<M: PhysMem + FrameSource, T: Trace>(
    call: &mut Populate<'_, S390xPaging, M, T>,
    page_table: PhysAddr,
    start: u64,
    end: u64,
) -> Result<(), MmError> {
    for va in (start..end).step_by(PAGE_SIZE as usize) {
        let (pte, entry) = call.entry(PAGE, page_table, va);
        match entry {
            Entry::Leaf { .. } => {}
            Entry::Empty => {
                let block = alloc_pte_page(call)?;
                call.set_leaf(PAGE, pte, va, block);
            }
            Entry::Table(_) | Entry::Malformed => return Err(conflict(va, PAGE)),
        }
    }
    Ok(())
}

/// The 4 KiB page behind one PTE: `vmemmap_alloc_block_buf(PAGE_SIZE, altmap)` since
/// Linux v6.8; the 2017 RFC's `vmemmap_alloc_block(PAGE_SIZE)` (RAM) under `rfc-2017`.
fn alloc_pte_page<M: PhysMem + FrameSource, T: Trace>(
    call: &mut Populate<'_, S390xPaging, M, T>,
) -> Result<Block, MmError> {
    if call.semantics().rfc_2017() {
        call.alloc_block(PAGE_SIZE)
    } else {
        call.alloc_block_buf(PAGE_SIZE)
    }
}

#[cfg(test)]
mod tests {
    use kernel::mm::error::MmError;
    use kernel::mm::pgtable::Features;
    use kernel::mm::sim::suite::{BasePagesWithAltmap, NvdimmFigures, Profile};
    use kernel::mm::vmemmap::Source;

    use super::*;

    const EDAT1: Features = Features::EDAT1.union(Features::NO_EXECUTE);
    const NO_EDAT: Features = Features::NO_EXECUTE;

    /// Linux's s390x figures.
    const PROFILE: Profile = Profile {
        features: &[EDAT1, NO_EDAT],
        upper_tables: 3, // region-second, region-third, segment
        pte_tables_per_section: 4,
        subsection_pieces: 128,
        subsection_takes_base_pages: false,
        subsection_altmap_source: Source::Altmap,
        base_pages_with_altmap: BasePagesWithAltmap::FromAltmap,
        huge_altmap_failure_falls_back: true,
        altmap_short_by: 256,
        exhausted: MmError::AltmapExhausted {
            requested: 1,
            padding: 0,
            nr_free: 0,
        },
        nvdimm: |n| NvdimmFigures {
            dataoff: (4 * n + 2) << 20,
            reserve: 2,
            free: 256 * (4 * n + 2) - 2,
            align: 254,
            alloc: 1024 * n,
            nr_free: 256,
        },
        rfc_2017_base_pages_from_ram: true,
    };

    kernel::vmemmap_suite!(S390xPaging, PROFILE);

    #[test]
    fn constants_are_linuxs_and_the_kernels_test_model() {
        assert_eq!(MM.subsections_per_section(), 128);
        assert_eq!(MM.pages_per_subsection(), 512);
        assert_eq!(
            MM.section_memmap_bytes(),
            4 << 20,
            "four segments per section"
        );
        assert_eq!(MM.pfn_to_page(kernel::mm::Pfn(0x40000)).0, 0x400_0100_0000);
        let model = kernel::mm::sim::models::SECTIONS_256M_LEAF_1M;
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
