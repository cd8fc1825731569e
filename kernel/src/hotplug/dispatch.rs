//! Polling the event sources and handling their events, one at a time in arrival order,
//! with one stable record line per step (see the README's record table).
//!
//! The event queue is the kernel's, with room reserved at boot ([`EVENT_ROOM`]), so a
//! poll does not allocate: an event reaches the engine even when the heap refuses
//! everything, and the engine's refusal is what the source hears.
//!
//! The full verification of what the events added runs once the sources have no event
//! left (a poll that handled none), [`VERIFY_BATCH`] ranges per poll, and before a shell
//! command runs: so the `online` records (and the hardware's completion) are never held
//! up by it, not even those of the later batches of a large resize; its `verify:`
//! records follow them.

use alloc::vec::Vec;
use core::ops::Range;

use super::engine::{AddTimes, HotplugError, MemmapFrom, Removed};
use super::event::{Event, Via};
use crate::mm::addr::PAGE_SIZE;
use crate::mm::live::LiveMm;
use crate::mm::vmemmap::VmemmapArch;
use crate::{Arch, Kernel, kprintln};

/// Events the queue holds without allocating (sources emit at most 16 per poll, and
/// reserve fallibly beyond what is free).
pub const EVENT_ROOM: usize = 64;

/// Ranges one idle poll verifies, so the shell stays responsive after a large resize.
pub const VERIFY_BATCH: usize = 16;

/// An empty event queue with its room reserved (at boot: an infallible allocation).
pub fn event_queue() -> Vec<Event> {
    Vec::with_capacity(EVENT_ROOM)
}

/// Polls every source once and handles what they report; with no event, verifies up to
/// [`VERIFY_BATCH`] of the ranges added before. Returns how many events and
/// verifications ran.
pub fn poll<A: Arch>(kernel: &mut Kernel<A>) -> usize {
    if let Some(mm) = kernel.mm.as_mut() {
        mm.tend_heap();
    }
    let mut events = core::mem::take(&mut kernel.events);
    let mut handled = 0;
    for index in 0..kernel.sources.len() {
        kernel.sources[index].poll(&mut events);
        for event in events.drain(..) {
            // Records start on a line of their own, even mid-prompt.
            crate::console::start_line();
            let result = handle(kernel, &event);
            kernel.sources[index].complete(&event, &result);
            handled += 1;
        }
    }
    kernel.events = events;
    if handled > 0 {
        return handled;
    }
    verify_pending(kernel, VERIFY_BATCH)
}

/// Runs the full verification of every range and device region added and not yet
/// verified and prints one `verify:` record each.
pub fn verify_added<A: Arch>(kernel: &mut Kernel<A>) {
    verify_pending(kernel, usize::MAX);
}

/// Verifies up to `most` of the ranges added and not yet verified, oldest first, and
/// every device region not yet verified; returns how many ran.
fn verify_pending<A: Arch>(kernel: &mut Kernel<A>, most: usize) -> usize {
    let Some(mm) = kernel.mm.as_mut() else {
        return 0;
    };
    let pending =
        kernel.hotplug.has_unverified() || kernel.devices.iter().any(|d| d.report.is_none());
    if !pending {
        return 0;
    }
    crate::console::start_line();
    let mut ran = 0;
    while ran < most {
        let Some(range) = kernel.hotplug.next_unverified() else {
            break;
        };
        verify_range::<A>(mm, &mut kernel.hotplug, &range);
        ran += 1;
    }
    for device in kernel.devices.iter_mut().filter(|d| d.report.is_none()) {
        crate::devices::verify_one::<A>(mm, device);
        ran += 1;
    }
    ran
}

/// Verifies the hot-added range `range` now and prints its record; false if no such
/// range is live.
pub fn verify_range<A: Arch>(
    mm: &mut crate::mm::live::LiveMm<A::PageTable>,
    hotplug: &mut super::engine::Hotplug,
    range: &core::ops::Range<u64>,
) -> bool {
    let t0 = A::timestamp_ns();
    let Some(r) = hotplug.verify(mm, range) else {
        return false;
    };
    let us = A::timestamp_ns().saturating_sub(t0) / 1000;
    let via = hotplug.range(range).map(|h| h.via);
    kprintln!(
        "verify: range={:#x}-{:#x} pages={} offline={} hosted={} rw.failures={} state.failures={} leaves={} leaves.altmap={} leaves.ram={} leaves.wrong={} walk.faults={} us={us} result={}{}",
        range.start,
        range.end,
        r.pages,
        r.offline,
        r.hosted,
        r.rw_failures,
        r.state_failures,
        r.leaves,
        r.leaves_altmap,
        r.leaves_ram,
        r.leaves_wrong,
        r.walk_faults,
        if r.passed() && r.leaves > 0 {
            "pass"
        } else {
            "fail"
        },
        ViaTail(via),
    );
    true
}

/// ` via=...` when the source is known, nothing otherwise (formatted without allocating).
struct ViaTail(Option<Via>);

impl core::fmt::Display for ViaTail {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Some(via) => write!(f, " {via}"),
            None => Ok(()),
        }
    }
}

/// Runs one event through the engine and prints its records.
pub fn handle<A: Arch>(kernel: &mut Kernel<A>, event: &Event) -> Result<(), HotplugError> {
    if let Event::AddDevice { range, via } = event {
        return add_device(kernel, range, via);
    }
    let Some(mm) = kernel.mm.as_mut() else {
        kprintln!("hotplug: refuse op=event {}", HotplugError::NoMm);
        return Err(HotplugError::NoMm);
    };
    mm.tend_heap();
    let hotplug = &mut kernel.hotplug;
    let t0 = A::timestamp_ns();
    let (range, via) = (event.range().clone(), event.via());
    // The heap's pages count as free here: what it grows by is not the step's.
    let free_before = mm.free_pages() + mm.heap_pages();
    let tables = mm.table_pages();
    match event {
        Event::Add { .. } | Event::AddPartial { .. } => {
            let online = match event {
                Event::AddPartial { online, .. } => Some(online.clone()),
                _ => None,
            };
            let ram_leaf_bytes = mm.sparse().vmemmap().stats().ram_leaf_bytes;
            let mut added = hotplug
                .add_memory(mm, range.clone(), via, online.clone())
                .map(|_| ());
            // Refused for heap room (nothing changed)? If the heap can grow now, once more.
            if is_heap_refusal(&added) && mm.tend_heap() {
                added = hotplug
                    .add_memory(mm, range.clone(), via, online.clone())
                    .map(|_| ());
            }
            let added = added.map(|()| hotplug.range(&range).expect("just added"));
            match added {
                Ok(hot) => {
                    let times = hotplug.last_add_times();
                    let (pages, memmap) = (hot.online_pages(), hot.memmap);
                    let (alloc, align) = hot.altmap_totals();
                    let memmap = if memmap == MemmapFrom::Altmap {
                        "altmap"
                    } else {
                        "ram"
                    };
                    let sections = (range.end - range.start) / mm.arch().section_bytes();
                    let new_tables = mm.table_pages().saturating_sub(tables);
                    let memmap_ram_pages = (mm.sparse().vmemmap().stats().ram_leaf_bytes)
                        .saturating_sub(ram_leaf_bytes)
                        / PAGE_SIZE;
                    kprintln!(
                        "hotplug: add range={:#x}-{:#x} sections={sections} altmap.alloc={alloc} altmap.align={align} memmap={memmap} memmap.ram_pages={memmap_ram_pages} tables.new={new_tables} {via}",
                        range.start,
                        range.end
                    );
                    let part = online.unwrap_or(range);
                    online_record::<A, _>(mm, &part, pages, free_before, t0, &times, via);
                    Ok(())
                }
                Err(e) => refuse("add", &range, &via, e),
            }
        }
        Event::OnlinePart { .. } => match hotplug.online_part(mm, range.clone()) {
            Ok(_) => {
                let pages = (range.end - range.start) / PAGE_SIZE;
                // Only the hand-over to the allocator: the struct pages exist since the add.
                let times = AddTimes {
                    online_ns: A::timestamp_ns().saturating_sub(t0),
                    ..AddTimes::default()
                };
                online_record::<A, _>(mm, &range, pages, free_before, t0, &times, via);
                Ok(())
            }
            Err(e) => refuse("online", &range, &via, e),
        },
        Event::OfflinePart { .. } => match hotplug.offline_part(mm, range.clone()) {
            Ok(_) => {
                let pages = (range.end - range.start) / PAGE_SIZE;
                offline_record(&range, pages, via);
                Ok(())
            }
            Err(e) => refuse("offline", &range, &via, e),
        },
        Event::Remove { .. } => match hotplug.remove_memory(mm, range.clone()) {
            Ok(gone) => {
                removed::<A, _>(mm, &gone, tables, t0);
                Ok(())
            }
            Err(e) => refuse("remove", &range, &via, e),
        },
        Event::AddDevice { .. } => unreachable!("handled above"),
    }
}

/// `hotplug: online`: free pages grow by exactly the onlined count less what the step
/// took from RAM (`ram.pages`: table pages, RAM leaves of the memmap; `free_before`
/// counts the heap's pages, so a heap that grew meanwhile is not charged to the step);
/// then where the time went (`us.*`).
fn online_record<A: Arch, F: VmemmapArch>(
    mm: &LiveMm<F>,
    range: &Range<u64>,
    pages: u64,
    free_before: u64,
    t0: u64,
    t: &AddTimes,
    via: Via,
) {
    let total_us = A::timestamp_ns().saturating_sub(t0) / 1000;
    let free = mm.free_pages();
    let ram_pages = (free_before + pages).saturating_sub(free + mm.heap_pages());
    kprintln!(
        "hotplug: online range={:#x}-{:#x} pages={pages} ram.pages={ram_pages} free={free} us.add={} us.populate={} us.init={} us.online={} us.verify={} us.total={total_us} {via}",
        range.start,
        range.end,
        t.add_ns / 1000,
        t.populate_ns / 1000,
        t.init_ns / 1000,
        t.online_ns / 1000,
        t.verify_ns / 1000,
    );
}

fn offline_record(range: &Range<u64>, pages: u64, via: Via) {
    kprintln!(
        "hotplug: offline range={:#x}-{:#x} pages={pages} {via}",
        range.start,
        range.end
    );
}

/// The records of a completed remove: `teardown=clean`, or `teardown=hazard` after one
/// `hazard:` line per block something was left of.
fn removed<A: Arch, F: VmemmapArch>(mm: &LiveMm<F>, gone: &Removed, tables: u64, t0: u64) {
    let (alloc, align) = gone.hot.altmap_totals();
    let freed = tables.saturating_sub(mm.table_pages());
    let total_us = A::timestamp_ns().saturating_sub(t0) / 1000;
    let range = &gone.hot.range;
    offline_record(range, gone.hot.online_pages(), gone.hot.via);
    for (pfns, left) in &gone.leftovers {
        kprintln!(
            "hazard: remove range={:#x}-{:#x} block={:#x}-{:#x} {left}",
            range.start,
            range.end,
            pfns.start.0 * PAGE_SIZE,
            pfns.end.0 * PAGE_SIZE
        );
    }
    let teardown = if gone.leftovers.is_empty() {
        "clean"
    } else {
        "hazard"
    };
    let t = gone.times;
    kprintln!(
        "hotplug: remove range={:#x}-{:#x} altmap.alloc={alloc} altmap.align={align} tables.freed={freed} teardown={teardown} free={} us.offline={} us.depopulate={} us.teardown={} us.total={total_us} {}",
        range.start,
        range.end,
        mm.free_pages(),
        t.offline_ns / 1000,
        t.depopulate_ns / 1000,
        t.teardown_ns / 1000,
        gone.hot.via
    );
}

/// NVDIMM hot-add: the new SPA range goes through the regions code (the same checks as
/// at boot), then gets its own altmap, population and verification.
fn add_device<A: Arch>(
    kernel: &mut Kernel<A>,
    range: &Range<u64>,
    via: &Via,
) -> Result<(), HotplugError> {
    use crate::region::{RegionKind, RegionRequest, Source};
    let range_index = match via {
        Via::Nvdimm { range_index } => *range_index,
        _ => 0,
    };
    // Room for the live device first, so a device that comes up is never dropped.
    if kernel.devices.try_reserve(1).is_err() {
        let e = HotplugError::Mm(crate::mm::error::MmError::NoMemory(
            crate::mm::error::AllocKind::Heap,
        ));
        return refuse("add-device", range, via, e);
    }
    let request = RegionRequest {
        start: range.start,
        size: range.end - range.start,
        kind: RegionKind::Pmem,
        source: Source::Nfit { range_index },
        node: None,
        align: 2 << 20,
    };
    let id = match kernel.regions.add_checked(request) {
        Ok(id) => id,
        Err(e) => {
            kprintln!("{}", e.record());
            return Err(HotplugError::Overlap { at: range.start });
        }
    };
    let Some(region) = kernel.regions.get(id).cloned() else {
        return Err(HotplugError::NotAdded(range.clone()));
    };
    kprintln!("{}", region.record());
    let mm = kernel.mm.as_mut().ok_or(HotplugError::NoMm)?;
    match crate::devices::populate_one::<A>(mm, &region) {
        Some(device) => {
            kprintln!(
                "hotplug: add-device id={id} range={:#x}-{:#x} {via}",
                range.start,
                range.end
            );
            kernel.devices.push(device);
            Ok(())
        }
        None => Err(HotplugError::NotAdded(range.clone())),
    }
}

fn is_heap_refusal<T>(result: &Result<T, HotplugError>) -> bool {
    use crate::mm::error::{AllocKind, MmError};
    matches!(
        result,
        Err(HotplugError::Mm(MmError::NoMemory(AllocKind::Heap)))
    )
}

fn refuse(op: &str, range: &Range<u64>, via: &Via, e: HotplugError) -> Result<(), HotplugError> {
    kprintln!(
        "hotplug: refuse op={op} range={:#x}-{:#x} {e} {via}",
        range.start,
        range.end
    );
    Err(e)
}
