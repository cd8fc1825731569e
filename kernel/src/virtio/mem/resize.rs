//! Growing and shrinking: which requests go to the device, which events to the engine,
//! and what each completion means for the units (see the module header of the driver).

use alloc::vec::Vec;
use core::ops::Range;

use virtio_drivers::transport::Transport;

use super::plan::{self, Mode, Step, Unit, UnitState};
use super::request::{Request, Response};
use super::{BATCH, VirtioMem};
use crate::heap::fallible::TryVec;
use crate::hotplug::engine::HotplugError;
use crate::hotplug::event::Event;

/// A device response for a record, `none` when the queue failed (formatted without
/// allocating).
struct ResponseName(Option<Response>);

impl core::fmt::Display for ResponseName {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Some(r) => write!(f, "{r}"),
            None => f.write_str("none"),
        }
    }
}

impl<T: Transport> VirtioMem<T> {
    /// Most steps one PLUG or UNPLUG request can carry (65535 device blocks).
    fn max_steps(&self) -> usize {
        let blocks_per_step = self.geo.step / self.geo.block_size;
        (u64::from(u16::MAX) / blocks_per_step).max(1) as usize
    }

    /// PLUGs the next runs and asks the engine to add or online them.
    pub(super) fn grow(&mut self, out: &mut Vec<Event>) {
        if self.grow_stopped {
            return;
        }
        let requested = self.config.requested_size;
        for _ in 0..BATCH {
            let want = (requested.saturating_sub(self.plugged_bytes()) / self.geo.step) as usize;
            let usable = self.config.usable_region_size;
            let Some(mut p) = plan::next_plug(&self.geo, &self.units, usable, want) else {
                if self.plugged_bytes() < requested {
                    self.stop("grow", if want == 0 { "below-step" } else { "no-room" });
                }
                return;
            };
            p.count = p.count.min(self.max_steps());
            let range = self.geo.steps(p.unit, p.first, p.count);
            // Room for the event and a new unit's record before the device plugs
            // anything: a refused heap allocation stops growing with nothing plugged.
            let new_unit = if p.new_unit {
                match self.new_unit() {
                    Some(unit) => Some(unit),
                    None => return self.stop("grow", "no-memory"),
                }
            } else {
                None
            };
            if out.try_reserve(1).is_err() {
                return self.stop("grow", "no-memory");
            }
            let plug = Request::plug(&range, self.geo.block_size).expect("planned in blocks");
            match self.request(plug) {
                Some(Response::Ack) => {}
                other => {
                    log::warn!(
                        "virtio-mem: refused dev={} {plug} response={}",
                        self.index,
                        ResponseName(other)
                    );
                    self.stop("grow", "plug-refused");
                    return;
                }
            }
            log::info!(
                "virtio-mem: plug dev={} range={:#x}-{:#x} blocks={}",
                self.index,
                range.start,
                range.end,
                (range.end - range.start) / self.geo.block_size
            );
            let unit_range = p.unit..p.unit + self.geo.unit;
            let via = self.via();
            if let Some(unit) = new_unit
                && self.units.try_insert(p.unit, unit).is_err()
            {
                // Plugged, but no room to record the unit: give the run back.
                self.unplug_range(range);
                return self.stop("grow", "no-memory");
            }
            self.set_steps(p.unit, p.first, p.count, Step::Plugging);
            out.push(match (p.new_unit, self.geo.mode) {
                (true, Mode::Bbm) => Event::Add {
                    range: unit_range,
                    via,
                },
                (true, Mode::Sbm) => Event::AddPartial {
                    range: unit_range,
                    online: range,
                    via,
                },
                (false, _) => Event::OnlinePart { range, via },
            });
        }
    }

    /// Asks the engine to take the next runs offline (SBM) or remove the next units
    /// (BBM); the UNPLUGs follow in the completions.
    pub(super) fn shrink(&mut self, out: &mut Vec<Event>) {
        if self.shrink_stopped {
            return;
        }
        let over_bytes = self.plugged_bytes() - self.config.requested_size;
        let mut over = (over_bytes / self.geo.step) as usize;
        for _ in 0..BATCH {
            let Some(u) = plan::next_unplug(&self.units, over) else {
                if out.is_empty() {
                    let busy = self.units.values().any(|u| u.count(Step::Busy) > 0);
                    let reason = match () {
                        _ if busy && over > 0 => "busy",
                        _ if over > 0 => "no-unit-fits",
                        _ => "below-step",
                    };
                    self.stop("shrink", reason);
                }
                return;
            };
            if out.try_reserve(1).is_err() {
                // Nothing changed: the next poll tries again.
                return;
            }
            let count = u.count.min(self.max_steps());
            let first = u.first + u.count - count;
            self.set_steps(u.unit, first, count, Step::Offlining);
            let via = self.via();
            out.push(match self.geo.mode {
                Mode::Bbm => {
                    self.set_state(u.unit, UnitState::Removing);
                    Event::Remove {
                        range: u.unit..u.unit + self.geo.unit,
                        via,
                    }
                }
                Mode::Sbm => Event::OfflinePart {
                    range: self.geo.steps(u.unit, first, count),
                    via,
                },
            });
            over -= count;
        }
    }

    /// Asks the engine to remove every live unit with nothing plugged and online left.
    pub(super) fn remove_empty(&mut self, out: &mut Vec<Event>) {
        if self.shrink_stopped {
            return;
        }
        let via = self.via();
        let unit_bytes = self.geo.unit;
        self.units.update_all(|start, unit| {
            if unit.state == UnitState::Live
                && unit.is_empty()
                && out.len() < BATCH
                && out.try_reserve(1).is_ok()
            {
                unit.state = UnitState::Removing;
                out.push(Event::Remove {
                    range: start..start + unit_bytes,
                    via,
                });
            }
        });
    }

    /// A new request: busy sub-blocks are tried again.
    pub(super) fn forget_busy(&mut self) {
        self.units
            .update_all(|_, unit| unit.replace(Step::Busy, Step::Online));
    }

    /// What the engine's answer to one of this device's events means.
    pub(super) fn completed(&mut self, event: &Event, result: &Result<(), HotplugError>) {
        let range = event.range().clone();
        let Some((unit, first, count)) = self.locate(&range) else {
            log::error!(
                "virtio-mem: error dev={} completion for unknown range {:#x}-{:#x}",
                self.index,
                range.start,
                range.end
            );
            return;
        };
        match (event, result) {
            (Event::Add { .. } | Event::AddPartial { .. }, Ok(())) => {
                self.set_state(unit, UnitState::Live);
                self.replace_steps(unit, Step::Plugging, Step::Online);
            }
            (Event::Add { .. } | Event::AddPartial { .. }, Err(_)) => {
                let plugged = self.run_of(unit, Step::Plugging);
                self.unplug_steps(unit, plugged);
                self.drop_unit(unit);
                self.stop("grow", "add-failed");
            }
            (Event::OnlinePart { .. }, Ok(())) => {
                self.set_steps(unit, first, count, Step::Online);
            }
            (Event::OnlinePart { .. }, Err(_)) => {
                self.unplug_steps(unit, first..first + count);
                self.stop("grow", "online-failed");
            }
            (Event::OfflinePart { .. }, Ok(())) => self.unplug_steps(unit, first..first + count),
            (Event::OfflinePart { .. }, Err(e)) => {
                self.set_steps(unit, first, count, Step::Online);
                self.offline_refused(unit, e);
            }
            (Event::Remove { .. }, Ok(())) => {
                if self.geo.mode == Mode::Bbm {
                    self.unplug_steps(unit, 0..1);
                }
                self.drop_unit(unit);
            }
            (Event::Remove { .. }, Err(e)) => {
                self.set_state(unit, UnitState::Live);
                self.replace_steps(unit, Step::Offlining, Step::Online);
                self.offline_refused(unit, e);
            }
            (Event::AddDevice { .. }, _) => {}
        }
    }

    /// A busy page marks its sub-block busy (the others are tried next); anything else
    /// stops shrinking until the request changes.
    fn offline_refused(&mut self, unit: u64, e: &HotplugError) {
        match e {
            HotplugError::Busy { pfn } => {
                let addr = pfn * crate::mm::addr::PAGE_SIZE;
                let step = ((addr - unit) / self.geo.step) as usize;
                self.update(unit, |u| u.set_one(step, Step::Busy));
            }
            _ => self.stop("shrink", "offline-failed"),
        }
    }

    /// UNPLUGs steps `run` of `unit`: they become unplugged, or stranded when the device
    /// refuses (plugged there, offline here, never reused).
    fn unplug_steps(&mut self, unit: u64, run: Range<usize>) {
        if run.is_empty() {
            return;
        }
        let range = self.geo.steps(unit, run.start, run.len());
        let state = if self.unplug_range(range) {
            Step::Unplugged
        } else {
            Step::Stranded
        };
        self.set_steps(unit, run.start, run.len(), state);
    }

    /// UNPLUGs `range`; false (with an error line) when the device refused.
    fn unplug_range(&mut self, range: Range<u64>) -> bool {
        let unplug = Request::unplug(&range, self.geo.block_size).expect("planned in blocks");
        match self.request(unplug) {
            Some(Response::Ack) => {
                log::info!(
                    "virtio-mem: unplug dev={} range={:#x}-{:#x} blocks={}",
                    self.index,
                    range.start,
                    range.end,
                    (range.end - range.start) / self.geo.block_size
                );
                true
            }
            other => {
                log::error!(
                    "virtio-mem: refused dev={} {unplug} response={other:?}; range stays plugged",
                    self.index
                );
                false
            }
        }
    }

    /// A new unit's record with every step unplugged, or `None` when the heap refuses
    /// its step list.
    fn new_unit(&self) -> Option<Unit> {
        let mut steps = Vec::new();
        steps.try_reserve_exact(self.geo.steps_per_unit()).ok()?;
        steps.resize(self.geo.steps_per_unit(), Step::Unplugged);
        Some(Unit::new(UnitState::Adding, steps))
    }

    /// Forgets `unit`; its stranded steps move to the device's stranded list.
    fn drop_unit(&mut self, unit: u64) {
        let Some(u) = self.units.remove(&unit) else {
            return;
        };
        for (i, s) in u.steps().iter().enumerate() {
            if *s == Step::Stranded && self.stranded.try_push(self.geo.steps(unit, i, 1)).is_err() {
                log::error!(
                    "virtio-mem: error dev={} no heap room to record a stranded range at {:#x}",
                    self.index,
                    self.geo.steps(unit, i, 1).start
                );
            }
        }
    }

    /// The unit holding `range` and its step run.
    fn locate(&self, range: &Range<u64>) -> Option<(u64, usize, usize)> {
        let (&start, _) = self.units.at_or_below(range.start)?;
        let end = start + self.geo.unit;
        if range.end > end || range.start >= range.end {
            return None;
        }
        let first = ((range.start - start) / self.geo.step) as usize;
        let count = ((range.end - range.start) / self.geo.step) as usize;
        Some((start, first, count))
    }

    /// The steps of `unit` in state `state`, as one run (they are planned as one).
    fn run_of(&self, unit: u64, state: Step) -> Range<usize> {
        let steps = self.units[&unit].steps();
        let first = steps.iter().position(|s| *s == state).unwrap_or(0);
        let last = steps.iter().rposition(|s| *s == state).map_or(0, |l| l + 1);
        first..last.max(first)
    }

    /// Changes the unit at `unit`, which the driver planned (so it is recorded).
    fn update(&mut self, unit: u64, change: impl FnOnce(&mut Unit)) {
        self.units
            .update(unit, change)
            .expect("a unit the driver planned");
    }

    fn set_state(&mut self, unit: u64, state: UnitState) {
        self.update(unit, |u| u.state = state);
    }

    fn set_steps(&mut self, unit: u64, first: usize, count: usize, state: Step) {
        self.update(unit, |u| u.set(first..first + count, state));
    }

    fn replace_steps(&mut self, unit: u64, from: Step, to: Step) {
        self.update(unit, |u| u.replace(from, to));
    }
}
