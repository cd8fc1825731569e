//! The fault sweep (`faultsweep`, or `selftest=faultsweep` to run it at boot and exit):
//! for every kind of allocation a multi-section add makes — altmap leaf, RAM leaf,
//! page-table page, buddy frame — the Nth allocation is made to fail, for N = 1, 2, ...
//! until the add no longer reaches N. After every failure the add must have returned an
//! error and left nothing behind: no section active, no mapping in the memmap window,
//! altmap `alloc` and `align` at 0, page-table and free-page counts as before.
//!
//! The heap kind sweeps the whole hot-add path (the engine: block plan, sections, memmap,
//! onlining, the range record): every failure must refuse the add with `-ENOMEM` and
//! change nothing (a heap allocation that was not fallible would end the kernel instead),
//! and every successful add must be removable with *every* heap allocation failing —
//! removal never allocates.

use crate::hotplug::device;
use crate::hotplug::event::Via;
use crate::mm::addr::{PAGE_SIZE, Pfn};
use crate::mm::error::AllocKind;
use crate::mm::inject::FaultMode;
use crate::mm::live::LiveMm;
use crate::mm::nvdimm::nvdimm_setup;
use crate::{Arch, Kernel, kprintln};

/// Kinds swept, with their record names.
const KINDS: [(AllocKind, &str); 4] = [
    (AllocKind::AltmapLeaf, "altmap-leaf"),
    (AllocKind::RamLeaf, "ram-leaf"),
    (AllocKind::PageTable, "page-table"),
    (AllocKind::Buddy, "buddy"),
];

/// Most failures tried per kind (s390x maps a section's memmap with 1024 4 KiB leaves).
const MAX_N: u64 = 4096;

/// What the machine looked like before an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Snapshot {
    sections: usize,
    present: u64,
    table_bytes: u64,
    leaves: u64,
    /// Free pages plus the pages the heap holds (its growth is not the add's).
    free: u64,
    managed: u64,
}

fn snapshot<F: crate::mm::vmemmap::VmemmapArch>(mm: &LiveMm<F>) -> Snapshot {
    let stats = mm.sparse().vmemmap().stats();
    Snapshot {
        sections: mm.sparse().sections().count(),
        present: mm.sparse().present_pages(),
        table_bytes: stats.table_bytes,
        leaves: stats.leaves(),
        free: mm.free_pages() + mm.heap_pages(),
        managed: mm.managed_pages(),
    }
}

/// Runs the sweep on two sections of RAM hidden by `mem=`; returns whether it passed.
pub fn run<A: Arch>(kernel: &mut Kernel<A>) -> bool {
    let Some(window) = kernel
        .hidden
        .iter()
        .max_by_key(|r| r.end - r.start)
        .cloned()
    else {
        kprintln!("error: faultsweep: needs RAM hidden by mem= (e.g. mem=512M with -m 1G)");
        return false;
    };
    let Some(mm) = kernel.mm.as_mut() else {
        kprintln!("error: faultsweep: memory manager is down");
        return false;
    };
    let section = mm.arch().section_bytes();
    let start = window.start.next_multiple_of(section);
    let size = 2 * section;
    if start + size > window.end {
        kprintln!(
            "error: faultsweep: hidden RAM {:#x}-{:#x} is smaller than two sections",
            window.start,
            window.end
        );
        return false;
    }
    let mut passed = true;
    for (kind, name) in KINDS {
        let (tried, drift) = sweep_kind::<A>(mm, kind, start, size);
        kprintln!("faultsweep: kind={name} failures={tried} drift={drift}");
        passed &= drift == 0;
    }
    // The engine adds whole memory blocks: two of them (one when the window is small),
    // all online, then the same blocks with only their first half online (the partial
    // add of virtio-mem's sub-block mode).
    let block = kernel.hotplug.block().bytes;
    let heap_start = window.start.next_multiple_of(block);
    let blocks = (window.end.saturating_sub(heap_start) / block).min(2);
    if blocks == 0 {
        kprintln!(
            "error: faultsweep: hidden RAM {:#x}-{:#x} holds no whole memory block ({block:#x})",
            window.start,
            window.end
        );
        return false;
    }
    let heap_range = heap_start..heap_start + blocks * block;
    let (tried, drift) = sweep_heap(kernel, heap_range.clone(), None);
    let half = heap_start..heap_start + blocks * block / 2;
    let (tried_partial, drift_partial) = sweep_heap(kernel, heap_range, Some(half));
    kprintln!(
        "faultsweep: kind=heap failures={} drift={}",
        tried + tried_partial,
        drift + drift_partial
    );
    passed &= drift + drift_partial == 0 && tried > 0 && tried_partial > 0;
    kprintln!(
        "faultsweep: done range={start:#x}-{:#x} result={}",
        start + size,
        if passed { "pass" } else { "fail" }
    );
    passed
}

/// Fails the 1st, 2nd, ... allocation of `kind`; returns (failures injected, drifts).
fn sweep_kind<A: Arch>(
    mm: &mut LiveMm<A::PageTable>,
    kind: AllocKind,
    start: u64,
    size: u64,
) -> (u64, u64) {
    let (mut tried, mut drift) = (0, 0);
    for n in 1..=MAX_N {
        let before = snapshot(mm);
        let Ok((_, mut altmap)) = nvdimm_setup(mm.arch(), start, size, 2 << 20) else {
            return (tried, drift + 1);
        };
        let injected_before = injected(mm, kind);
        arm(mm, kind, n);
        let range = Pfn(start / PAGE_SIZE)..Pfn((start + size) / PAGE_SIZE);
        let result = mm.add(range.clone(), Some(&mut altmap));
        disarm(mm);
        let fired = injected(mm, kind) > injected_before;
        match result {
            Ok(()) => {
                let mut memory = device::DeviceMemory {
                    region_id: u32::MAX - 2,
                    range,
                    altmap,
                };
                if device::remove(mm, &mut memory).is_err() || snapshot(mm) != before {
                    kprintln!(
                        "faultsweep: drift kind={kind:?} n={n} after a successful add and remove"
                    );
                    drift += 1;
                }
                if !fired {
                    break; // the add made fewer than n allocations of this kind
                }
            }
            Err(_) => {
                tried += 1;
                let clean = snapshot(mm) == before
                    && altmap.alloc == 0
                    && altmap.align == 0
                    && !memmap_mapped(mm, start);
                if !clean {
                    kprintln!(
                        "faultsweep: drift kind={kind:?} n={n} before={before:?} after={:?} alloc={} align={}",
                        snapshot(mm),
                        altmap.alloc,
                        altmap.align
                    );
                    drift += 1;
                }
            }
        }
    }
    (tried, drift)
}

/// Fails the 1st, 2nd, ... heap allocation of a hot-add through the engine (onlining
/// all of `range`, or only `online`); returns (failures injected, drifts).
fn sweep_heap<A: Arch>(
    kernel: &mut Kernel<A>,
    range: core::ops::Range<u64>,
    online: Option<core::ops::Range<u64>>,
) -> (u64, u64) {
    let (mut tried, mut drift) = (0, 0);
    let Some(mm) = kernel.mm.as_mut() else {
        return (0, 1);
    };
    for n in 1..=MAX_N {
        mm.tend_heap();
        let before = (snapshot(mm), kernel.hotplug.ranges().len());
        let injected_before = crate::heap::with_faults(|f| f.injected());
        crate::heap::with_faults(|f| f.arm(n, FaultMode::Once));
        let result = kernel
            .hotplug
            .add_memory(mm, range.clone(), Via::Shell, online.clone())
            .map(|_| ());
        crate::heap::with_faults(|f| f.clear());
        let fired = crate::heap::with_faults(|f| f.injected()) > injected_before;
        match result {
            Ok(()) => {
                crate::heap::with_faults(|f| f.arm(1, FaultMode::Always));
                let removed = kernel.hotplug.remove_memory(mm, range.clone());
                crate::heap::with_faults(|f| f.clear());
                let after = (snapshot(mm), kernel.hotplug.ranges().len());
                if removed.is_err() || after != before {
                    kprintln!(
                        "faultsweep: drift kind=heap n={n} remove with the heap failing: {:?}",
                        removed.err()
                    );
                    drift += 1;
                }
                if !fired {
                    break;
                }
            }
            Err(e) => {
                tried += 1;
                let after = (snapshot(mm), kernel.hotplug.ranges().len());
                let enomem =
                    matches!(&e, crate::hotplug::engine::HotplugError::Mm(m) if m.errno() == -12);
                if after != before || !enomem || memmap_mapped(mm, range.start) {
                    kprintln!(
                        "faultsweep: drift kind=heap n={n} error={e} before={before:?} after={after:?}"
                    );
                    drift += 1;
                }
            }
        }
    }
    (tried, drift)
}

fn arm<F: crate::mm::vmemmap::VmemmapArch>(mm: &mut LiveMm<F>, kind: AllocKind, n: u64) {
    let (walker, buddy) = mm.injectors();
    match kind {
        AllocKind::Buddy => buddy.fail_nth(kind, n),
        _ => walker.fail_nth(kind, n),
    }
}

fn disarm<F: crate::mm::vmemmap::VmemmapArch>(mm: &mut LiveMm<F>) {
    let (walker, buddy) = mm.injectors();
    walker.clear();
    buddy.clear();
}

fn injected<F: crate::mm::vmemmap::VmemmapArch>(mm: &mut LiveMm<F>, kind: AllocKind) -> u64 {
    let (walker, buddy) = mm.injectors();
    walker.injected(kind) + buddy.injected(kind)
}

/// Whether the struct page of `start` is reachable in the live tables.
fn memmap_mapped<F: crate::mm::vmemmap::VmemmapArch>(mm: &LiveMm<F>, start: u64) -> bool {
    let va = mm.arch().pfn_to_page(Pfn(start / PAGE_SIZE)).0;
    mm.translate(va).is_ok()
}
