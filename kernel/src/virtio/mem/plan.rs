//! Which device blocks to plug or unplug next, in the two modes of Linux's driver
//! (drivers/virtio/virtio_mem.c, `virtio_mem_init_hotplug`):
//!
//! - Sub-block mode (SBM), when a sub-block — the device block, but at least a pageblock
//!   (`max(device_block_size, pageblock_nr_pages * PAGE_SIZE)`) — is smaller than a memory
//!   block. Memory is added one whole memory block at a time and its sub-blocks are
//!   plugged and unplugged inside it; the unplugged ones stay offline (fake-offline), so
//!   the plugged size reaches any multiple of the sub-block. Plugging fills partly plugged
//!   blocks first, then adds the next unused block, lowest first, plugging from its
//!   start. Unplugging takes partly plugged blocks first, then full ones, highest block
//!   first and each from its end (`virtio_mem_sbm_unplug_request`); a block with nothing
//!   plugged left is removed.
//! - Big-block mode (BBM) otherwise: units of `max(device block, memory block)` are
//!   plugged and added, removed and unplugged whole.
//!
//! In both modes only units wholly inside the device region (and its usable part) are
//! used: a region that does not start or end on a unit boundary leaves the partial units
//! at its edges unused ("The alignment of the physical start address can make some
//! memory unusable").

use alloc::vec::Vec;
use core::ops::Range;

use super::config::MemConfig;
use super::units::Units;
use crate::mm::arch::MmArch;
use crate::mm::memory_block::MemoryBlock;

/// The kernel's granules the driver works with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Granularity {
    /// The memory-block size (`memory_block_size_bytes()`).
    pub memory_block: u64,
    /// Bytes per pageblock (`pageblock_nr_pages * PAGE_SIZE`).
    pub pageblock: u64,
}

impl Granularity {
    /// The granules of `arch` with memory blocks of `block`.
    pub const fn new(block: MemoryBlock, arch: &MmArch) -> Self {
        Granularity {
            memory_block: block.bytes,
            pageblock: arch.pageblock_pages() * arch.page_size(),
        }
    }
}

/// The driver's mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Sub-block mode.
    Sbm,
    /// Big-block mode.
    Bbm,
}

impl Mode {
    /// `sbm` or `bbm`, for records.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Sbm => "sbm",
            Mode::Bbm => "bbm",
        }
    }
}

/// The fixed shape of a device's region and how the driver divides it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Region start.
    pub addr: u64,
    /// Region size.
    pub region_size: u64,
    /// Device block size (power of two).
    pub block_size: u64,
    /// The mode.
    pub mode: Mode,
    /// What is added and removed: a memory block (SBM) or a big block (BBM).
    pub unit: u64,
    /// What is plugged and unplugged: a sub-block (SBM) or the big block (BBM).
    pub step: u64,
}

impl Geometry {
    /// The geometry of a validated config.
    pub fn new(config: &MemConfig, g: Granularity) -> Self {
        let sub_block = config.block_size.max(g.pageblock);
        let (mode, unit, step) = if sub_block < g.memory_block {
            (Mode::Sbm, g.memory_block, sub_block)
        } else {
            let big = config.block_size.max(g.memory_block);
            (Mode::Bbm, big, big)
        };
        Geometry {
            addr: config.addr,
            region_size: config.region_size,
            block_size: config.block_size,
            mode,
            unit,
            step,
        }
    }

    /// Steps per unit (sub-blocks per memory block; 1 in BBM).
    pub fn steps_per_unit(&self) -> usize {
        (self.unit / self.step) as usize
    }

    /// The starts of the units wholly inside the first `usable` bytes of the region.
    pub fn units(&self, usable: u64) -> impl Iterator<Item = u64> + use<> {
        let geo = *self;
        (0..)
            .map(move |i| geo.first_unit() + i * geo.unit)
            .take_while(move |&s| geo.inside(s, usable))
    }

    /// The start of the first unit of the region (whether or not it is usable).
    pub fn first_unit(&self) -> u64 {
        self.addr.next_multiple_of(self.unit)
    }

    /// Whether the unit at `start` lies wholly inside the first `usable` bytes.
    pub fn inside(&self, start: u64, usable: u64) -> bool {
        start + self.unit <= self.addr + usable.min(self.region_size)
    }

    /// The physical range of steps `first..first + count` of the unit at `unit`.
    pub fn steps(&self, unit: u64, first: usize, count: usize) -> Range<u64> {
        let start = unit + first as u64 * self.step;
        start..start + count as u64 * self.step
    }
}

/// The state of one step (sub-block) of an added unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Not plugged; offline in the kernel.
    Unplugged,
    /// Plugged; the engine is onlining it.
    Plugging,
    /// Plugged and online.
    Online,
    /// Plugged; the engine is taking it offline (or removing its unit).
    Offlining,
    /// Plugged and online, but a page of it was in use: left alone until the request
    /// changes.
    Busy,
    /// Plugged in the device, offline in the kernel: its UNPLUG was refused.
    Stranded,
}

impl Step {
    /// Whether the device has it plugged.
    pub fn plugged(self) -> bool {
        self != Step::Unplugged
    }
}

/// Where an added unit is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnitState {
    /// The engine is adding it.
    Adding,
    /// Added.
    Live,
    /// The engine is removing it.
    Removing,
}

/// The step states, for per-state counts.
const STEP_STATES: usize = 6;

impl Step {
    fn index(self) -> usize {
        match self {
            Step::Unplugged => 0,
            Step::Plugging => 1,
            Step::Online => 2,
            Step::Offlining => 3,
            Step::Busy => 4,
            Step::Stranded => 5,
        }
    }
}

/// One added (or being added) unit: its steps and how many are in each state, kept as
/// the steps change, so the planner asks each unit in O(1) (Linux keeps a state per
/// memory block, `mb_states`, beside its sub-block bitmap for the same reason).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unit {
    /// Its life.
    pub state: UnitState,
    /// Its steps, in address order (changed only through the methods below).
    steps: Vec<Step>,
    /// Steps per state, by [`Step::index`].
    counts: [u32; STEP_STATES],
}

impl Unit {
    /// A unit in `state` with `steps`.
    pub fn new(state: UnitState, steps: Vec<Step>) -> Self {
        let mut counts = [0; STEP_STATES];
        for s in &steps {
            counts[s.index()] += 1;
        }
        Unit {
            state,
            steps,
            counts,
        }
    }

    /// Its steps, in address order.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// Steps in state `s`.
    pub fn count(&self, s: Step) -> usize {
        self.counts[s.index()] as usize
    }

    /// Whether every step is in state `s`.
    pub fn all(&self, s: Step) -> bool {
        self.count(s) == self.steps.len()
    }

    /// Puts step `i` in state `to` (nothing if there is no such step).
    pub fn set_one(&mut self, i: usize, to: Step) {
        if let Some(s) = self.steps.get_mut(i) {
            self.counts[s.index()] -= 1;
            self.counts[to.index()] += 1;
            *s = to;
        }
    }

    /// Puts steps `run` in state `to`.
    pub fn set(&mut self, run: Range<usize>, to: Step) {
        for i in run {
            self.set_one(i, to);
        }
    }

    /// Puts every step in state `from` in state `to`.
    pub fn replace(&mut self, from: Step, to: Step) {
        if self.count(from) == 0 {
            return;
        }
        for s in &mut self.steps {
            if *s == from {
                *s = to;
            }
        }
        let moved = self.counts[from.index()];
        self.counts[from.index()] = 0;
        self.counts[to.index()] += moved;
    }

    /// Steps the device has plugged.
    pub fn plugged(&self) -> usize {
        self.steps.len() - self.count(Step::Unplugged)
    }

    /// Whether nothing of it is online or on its way (only unplugged or stranded steps).
    pub fn is_empty(&self) -> bool {
        self.count(Step::Unplugged) + self.count(Step::Stranded) == self.steps.len()
    }
}

/// The next plug: `count` steps from `first` in the unit at `unit` (a new unit when it
/// is not added yet).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plug {
    /// Start of the unit.
    pub unit: u64,
    /// First step.
    pub first: usize,
    /// Steps.
    pub count: usize,
    /// Whether the unit must be added.
    pub new_unit: bool,
}

/// The next unplug: `count` online steps from `first` in the unit at `unit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unplug {
    /// Start of the unit.
    pub unit: u64,
    /// First step.
    pub first: usize,
    /// Steps.
    pub count: usize,
}

/// The first run of at most `want` unplugged steps in a live unit (lowest unit first),
/// else the first `min(want, steps per unit)` steps of the lowest unused unit inside
/// `usable`. BBM units are only ever plugged whole.
pub fn next_plug(geo: &Geometry, units: &Units, usable: u64, want: usize) -> Option<Plug> {
    if want == 0 {
        return None;
    }
    if geo.mode == Mode::Sbm {
        let partial = units
            .iter()
            .filter(|(_, u)| u.state == UnitState::Live && u.count(Step::Unplugged) > 0);
        for (&start, unit) in partial {
            let Some(first) = unit.steps().iter().position(|s| *s == Step::Unplugged) else {
                continue;
            };
            let run = unit.steps()[first..]
                .iter()
                .take_while(|s| **s == Step::Unplugged)
                .count();
            return Some(Plug {
                unit: start,
                first,
                count: run.min(want),
                new_unit: false,
            });
        }
    }
    // Units are recorded at unit starts from the first one: the lowest unused one is
    // found by a binary search.
    let start = units.first_free(geo.first_unit(), geo.unit);
    if !geo.inside(start, usable) {
        return None;
    }
    Some(Plug {
        unit: start,
        first: 0,
        count: want.min(geo.steps_per_unit()),
        new_unit: true,
    })
}

/// The last run of at most `over` online steps of the live unit Linux would unplug from
/// next: partly plugged units before full ones, the highest unit first.
pub fn next_unplug(units: &Units, over: usize) -> Option<Unplug> {
    if over == 0 {
        return None;
    }
    let live = || {
        units
            .iter()
            .rev()
            .filter(|(_, u)| u.state == UnitState::Live && u.count(Step::Online) > 0)
    };
    let partial = live().filter(|(_, u)| !u.all(Step::Online));
    let full = live().filter(|(_, u)| u.all(Step::Online));
    let (&start, unit) = partial.chain(full).next()?;
    let steps = unit.steps();
    let last = steps.iter().rposition(|s| *s == Step::Online)?;
    let run = steps[..=last]
        .iter()
        .rev()
        .take_while(|s| **s == Step::Online)
        .count()
        .min(over);
    Some(Unplug {
        unit: start,
        first: last + 1 - run,
        count: run,
    })
}

#[cfg(test)]
mod tests;
