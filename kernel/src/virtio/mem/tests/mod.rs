//! The virtio-mem driver against a fake device ([`fake`]): the shared set-up (a 2 GiB
//! device at 1 GiB, s390x-like granularity) and helpers to poll, complete and settle the
//! driver; the tests themselves sit beside, by theme: sub-block mode (`sub_blocks`),
//! big-block mode (`big_blocks`), probing and describing a device (`probe`).

mod big_blocks;
mod fake;
mod probe;
mod sub_blocks;

use alloc::vec::Vec;

use self::fake::Fake;
use super::config::{ConfigError, MemConfig};
use super::*;
use crate::hotplug::engine::HotplugError;
use crate::hotplug::event::{Event, EventSource};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const SECTION: u64 = 256 * MIB;
/// s390x-like: 256 MiB memory blocks, 1 MiB pageblocks (2 MiB device blocks: SBM).
const GRAN: Granularity = Granularity {
    memory_block: SECTION,
    pageblock: MIB,
};
/// 2 MiB steps per 256 MiB unit.
const STEPS: u64 = SECTION / (2 * MIB);
/// A 2 GiB device at 1 GiB with 2 MiB blocks, nothing requested.
fn config() -> MemConfig {
    MemConfig {
        block_size: 2 * MIB,
        node_id: 0,
        addr: GIB,
        region_size: 2 * GIB,
        usable_region_size: 0,
        plugged_size: 0,
        requested_size: 0,
    }
}

fn probe(fake: &Fake) -> VirtioMem<Fake> {
    VirtioMem::probe(0, "virtio-mem-fake.0".into(), fake.clone(), GRAN).expect("probe")
}

fn poll(dev: &mut VirtioMem<Fake>) -> Vec<Event> {
    let mut out = Vec::new();
    dev.poll(&mut out);
    out
}

fn complete_all(dev: &mut VirtioMem<Fake>, events: &[Event], result: Result<(), HotplugError>) {
    for e in events {
        dev.complete(e, &result);
    }
}

/// What the events ask, compactly: `(kind, range, online part)`.
fn kinds(events: &[Event]) -> Vec<(&'static str, Range<u64>)> {
    events
        .iter()
        .map(|e| match e {
            Event::Add { range, .. } => ("add", range.clone()),
            Event::AddPartial { range, online, .. } => {
                assert_eq!(range.start, online.start, "online part starts the block");
                ("add-partial", online.clone())
            }
            Event::OnlinePart { range, .. } => ("online", range.clone()),
            Event::OfflinePart { range, .. } => ("offline", range.clone()),
            Event::Remove { range, .. } => ("remove", range.clone()),
            Event::AddDevice { range, .. } => panic!("unexpected {range:x?}"),
        })
        .collect()
}

/// Polls and completes everything with success until the device settles; returns the
/// events in order.
fn settle(dev: &mut VirtioMem<Fake>) -> Vec<Event> {
    let mut all = Vec::new();
    for _ in 0..64 {
        let events = poll(dev);
        if events.is_empty() {
            return all;
        }
        complete_all(dev, &events, Ok(()));
        all.extend(events);
    }
    panic!("the driver never settles");
}

fn unit(i: u64) -> u64 {
    GIB + i * SECTION
}
