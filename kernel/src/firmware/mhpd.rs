//! The ACPI memory-hotplug controller ("MHPD", qemu-hotplug.md §1.2, §1.4) as a hotplug
//! event source, over any register access: x86 port I/O at 0x0a00, aarch64 MMIO at
//! 0x09070000. Nothing here touches hardware; the arch supplies [`MhpdRegs`].
//!
//! Flows, as Linux runs them through QEMU's AML (`MSCN`, `_EJ0`) and `drivers/acpi/scan.c`:
//! - insert (status enabled + insert): read base, size and node; clear the insert flag;
//!   the engine adds and onlines the range; then `_OST(1, 0)`, or `_OST(1, 1)` on failure;
//! - remove request (enabled + remove): clear the remove flag; `_OST(3, 0x84)` (eject in
//!   progress); the engine offlines and removes; on success the eject bit, then
//!   `_OST(3, 0)`; when memory is busy `_OST(3, 0x82)` (device busy; other errors 1) and
//!   the DIMM stays;
//! - at the first scan, slots already enabled without an insert flag (cold-plugged DIMMs)
//!   are added as Linux's memory driver does at boot, without `_OST`.
//!
//! One control write per action: QEMU's control register is an if/else chain.

use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;

use crate::hotplug::engine::HotplugError;
use crate::hotplug::event::{Event, EventSource, Via};

/// Register offsets (dword unless noted).
pub mod reg {
    /// Read: base bits 31:0. Write: slot selector.
    pub const ADDR_LO: u8 = 0x00;
    /// Read: base bits 63:32. Write: `_OST` event code.
    pub const ADDR_HI: u8 = 0x04;
    /// Read: size bits 31:0. Write: `_OST` status (emits QMP `ACPI_DEVICE_OST`).
    pub const SIZE_LO: u8 = 0x08;
    /// Read: size bits 63:32.
    pub const SIZE_HI: u8 = 0x0c;
    /// Read: proximity domain.
    pub const NODE: u8 = 0x10;
    /// Byte. Read: status. Write: control.
    pub const STATUS: u8 = 0x14;
    /// Write aliases.
    pub const SELECT: u8 = ADDR_LO;
    /// `_OST` event code.
    pub const OST_EVENT: u8 = ADDR_HI;
    /// `_OST` status code.
    pub const OST_STATUS: u8 = SIZE_LO;
}

/// Status bits.
pub const ENABLED: u8 = 1 << 0;
/// Insert event pending.
pub const INSERT: u8 = 1 << 1;
/// Remove event pending.
pub const REMOVE: u8 = 1 << 2;
/// Control bits (one per write).
pub const CLEAR_INSERT: u8 = 1 << 1;
/// Clear the remove event.
pub const CLEAR_REMOVE: u8 = 1 << 2;
/// Eject: QEMU unplugs the DIMM inside this write.
pub const EJECT: u8 = 1 << 3;

/// `_OST` source events.
pub const OST_EV_DEVICE_CHECK: u32 = 1;
/// Eject request.
pub const OST_EV_EJECT_REQUEST: u32 = 3;
/// `_OST` status codes (Linux `ACPI_OST_SC_*`).
pub const OST_SUCCESS: u32 = 0;
/// Non-specific failure.
pub const OST_FAILURE: u32 = 1;
/// Device busy (Linux's answer to `-EBUSY` from offlining).
pub const OST_DEVICE_BUSY: u32 = 0x82;
/// Ejection in progress.
pub const OST_EJECT_IN_PROGRESS: u32 = 0x84;

/// Slots QEMU can have at most (`ACPI_MAX_RAM_SLOTS`).
pub const MAX_SLOTS: u32 = 256;

/// Access to one controller's 24-byte register block.
pub trait MhpdRegs {
    /// 32-bit read at `offset`.
    fn read32(&mut self, offset: u8) -> u32;
    /// 32-bit write at `offset`.
    fn write32(&mut self, offset: u8, value: u32);
    /// 8-bit read at `offset`.
    fn read8(&mut self, offset: u8) -> u8;
    /// 8-bit write at `offset`.
    fn write8(&mut self, offset: u8, value: u8);
    /// Whether an event may be waiting (an interrupt was latched, or a GPE status bit
    /// is set); consumes the indication. Always `true` when only polling is possible.
    fn take_notification(&mut self) -> bool;
    /// How events reach the kernel, for `describe` (e.g. `notify=sci irq=9 gsi=9`).
    fn describe(&self, out: &mut dyn fmt::Write) -> fmt::Result;
}

/// What the kernel knows about one slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SlotState {
    /// Nothing plugged (or not yet seen).
    Empty,
    /// An add is with the engine.
    Adding,
    /// The range is online.
    Online,
    /// The add failed; the DIMM is plugged but unused.
    Failed,
    /// A remove is with the engine.
    Removing,
}

/// One DIMM slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slot {
    /// The DIMM's physical range (empty when none).
    pub range: Range<u64>,
    /// Its proximity domain.
    pub node: u32,
    /// The kernel's state.
    pub state: SlotState,
}

/// Counters for `describe` and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MhpdStats {
    /// Scans of all slots.
    pub scans: u64,
    /// Insert events taken.
    pub inserts: u64,
    /// Remove requests taken.
    pub removes: u64,
    /// Ejects written.
    pub ejects: u64,
    /// Removes refused.
    pub refusals: u64,
}

/// The controller as an [`EventSource`].
pub struct Mhpd<R: MhpdRegs> {
    regs: R,
    name: &'static str,
    base: u64,
    slots: Vec<Slot>,
    first_scan: bool,
    rescan: bool,
    stats: MhpdStats,
}

impl<R: MhpdRegs> Mhpd<R> {
    /// A controller at `base` (for records) with `slots` slots (from `MDNR`; at most 256).
    pub fn new(regs: R, name: &'static str, base: u64, slots: u32) -> Self {
        let empty = Slot {
            range: 0..0,
            node: 0,
            state: SlotState::Empty,
        };
        Mhpd {
            regs,
            name,
            base,
            slots: alloc::vec![empty; slots.min(MAX_SLOTS) as usize],
            first_scan: true,
            rescan: false,
            stats: MhpdStats::default(),
        }
    }

    /// The slots as the kernel sees them.
    pub fn slots(&self) -> &[Slot] {
        &self.slots
    }

    /// Counters.
    pub fn stats(&self) -> MhpdStats {
        self.stats
    }

    /// The register access (tests inspect their model through it).
    pub fn regs(&mut self) -> &mut R {
        &mut self.regs
    }

    fn select(&mut self, slot: u32) {
        self.regs.write32(reg::SELECT, slot);
    }

    /// `_OST(event, status)` for `slot`: event code first, the status write emits QMP.
    fn ost(&mut self, slot: u32, event: u32, status: u32) {
        self.select(slot);
        self.regs.write32(reg::OST_EVENT, event);
        self.regs.write32(reg::OST_STATUS, status);
    }

    fn control(&mut self, slot: u32, bit: u8) {
        self.select(slot);
        self.regs.write8(reg::STATUS, bit);
    }

    /// Base and size of the selected slot.
    fn read_range(&mut self) -> (Range<u64>, u32) {
        let lo = |r: &mut R, o| u64::from(r.read32(o));
        let base = lo(&mut self.regs, reg::ADDR_LO) | lo(&mut self.regs, reg::ADDR_HI) << 32;
        let size = lo(&mut self.regs, reg::SIZE_LO) | lo(&mut self.regs, reg::SIZE_HI) << 32;
        let node = self.regs.read32(reg::NODE);
        (base..base.saturating_add(size), node)
    }

    /// One slot's pending work, at most one event.
    fn scan_slot(&mut self, slot: u32, out: &mut Vec<Event>) {
        self.select(slot);
        let status = self.regs.read8(reg::STATUS);
        let index = slot as usize;
        let state = self.slots[index].state.clone();
        let busy = matches!(state, SlotState::Adding | SlotState::Removing);
        if busy {
            return;
        }
        let cold = self.first_scan && status & ENABLED != 0 && status & INSERT == 0;
        let pending = status & INSERT != 0 && status & ENABLED != 0 || cold || status & REMOVE != 0;
        // Room for the event before any flag is cleared: a refused allocation leaves the
        // slot as it was, for the next scan.
        if pending && out.try_reserve(1).is_err() {
            self.rescan = true;
            return;
        }
        if status & INSERT != 0 && status & ENABLED != 0 || cold {
            let (range, node) = self.read_range();
            if status & INSERT != 0 {
                self.control(slot, CLEAR_INSERT);
                self.stats.inserts += 1;
            }
            if range.is_empty() {
                return;
            }
            self.slots[index] = Slot {
                range: range.clone(),
                node,
                state: SlotState::Adding,
            };
            out.push(Event::Add {
                range,
                via: Via::Dimm { slot },
            });
            // A remove flag set together with the insert waits for the next scan.
            self.rescan |= status & REMOVE != 0;
            return;
        }
        if status & REMOVE != 0 {
            self.control(slot, CLEAR_REMOVE);
            self.stats.removes += 1;
            self.ost(slot, OST_EV_EJECT_REQUEST, OST_EJECT_IN_PROGRESS);
            if state == SlotState::Online {
                self.slots[index].state = SlotState::Removing;
                out.push(Event::Remove {
                    range: self.slots[index].range.clone(),
                    via: Via::Dimm { slot },
                });
            } else {
                // Nothing of it is online (the add failed or never happened): eject.
                self.eject(slot);
            }
        }
    }

    fn eject(&mut self, slot: u32) {
        self.control(slot, EJECT);
        self.stats.ejects += 1;
        self.ost(slot, OST_EV_EJECT_REQUEST, OST_SUCCESS);
        self.slots[slot as usize] = Slot {
            range: 0..0,
            node: 0,
            state: SlotState::Empty,
        };
    }
}

impl<R: MhpdRegs> EventSource for Mhpd<R> {
    fn name(&self) -> &str {
        self.name
    }

    fn poll(&mut self, out: &mut Vec<Event>) {
        let notified = self.regs.take_notification();
        if !(notified || self.first_scan || self.rescan) {
            return;
        }
        self.rescan = false;
        self.stats.scans += 1;
        let before = out.len();
        for slot in 0..self.slots.len() as u32 {
            self.scan_slot(slot, out);
        }
        self.first_scan = false;
        // Completions may make more work visible (a remove queued behind an insert).
        self.rescan |= out.len() > before;
    }

    fn complete(&mut self, event: &Event, result: &Result<(), HotplugError>) {
        let Via::Dimm { slot } = event.via() else {
            return;
        };
        let Some(current) = self.slots.get(slot as usize).map(|s| s.state.clone()) else {
            return;
        };
        match (event, current, result) {
            (Event::Add { .. }, SlotState::Adding, Ok(())) => {
                self.slots[slot as usize].state = SlotState::Online;
                self.ost(slot, OST_EV_DEVICE_CHECK, OST_SUCCESS);
            }
            (Event::Add { .. }, SlotState::Adding, Err(_)) => {
                self.slots[slot as usize].state = SlotState::Failed;
                self.ost(slot, OST_EV_DEVICE_CHECK, OST_FAILURE);
            }
            (Event::Remove { .. }, SlotState::Removing, Ok(())) => self.eject(slot),
            (Event::Remove { .. }, SlotState::Removing, Err(e)) => {
                self.slots[slot as usize].state = SlotState::Online;
                self.stats.refusals += 1;
                let status = match e {
                    HotplugError::Busy { .. } => OST_DEVICE_BUSY,
                    _ => OST_FAILURE,
                };
                self.ost(slot, OST_EV_EJECT_REQUEST, status);
            }
            _ => {}
        }
    }

    fn describe(&self, out: &mut dyn fmt::Write) -> fmt::Result {
        let s = self.stats;
        write!(
            out,
            "hotplug.source name={} base={:#x} slots={} scans={} inserts={} removes={} ejects={} refusals={} ",
            self.name,
            self.base,
            self.slots.len(),
            s.scans,
            s.inserts,
            s.removes,
            s.ejects,
            s.refusals
        )?;
        self.regs.describe(out)?;
        writeln!(out)?;
        for (i, slot) in self.slots.iter().enumerate() {
            if slot.state == SlotState::Empty {
                continue;
            }
            writeln!(
                out,
                "hotplug.slot source={} slot={i} range={:#x}-{:#x} node={} state={}",
                self.name,
                slot.range.start,
                slot.range.end,
                slot.node,
                match slot.state {
                    SlotState::Empty => "empty",
                    SlotState::Adding => "adding",
                    SlotState::Online => "online",
                    SlotState::Failed => "failed",
                    SlotState::Removing => "removing",
                }
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "mhpd_tests.rs"]
mod tests;
