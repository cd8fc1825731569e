//! Proof through the real MMU that a device range's memmap works: every data frame's
//! struct page is reached at its vmemmap address, written and read back, and
//! `page_to_pfn(pfn_to_page(pfn)) == pfn`; the leaves backing the memmap are found by a
//! software walk of the live tables and must lie in the region's altmap storage.

use core::ops::Range;

use crate::mm::addr::{PAGE_SIZE, Pfn};
use crate::mm::live::LiveMm;
use crate::mm::memmap::MemmapAccess;
use crate::mm::page::PageFlags;
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
    /// Of those, leaves inside the altmap's storage (`[base + reserve, base + offset)`).
    pub leaves_in_altmap: u64,
    /// Leaves that are not in the altmap storage (RAM, by policy or by mistake).
    pub leaves_elsewhere: u64,
    /// Memmap addresses the software walk could not translate.
    pub walk_faults: u64,
}

impl VerifyReport {
    /// Every page passed and every leaf came from the altmap.
    pub fn passed(&self) -> bool {
        self.rw_failures == 0
            && self.state_failures == 0
            && self.walk_faults == 0
            && self.leaves_elsewhere == 0
            && self.leaves > 0
    }
}

/// Verifies `device` (see the module header).
pub fn verify<F: VmemmapArch>(mm: &mut LiveMm<F>, device: &DeviceMemory) -> VerifyReport {
    let mut report = VerifyReport::default();
    check_pages(mm, device, &mut report);
    check_leaves(mm, device, &mut report);
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

fn check_leaves<F: VmemmapArch>(mm: &LiveMm<F>, device: &DeviceMemory, report: &mut VerifyReport) {
    let arch = mm.arch();
    let storage: Range<u64> = (device.altmap.base_pfn + device.altmap.reserve) * PAGE_SIZE
        ..device.first_data_pfn().0 * PAGE_SIZE;
    let mut va = arch.pfn_to_page(device.range.start).0;
    let end = arch.pfn_to_page(device.range.end).0;
    while va < end {
        match mm.translate(va) {
            Ok(t) => {
                report.leaves += 1;
                let frame = t.frame.0;
                if storage.contains(&frame) && frame + t.leaf_bytes <= storage.end {
                    report.leaves_in_altmap += 1;
                } else {
                    report.leaves_elsewhere += 1;
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
