//! Polling the event sources and handling their events, one at a time in arrival order,
//! with one stable record line per step (see the README's record table).

use alloc::vec::Vec;
use core::ops::Range;

use super::engine::{HotplugError, MemmapFrom, Removed};
use super::event::{Event, Via};
use crate::mm::live::LiveMm;
use crate::mm::pgtable::PageTableFormat;
use crate::{Arch, Kernel, kprintln};

/// Polls every source once and handles what they report. Returns how many events ran.
pub fn poll<A: Arch>(kernel: &mut Kernel<A>) -> usize {
    let mut events = Vec::new();
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
    handled
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
    let hotplug = &mut kernel.hotplug;
    let t0 = A::timestamp_ns();
    let (range, via) = (event.range().clone(), event.via());
    let free_before = mm.free_pages();
    let tables = mm.table_pages();
    match event {
        Event::Add { .. } | Event::AddPartial { .. } => {
            let online = match event {
                Event::AddPartial { online, .. } => Some(online.clone()),
                _ => None,
            };
            match hotplug.add_memory(mm, range.clone(), via, online.clone()) {
                Ok(hot) => {
                    let (pages, memmap) = (hot.online_pages(), hot.memmap);
                    let (alloc, align) = hot.altmap_totals();
                    let memmap = if memmap == MemmapFrom::Altmap {
                        "altmap"
                    } else {
                        "ram"
                    };
                    let sections = (range.end - range.start) / mm.arch().section_bytes();
                    let new_tables = table_pages(mm).saturating_sub(tables);
                    kprintln!(
                        "hotplug: add range={:#x}-{:#x} sections={sections} altmap.alloc={alloc} altmap.align={align} memmap={memmap} tables.new={new_tables} {via}",
                        range.start,
                        range.end
                    );
                    online_record::<A, _>(
                        mm,
                        &online.unwrap_or(range),
                        pages,
                        free_before,
                        t0,
                        via,
                    );
                    Ok(())
                }
                Err(e) => refuse("add", &range, &via, e),
            }
        }
        Event::OnlinePart { .. } => match hotplug.online_part(mm, range.clone()) {
            Ok(_) => {
                let pages = (range.end - range.start) / crate::mm::addr::PAGE_SIZE;
                online_record::<A, _>(mm, &range, pages, free_before, t0, via);
                Ok(())
            }
            Err(e) => refuse("online", &range, &via, e),
        },
        Event::OfflinePart { .. } => match hotplug.offline_part(mm, range.clone()) {
            Ok(_) => {
                let pages = (range.end - range.start) / crate::mm::addr::PAGE_SIZE;
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

fn table_pages<F: PageTableFormat>(mm: &LiveMm<F>) -> u64 {
    mm.table_pages()
}

/// `hotplug: online`: free pages grow by exactly the onlined count less what the step
/// took from RAM (`ram.pages`: table pages, RAM leaves of the memmap).
fn online_record<A: Arch, F: PageTableFormat>(
    mm: &LiveMm<F>,
    range: &Range<u64>,
    pages: u64,
    free_before: u64,
    t0: u64,
    via: Via,
) {
    let us = A::timestamp_ns().saturating_sub(t0) / 1000;
    let free = mm.free_pages();
    let ram_pages = (free_before + pages).saturating_sub(free);
    kprintln!(
        "hotplug: online range={:#x}-{:#x} pages={pages} ram.pages={ram_pages} free={free} us={us} {via}",
        range.start,
        range.end,
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
fn removed<A: Arch, F: PageTableFormat>(mm: &LiveMm<F>, gone: &Removed, tables: u64, t0: u64) {
    let (alloc, align) = gone.hot.altmap_totals();
    let freed = tables.saturating_sub(table_pages(mm));
    let us = A::timestamp_ns().saturating_sub(t0) / 1000;
    let range = &gone.hot.range;
    offline_record(range, gone.hot.online_pages(), gone.hot.via);
    for (pfns, left) in &gone.leftovers {
        kprintln!(
            "hazard: remove range={:#x}-{:#x} block={:#x}-{:#x} {left}",
            range.start,
            range.end,
            pfns.start.0 * crate::mm::addr::PAGE_SIZE,
            pfns.end.0 * crate::mm::addr::PAGE_SIZE
        );
    }
    let teardown = if gone.leftovers.is_empty() {
        "clean"
    } else {
        "hazard"
    };
    kprintln!(
        "hotplug: remove range={:#x}-{:#x} altmap.alloc={alloc} altmap.align={align} tables.freed={freed} teardown={teardown} free={} us={us} {}",
        range.start,
        range.end,
        mm.free_pages(),
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
    let region = kernel.regions.get(id).expect("just added").clone();
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

fn refuse(op: &str, range: &Range<u64>, via: &Via, e: HotplugError) -> Result<(), HotplugError> {
    kprintln!(
        "hotplug: refuse op={op} range={:#x}-{:#x} {e} {via}",
        range.start,
        range.end
    );
    Err(e)
}
