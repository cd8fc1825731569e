//! Proof through the real MMU that a hot-added RAM range's memmap works, in two sizes.
//!
//! - [`sample`], on the hot path before the range is reported online: the first and last
//!   data page of every section slice. Its cost is bounded by the number of sections, not
//!   pages: two struct pages per section (at most 16 per GiB with 128 MiB sections).
//! - [`verify`], after the `online` record (once the sources have no event left, or
//!   before the next shell command) and on demand (`verify` in the shell): every struct page of the range — data pages online in the
//!   movable zone, parts kept offline (virtio-mem sub-blocks not plugged) marked offline,
//!   self-hosted memmap pages reserved — reached at its vmemmap address,
//!   written and read back, `page_to_pfn(pfn_to_page(pfn)) == pfn`; and every leaf that
//!   backs the range's memmap, found by a software walk, from the source the engine chose:
//!   the block's own altmap storage (memmap_on_memory) or RAM outside the range.

use core::ops::Range;

use crate::mm::addr::{PAGE_SIZE, Pfn};
use crate::mm::arch::MmArch;
use crate::mm::live::{LiveMemmap, LiveMm};
use crate::mm::memmap::MemmapAccess;
use crate::mm::page::{Page, PageFlags, Zone};
use crate::mm::sparse::chunks;
use crate::mm::vmemmap::VmemmapArch;

use super::engine::{Block, HotRange};

/// What a check of a hot-added range found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RamReport {
    /// Data (online) pages checked.
    pub pages: u64,
    /// Data pages kept offline (`PageOffline`) checked.
    pub offline: u64,
    /// Self-hosted memmap pages checked.
    pub hosted: u64,
    /// Pages whose write/read-back through the vmemmap failed.
    pub rw_failures: u64,
    /// Pages whose round trip or stored state was wrong.
    pub state_failures: u64,
    /// Leaves backing the range's memmap.
    pub leaves: u64,
    /// Of those, leaves inside their block's altmap storage.
    pub leaves_altmap: u64,
    /// Of those, leaves in RAM outside the range.
    pub leaves_ram: u64,
    /// Leaves from a source the engine did not choose for them.
    pub leaves_wrong: u64,
    /// Memmap addresses the software walk could not translate.
    pub walk_faults: u64,
}

impl RamReport {
    /// Every page and every leaf passed (a full check also needs at least one leaf).
    pub fn passed(&self) -> bool {
        self.rw_failures == 0
            && self.state_failures == 0
            && self.leaves_wrong == 0
            && self.walk_faults == 0
    }
}

/// The bounded check on the hot path: the first and last page of each section slice of
/// every online part and every part kept offline, of every block.
pub fn sample(memmap: &mut LiveMemmap, arch: &MmArch, blocks: &[Block]) -> RamReport {
    let mut report = RamReport::default();
    for block in blocks {
        let online = block.online_parts().map(|p| (p, true));
        let offline = block.offline.iter().map(|p| (p.clone(), false));
        for (part, is_online) in online.chain(offline) {
            if part.start >= part.end {
                continue;
            }
            let expected = if is_online {
                is_online_page
            } else {
                is_offline_page
            };
            for chunk in chunks(arch, part.start, part.end) {
                let last = chunk.first.add(chunk.nr_pages - 1);
                for pfn in [chunk.first, last] {
                    if is_online {
                        report.pages += 1;
                    } else {
                        report.offline += 1;
                    }
                    check_page(memmap, arch, pfn, expected, &mut report);
                }
            }
        }
    }
    report
}

/// The full check of `hot` (see the module header).
pub fn verify<F: VmemmapArch>(mm: &mut LiveMm<F>, hot: &HotRange) -> RamReport {
    let mut report = RamReport::default();
    let arch = mm.arch();
    for block in &hot.blocks {
        let hosted = block.pfns.start..block.data().start;
        report.hosted += check_range(mm.memmap_mut(), arch, hosted, is_hosted_page, &mut report);
        for part in block.online_parts() {
            report.pages += check_range(mm.memmap_mut(), arch, part, is_online_page, &mut report);
        }
        for part in &block.offline {
            report.offline += check_range(
                mm.memmap_mut(),
                arch,
                part.clone(),
                is_offline_page,
                &mut report,
            );
        }
        check_leaves(mm, block, &hot.range, &mut report);
    }
    report
}

/// Checks every struct page of `range`, one section slice at a time; returns how many.
fn check_range(
    memmap: &mut LiveMemmap,
    arch: &MmArch,
    range: Range<Pfn>,
    expected: fn(&Page) -> bool,
    report: &mut RamReport,
) -> u64 {
    if range.start >= range.end {
        return 0;
    }
    for chunk in chunks(arch, range.start, range.end) {
        let pages = memmap.pages_mut(chunk.first, chunk.nr_pages as usize);
        for (pfn, page) in (chunk.first.0..).zip(pages.iter_mut()) {
            check_one(arch, Pfn(pfn), page, expected, report);
        }
    }
    range.end.0 - range.start.0
}

fn is_online_page(page: &Page) -> bool {
    page.has(PageFlags::INITIALIZED | PageFlags::ONLINE) && page.zone() == Zone::Movable
}

fn is_offline_page(page: &Page) -> bool {
    page.has(PageFlags::INITIALIZED | PageFlags::OFFLINE)
        && !page.has(PageFlags::ONLINE)
        && page.zone() == Zone::Movable
}

fn is_hosted_page(page: &Page) -> bool {
    page.has(PageFlags::INITIALIZED | PageFlags::RESERVED | PageFlags::VMEMMAP_SELF_HOSTED)
        && !page.has(PageFlags::ONLINE)
}

/// One struct page: address round trip, section, the expected state, and a volatile
/// write and read-back of its private word (restored afterwards).
fn check_page(
    memmap: &mut LiveMemmap,
    arch: &MmArch,
    pfn: Pfn,
    expected: fn(&Page) -> bool,
    report: &mut RamReport,
) {
    check_one(arch, pfn, memmap.page_mut(pfn), expected, report);
}

fn check_one(
    arch: &MmArch,
    pfn: Pfn,
    page: &mut Page,
    expected: fn(&Page) -> bool,
    report: &mut RamReport,
) {
    let va = arch.pfn_to_page(pfn);
    if arch.page_to_pfn(va) != pfn
        || core::ptr::from_ref(page) as u64 != va.0
        || page.section() != arch.section_nr(pfn)
        || !expected(page)
    {
        report.state_failures += 1;
    }
    let pattern = pfn.0 ^ 0x5a5a_a5a5_f0f0_0f0f;
    let saved = page.private;
    // Volatile, so the store and the load really go through the vmemmap mapping.
    // SAFETY: `page.private` is a valid, aligned u64 inside a mapped struct page.
    let back = unsafe {
        core::ptr::write_volatile(&raw mut page.private, pattern);
        core::ptr::read_volatile(&raw const page.private)
    };
    page.private = saved;
    if back != pattern {
        report.rw_failures += 1;
    }
}

/// Walks the leaves behind `block`'s memmap and sorts them by source.
fn check_leaves<F: VmemmapArch>(
    mm: &LiveMm<F>,
    block: &Block,
    range: &Range<u64>,
    report: &mut RamReport,
) {
    let arch = mm.arch();
    let storage: Option<Range<u64>> = block.altmap.as_ref().map(|a| {
        let first = a.base_pfn + a.reserve;
        first * PAGE_SIZE..(first + a.free) * PAGE_SIZE
    });
    let mut va = arch.pfn_to_page(block.pfns.start).0;
    let end = arch.pfn_to_page(block.pfns.end).0;
    while va < end {
        match mm.translate(va) {
            Ok(t) => {
                report.leaves += 1;
                let leaf = t.frame.0..t.frame.0 + t.leaf_bytes;
                let inside = |r: &Range<u64>| r.start <= leaf.start && leaf.end <= r.end;
                let overlaps = leaf.start < range.end && range.start < leaf.end;
                match &storage {
                    Some(s) if inside(s) => report.leaves_altmap += 1,
                    None if !overlaps => report.leaves_ram += 1,
                    _ => report.leaves_wrong += 1,
                }
                va = (va / t.leaf_bytes + 1) * t.leaf_bytes;
            }
            Err(_) => {
                report.walk_faults += 1;
                va += PAGE_SIZE;
            }
        }
    }
}
