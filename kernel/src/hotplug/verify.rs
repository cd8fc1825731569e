//! Proof through the real MMU that a device range's memmap works: every data frame's
//! struct page is reached at its vmemmap address, written and read back, and
//! `page_to_pfn(pfn_to_page(pfn)) == pfn`; the leaves backing the memmap are found by a
//! software walk of the live tables and each must come from the source the arch's
//! populate policy chose for its span: the region's altmap storage, or RAM where the
//! policy maps a span under one section from RAM base pages (x86_64, as Linux's
//! `vmemmap_populate` → `vmemmap_populate_basepages(..., NULL)`). A leaf from the other
//! source fails the verification.

#[cfg(test)]
mod tests;

use core::ops::Range;

use crate::mm::addr::{PAGE_SIZE, Pfn, VirtAddr};
use crate::mm::arch::MmArch;
use crate::mm::live::LiveMm;
use crate::mm::memmap::MemmapAccess;
use crate::mm::page::{PageFlags, Zone};
use crate::mm::sparse::chunks;
use crate::mm::vmemmap::VmemmapArch;

use super::device::DeviceMemory;

/// What verification found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Data pages checked.
    pub pages: u64,
    /// Pages whose write/read-back through the vmemmap failed.
    pub rw_failures: u64,
    /// Pages whose `pfn_to_page`/`page_to_pfn` round trip or stored state was wrong.
    pub state_failures: u64,
    /// Leaves backing the memmap of the range.
    pub leaves: u64,
    /// Of those, leaves inside the altmap's storage (`[base + reserve, base + offset)`)
    /// where the policy chose the altmap.
    pub leaves_in_altmap: u64,
    /// Leaves in boot RAM where the policy chose RAM (a span under one section on x86_64).
    pub leaves_in_ram: u64,
    /// Leaves from the wrong source: outside the altmap storage where the policy chose
    /// the altmap, or not boot RAM where it chose RAM.
    pub leaves_elsewhere: u64,
    /// Memmap addresses the software walk could not translate.
    pub walk_faults: u64,
    /// 4 KiB pages of memmap mapped for the whole range (reserve and storage included):
    /// what Linux counts in `nr_memmap_pages` for the same add.
    pub memmap_pages: u64,
}

impl VerifyReport {
    /// Every page passed and every leaf came from the source its span's policy chose.
    pub fn passed(&self) -> bool {
        self.rw_failures == 0
            && self.state_failures == 0
            && self.walk_faults == 0
            && self.leaves_elsewhere == 0
            && self.leaves > 0
    }
}

/// Where the leaves of one span must come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeafSource {
    /// The region's altmap storage.
    Altmap,
    /// Boot RAM (the buddy allocator), the altmap ignored by the policy.
    Ram,
}

/// One leaf the walk found: its frame and size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FoundLeaf {
    /// Physical address of the leaf's frame.
    pub frame: u64,
    /// Bytes the leaf maps.
    pub bytes: u64,
}

/// How [`check_leaves`] sees the machine: the populate policy, the MMU and RAM.
pub trait LeafView {
    /// The source the populate policy chooses for the memmap span `[start, end)` of one
    /// section chunk, given an altmap.
    fn expected(&self, start: VirtAddr, end: VirtAddr) -> LeafSource;
    /// The leaf mapping vmemmap address `va`, or `None` when it is not mapped.
    fn leaf(&self, va: u64) -> Option<FoundLeaf>;
    /// Whether a frame is boot RAM.
    fn is_ram(&self, frame: u64) -> bool;
}

/// Verifies `device` (see the module header).
pub fn verify<F: VmemmapArch>(mm: &mut LiveMm<F>, device: &DeviceMemory) -> VerifyReport {
    let mut report = VerifyReport::default();
    check_pages(mm, device, &mut report);
    let arch = mm.arch();
    check_leaves(arch, &Live(mm), device, &mut report);
    report
}

fn check_pages<F: VmemmapArch>(
    mm: &mut LiveMm<F>,
    device: &DeviceMemory,
    report: &mut VerifyReport,
) {
    let arch = mm.arch();
    let pgmap = u64::from(device.region_id) + 1;
    let memmap = mm.memmap_mut();
    for pfn in device.data_pfns().start.0..device.data_pfns().end.0 {
        let pfn = Pfn(pfn);
        report.pages += 1;
        let va = arch.pfn_to_page(pfn);
        let page = memmap.page_mut(pfn);
        if arch.page_to_pfn(va) != pfn
            || core::ptr::from_ref(page) as u64 != va.0
            || !page.has(PageFlags::DEVICE)
            || page.pgmap != pgmap
        {
            report.state_failures += 1;
        }
        let pattern = pfn.0 ^ 0xa5a5_5a5a_0f0f_f0f0;
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
}

/// Walks the memmap of `device` section chunk by section chunk (the unit `populate` is
/// called with) and checks each leaf against the source the policy chose for its chunk.
pub fn check_leaves(
    arch: &MmArch,
    view: &impl LeafView,
    device: &DeviceMemory,
    report: &mut VerifyReport,
) {
    let altmap = &device.altmap;
    let storage: Range<u64> =
        (altmap.base_pfn + altmap.reserve) * PAGE_SIZE..device.first_data_pfn().0 * PAGE_SIZE;
    for chunk in chunks(arch, device.range.start, device.range.end) {
        let start = arch.pfn_to_page(chunk.first);
        let end = arch.pfn_to_page(chunk.first.add(chunk.nr_pages));
        let expected = view.expected(start, end);
        let mut va = start.0;
        while va < end.0 {
            let Some(leaf) = view.leaf(va) else {
                report.walk_faults += 1;
                va += PAGE_SIZE;
                continue;
            };
            report.leaves += 1;
            let right = match expected {
                LeafSource::Altmap => {
                    storage.contains(&leaf.frame) && leaf.frame + leaf.bytes <= storage.end
                }
                LeafSource::Ram => view.is_ram(leaf.frame),
            };
            match (right, expected) {
                (true, LeafSource::Altmap) => report.leaves_in_altmap += 1,
                (true, LeafSource::Ram) => report.leaves_in_ram += 1,
                (false, _) => report.leaves_elsewhere += 1,
            }
            let next = ((va / leaf.bytes + 1) * leaf.bytes).min(end.0);
            report.memmap_pages += (next - va) / PAGE_SIZE;
            va = next;
        }
    }
}

/// The running machine: the walker's own policy, the live tables, the boot-RAM memmap.
struct Live<'a, F: VmemmapArch>(&'a LiveMm<F>);

impl<F: VmemmapArch> LeafView for Live<'_, F> {
    fn expected(&self, start: VirtAddr, end: VirtAddr) -> LeafSource {
        if self.0.sparse().vmemmap().takes_altmap_leaves(start, end) {
            LeafSource::Altmap
        } else {
            LeafSource::Ram
        }
    }

    fn leaf(&self, va: u64) -> Option<FoundLeaf> {
        self.0.translate(va).ok().map(|t| FoundLeaf {
            frame: t.frame.0,
            bytes: t.leaf_bytes,
        })
    }

    fn is_ram(&self, frame: u64) -> bool {
        let pfn = Pfn(frame / PAGE_SIZE);
        let memmap = self.0.memmap();
        memmap.has_page(pfn) && memmap.page(pfn).zone() == Zone::Normal
    }
}
