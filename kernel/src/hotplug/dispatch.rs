//! Polling the event sources and handling their events, one at a time in arrival order,
//! with one stable record line per step (see the README's record table).
//!
//! The event queue is the kernel's, with room reserved at boot ([`EVENT_ROOM`]), so a
//! poll does not allocate: an event reaches the engine even when the heap refuses
//! everything, and the engine's refusal is what the source hears.

use alloc::vec::Vec;

use super::engine::{HotplugError, MemmapFrom};
use super::event::Event;
use crate::{Arch, Kernel, kprintln};

/// Events the queue holds without allocating (sources emit at most 16 per poll, and
/// reserve fallibly beyond what is free).
pub const EVENT_ROOM: usize = 64;

/// An empty event queue with its room reserved (at boot: an infallible allocation).
pub fn event_queue() -> Vec<Event> {
    Vec::with_capacity(EVENT_ROOM)
}

/// Polls every source once and handles what they report. Returns how many events ran.
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
    handled
}

/// Runs one event through the engine and prints its records.
pub fn handle<A: Arch>(kernel: &mut Kernel<A>, event: &Event) -> Result<(), HotplugError> {
    let Some(mm) = kernel.mm.as_mut() else {
        kprintln!("hotplug: refuse op=event {}", HotplugError::NoMm);
        return Err(HotplugError::NoMm);
    };
    mm.tend_heap();
    let t0 = A::timestamp_ns();
    match event {
        Event::Add { range, via } => {
            let tables = mm.sparse().vmemmap().stats().table_pages();
            let ram_leaf_bytes = mm.sparse().vmemmap().stats().ram_leaf_bytes;
            let free_before = mm.free_pages() + mm.heap_pages();
            let mut added = kernel
                .hotplug
                .add_memory(mm, range.clone(), *via)
                .map(|_| ());
            // Refused for heap room (nothing changed)? If the heap can grow now, once more.
            if is_heap_refusal(&added) && mm.tend_heap() {
                added = kernel
                    .hotplug
                    .add_memory(mm, range.clone(), *via)
                    .map(|_| ());
            }
            let added = added.map(|()| kernel.hotplug.ranges().last().expect("just added"));
            match added {
                Ok(hot) => {
                    let (alloc, align) = hot.altmap_totals();
                    let memmap = if hot.memmap == MemmapFrom::Altmap {
                        "altmap"
                    } else {
                        "ram"
                    };
                    let sections = (range.end - range.start).div_ceil(mm.arch().section_bytes());
                    let new_tables = mm
                        .sparse()
                        .vmemmap()
                        .stats()
                        .table_pages()
                        .saturating_sub(tables);
                    let memmap_ram_pages = (mm.sparse().vmemmap().stats().ram_leaf_bytes)
                        .saturating_sub(ram_leaf_bytes)
                        / crate::mm::addr::PAGE_SIZE;
                    kprintln!(
                        "hotplug: add range={:#x}-{:#x} sections={sections} altmap.alloc={alloc} altmap.align={align} memmap={memmap} memmap.ram_pages={memmap_ram_pages} tables.new={new_tables} {via}",
                        range.start,
                        range.end
                    );
                    let us = A::timestamp_ns().saturating_sub(t0) / 1000;
                    // Pages the add took from RAM (table pages, RAM leaves): free grows by
                    // exactly the onlined count minus these (and minus what the heap grew
                    // by, which is not the add's).
                    let free = mm.free_pages();
                    let ram_pages =
                        (free_before + hot.online_pages()).saturating_sub(free + mm.heap_pages());
                    kprintln!(
                        "hotplug: online range={:#x}-{:#x} pages={} ram.pages={ram_pages} free={free} us={us} {via}",
                        range.start,
                        range.end,
                        hot.online_pages(),
                    );
                    Ok(())
                }
                Err(e) => refuse("add", range, via, e),
            }
        }
        Event::Remove { range, via } => {
            let tables = mm.sparse().vmemmap().stats().table_pages();
            match kernel.hotplug.remove_memory(mm, range.clone()) {
                Ok(gone) => {
                    let (alloc, align) = gone.altmap_totals();
                    let freed = tables.saturating_sub(mm.sparse().vmemmap().stats().table_pages());
                    let us = A::timestamp_ns().saturating_sub(t0) / 1000;
                    kprintln!(
                        "hotplug: offline range={:#x}-{:#x} pages={} {via}",
                        range.start,
                        range.end,
                        gone.online_pages()
                    );
                    kprintln!(
                        "hotplug: remove range={:#x}-{:#x} altmap.alloc={alloc} altmap.align={align} tables.freed={freed} free={} us={us} {via}",
                        range.start,
                        range.end,
                        mm.free_pages()
                    );
                    Ok(())
                }
                Err(e) => refuse("remove", range, via, e),
            }
        }
        Event::AddDevice { range, via } => add_device(kernel, range, via),
    }
}

/// NVDIMM hot-add: the new SPA range goes through the regions code (the same checks as
/// at boot), then gets its own altmap, population and verification.
fn add_device<A: Arch>(
    kernel: &mut Kernel<A>,
    range: &core::ops::Range<u64>,
    via: &super::event::Via,
) -> Result<(), HotplugError> {
    use crate::region::{RegionKind, RegionRequest, Source};
    let range_index = match via {
        super::event::Via::Nvdimm { range_index } => *range_index,
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

fn refuse(
    op: &str,
    range: &core::ops::Range<u64>,
    via: &super::event::Via,
    e: HotplugError,
) -> Result<(), HotplugError> {
    kprintln!(
        "hotplug: refuse op={op} range={:#x}-{:#x} {e} {via}",
        range.start,
        range.end
    );
    Err(e)
}
