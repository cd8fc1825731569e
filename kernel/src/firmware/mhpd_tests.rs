//! The MHPD source against a model of QEMU's controller (`hw/acpi/memory_hotplug.c`):
//! selector, per-slot flags, `_OST` events as QMP would report them, eject.

use alloc::vec::Vec;
use core::fmt;

use super::*;

#[derive(Clone, Debug, Default)]
struct Dimm {
    base: u64,
    size: u64,
    node: u32,
    inserting: bool,
    removing: bool,
    ost_event: u32,
}

/// QEMU's side: slots, selector, the `ACPI_DEVICE_OST` log and `DEVICE_DELETED`s.
#[derive(Default)]
struct Qemu {
    slots: Vec<Option<Dimm>>,
    selector: u32,
    /// `(slot, source, status, device present)`.
    osts: Vec<(u32, u32, u32, bool)>,
    deleted: Vec<u32>,
    notified: bool,
    writes: Vec<(u8, u32)>,
}

impl Qemu {
    fn new(slots: usize) -> Self {
        Qemu {
            slots: alloc::vec![None; slots],
            ..Qemu::default()
        }
    }

    fn plug(&mut self, slot: usize, base: u64, size: u64) {
        self.slots[slot] = Some(Dimm {
            base,
            size,
            node: 0,
            inserting: true,
            ..Dimm::default()
        });
        self.notified = true;
    }

    fn unplug_request(&mut self, slot: usize) {
        self.slots[slot].as_mut().expect("plugged").removing = true;
        self.notified = true;
    }

    fn cur(&mut self) -> Option<&mut Dimm> {
        self.slots.get_mut(self.selector as usize)?.as_mut()
    }
}

impl MhpdRegs for Qemu {
    fn read32(&mut self, offset: u8) -> u32 {
        let Some(d) = self.cur() else { return 0 };
        match offset {
            reg::ADDR_LO => d.base as u32,
            reg::ADDR_HI => (d.base >> 32) as u32,
            reg::SIZE_LO => d.size as u32,
            reg::SIZE_HI => (d.size >> 32) as u32,
            reg::NODE => d.node,
            _ => u32::MAX,
        }
    }

    fn write32(&mut self, offset: u8, value: u32) {
        self.writes.push((offset, value));
        if offset == reg::SELECT {
            self.selector = value;
            return;
        }
        let slot = self.selector;
        let in_range = (slot as usize) < self.slots.len();
        match offset {
            reg::OST_EVENT => {
                if let Some(d) = self.cur() {
                    d.ost_event = value;
                }
            }
            reg::OST_STATUS if in_range => {
                let event = self.cur().map_or(OST_EV_EJECT_REQUEST, |d| d.ost_event);
                let present = self.cur().is_some();
                self.osts.push((slot, event, value, present));
            }
            _ => {}
        }
    }

    fn read8(&mut self, offset: u8) -> u8 {
        assert_eq!(offset, reg::STATUS);
        self.cur().map_or(0, |d| {
            ENABLED | u8::from(d.inserting) << 1 | u8::from(d.removing) << 2
        })
    }

    fn write8(&mut self, offset: u8, value: u8) {
        assert_eq!(offset, reg::STATUS);
        self.writes.push((offset, u32::from(value)));
        let slot = self.selector;
        let Some(d) = self.cur() else { return };
        if value & CLEAR_INSERT != 0 {
            d.inserting = false;
        } else if value & CLEAR_REMOVE != 0 {
            d.removing = false;
        } else if value & EJECT != 0 {
            self.slots[slot as usize] = None;
            self.deleted.push(slot);
        }
    }

    fn take_notification(&mut self) -> bool {
        core::mem::take(&mut self.notified)
    }

    fn describe(&self, out: &mut dyn fmt::Write) -> fmt::Result {
        out.write_str("notify=model")
    }
}

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

fn source(slots: usize) -> Mhpd<Qemu> {
    Mhpd::new(Qemu::new(slots), "acpi-mhpd", 0xa00, slots as u32)
}

fn poll(m: &mut Mhpd<Qemu>) -> Vec<Event> {
    let mut out = Vec::new();
    m.poll(&mut out);
    out
}

fn add(slot: u32, base: u64, size: u64) -> Event {
    Event::Add {
        range: base..base + size,
        via: Via::Dimm { slot },
    }
}

fn remove(slot: u32, base: u64, size: u64) -> Event {
    Event::Remove {
        range: base..base + size,
        via: Via::Dimm { slot },
    }
}

#[test]
fn insert_is_acknowledged_with_ost_success_after_the_add() {
    let mut m = source(4);
    assert!(poll(&mut m).is_empty(), "first scan: nothing plugged");
    assert!(poll(&mut m).is_empty(), "no notification, no scan");
    assert_eq!(m.stats().scans, 1);
    m.regs().plug(1, 4 * GIB, 128 * MIB);
    let events = poll(&mut m);
    assert_eq!(events, [add(1, 4 * GIB, 128 * MIB)]);
    assert!(
        !m.regs().slots[1].as_ref().unwrap().inserting,
        "flag cleared"
    );
    assert!(
        m.regs().osts.is_empty(),
        "no _OST before the engine finished"
    );
    m.complete(&events[0], &Ok(()));
    assert_eq!(m.regs().osts, [(1, 1, 0, true)]);
    assert_eq!(m.slots()[1].state, SlotState::Online);
    assert!(poll(&mut m).is_empty(), "a rescan finds nothing more");
}

#[test]
fn failed_insert_reports_failure_and_a_later_remove_ejects_at_once() {
    let mut m = source(2);
    m.regs().plug(0, 4 * GIB, GIB);
    let events = poll(&mut m);
    m.complete(&events[0], &Err(HotplugError::Overlap { at: 4 * GIB }));
    assert_eq!(m.regs().osts, [(0, 1, 1, true)]);
    m.regs().unplug_request(0);
    assert!(poll(&mut m).is_empty(), "nothing to offline");
    assert_eq!(m.regs().deleted, [0]);
    assert_eq!(m.regs().osts[1..], [(0, 3, 0x84, true), (0, 3, 0, false)]);
}

#[test]
fn remove_follows_linux_ost_in_progress_eject_then_success() {
    let mut m = source(4);
    m.regs().plug(2, 5 * GIB, 256 * MIB);
    let ev = poll(&mut m);
    m.complete(&ev[0], &Ok(()));
    m.regs().unplug_request(2);
    m.regs().writes.clear();
    let events = poll(&mut m);
    assert_eq!(events, [remove(2, 5 * GIB, 256 * MIB)]);
    assert_eq!(m.regs().osts.last(), Some(&(2, 3, 0x84, true)));
    assert!(
        m.regs().deleted.is_empty(),
        "no eject before the engine succeeded"
    );
    m.complete(&events[0], &Ok(()));
    assert_eq!(m.regs().deleted, [2]);
    assert_eq!(m.regs().osts.last(), Some(&(2, 3, 0, false)));
    let controls: Vec<u32> = m
        .regs()
        .writes
        .iter()
        .filter(|(o, _)| *o == reg::STATUS)
        .map(|(_, v)| *v)
        .collect();
    assert_eq!(
        controls,
        [u32::from(CLEAR_REMOVE), u32::from(EJECT)],
        "one action per write"
    );
    assert_eq!(m.slots()[2].state, SlotState::Empty);
}

#[test]
fn busy_remove_is_refused_with_device_busy_and_can_be_retried() {
    let mut m = source(4);
    m.regs().plug(0, 4 * GIB, 128 * MIB);
    let ev = poll(&mut m);
    m.complete(&ev[0], &Ok(()));
    m.regs().unplug_request(0);
    let ev = poll(&mut m);
    m.complete(&ev[0], &Err(HotplugError::Busy { pfn: 0x100200 }));
    assert_eq!(m.regs().osts.last(), Some(&(0, 3, 0x82, true)));
    assert!(m.regs().slots[0].is_some(), "the DIMM stays");
    assert!(!m.regs().slots[0].as_ref().unwrap().removing);
    assert_eq!(m.slots()[0].state, SlotState::Online);
    assert!(poll(&mut m).is_empty());
    m.regs().unplug_request(0);
    let ev = poll(&mut m);
    assert_eq!(ev, [remove(0, 4 * GIB, 128 * MIB)]);
    m.complete(&ev[0], &Err(HotplugError::NoMm));
    assert_eq!(
        m.regs().osts.last(),
        Some(&(0, 3, 1, true)),
        "other errors: 1"
    );
    assert_eq!(m.stats().refusals, 2);
}

#[test]
fn cold_plugged_dimms_are_added_at_the_first_scan_without_ost() {
    let mut q = Qemu::new(4);
    q.slots[3] = Some(Dimm {
        base: 6 * GIB,
        size: 512 * MIB,
        node: 1,
        ..Dimm::default()
    });
    let mut m = Mhpd::new(q, "acpi-mhpd", 0xa00, 4);
    let ev = poll(&mut m);
    assert_eq!(ev, [add(3, 6 * GIB, 512 * MIB)]);
    assert_eq!(m.slots()[3].node, 1);
    m.complete(&ev[0], &Ok(()));
    assert_eq!(m.regs().osts, [(3, 1, 0, true)]);
}

#[test]
fn insert_and_remove_flags_together_take_two_scans_in_order() {
    let mut m = source(2);
    poll(&mut m);
    m.regs().plug(1, 4 * GIB, 128 * MIB);
    m.regs().unplug_request(1);
    let ev = poll(&mut m);
    assert_eq!(ev, [add(1, 4 * GIB, 128 * MIB)]);
    m.complete(&ev[0], &Ok(()));
    let ev = poll(&mut m);
    assert_eq!(
        ev,
        [remove(1, 4 * GIB, 128 * MIB)],
        "without a new notification"
    );
    m.complete(&ev[0], &Ok(()));
    assert_eq!(m.regs().deleted, [1]);
}

#[test]
fn two_dimms_in_one_notification_and_describe() {
    let mut m = source(4);
    poll(&mut m);
    m.regs().plug(0, 4 * GIB, 128 * MIB);
    m.regs().plug(1, 4 * GIB + 128 * MIB, 128 * MIB);
    let ev = poll(&mut m);
    assert_eq!(ev.len(), 2);
    m.complete(&ev[0], &Ok(()));
    let mut text = alloc::string::String::new();
    m.describe(&mut text).unwrap();
    assert!(text.starts_with("hotplug.source name=acpi-mhpd base=0xa00 slots=4 "));
    assert!(text.contains("notify=model"));
    assert!(text.contains("slot=0 range=0x100000000-0x108000000 node=0 state=online"));
    assert!(text.contains("slot=1 range=0x108000000-0x110000000 node=0 state=adding"));
}
