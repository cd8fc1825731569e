//! Hotplug events and their sources. A source (the ACPI memory-hotplug controller, the
//! GED, a virtio-mem device) turns what its hardware reports into [`Event`]s; the engine
//! handles them one at a time in arrival order and tells the source how each ended, so
//! it can acknowledge the hardware (`_OST`, virtio-mem UNPLUG, eject).

use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;

use super::engine::HotplugError;

/// Who asked for a range to come or go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// A pc-dimm in ACPI memory-hotplug slot `slot`.
    Dimm {
        /// The MHPD slot.
        slot: u32,
    },
    /// A virtio-mem device (index among the kernel's virtio-mem devices).
    VirtioMem {
        /// Device index.
        device: u32,
    },
    /// An NVDIMM hot-added through the FIT (becomes a ZONE_DEVICE region).
    Nvdimm {
        /// The SPA range index of the FIT.
        range_index: u16,
    },
    /// The shell (tests and experiments on memory that is really there).
    Shell,
}

impl Via {
    /// Whether the source asks for the memmap inside the memory it adds
    /// (`MHP_MEMMAP_ON_MEMORY`, honoured when `memory_hotplug.memmap_on_memory` allows):
    /// the ACPI memory-hotplug driver does (drivers/acpi/acpi_memhotplug.c), virtio-mem
    /// does not (`add_memory_driver_managed(.., MHP_MERGE_RESOURCE | MHP_NID_IS_MGID)`),
    /// and neither does Linux's probe interface; the shell's `probe` asks for it
    /// anyway, standing in for s390x standby memory (sclp_cmd.c asks for it) where no
    /// DIMM exists.
    pub const fn memmap_on_memory(self) -> bool {
        matches!(self, Via::Dimm { .. } | Via::Shell)
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Via::Dimm { slot } => write!(f, "via=dimm slot={slot}"),
            Via::VirtioMem { device } => write!(f, "via=virtio-mem device={device}"),
            Via::Nvdimm { range_index } => write!(f, "via=nvdimm range_index={range_index}"),
            Via::Shell => write!(f, "via=shell"),
        }
    }
}

/// What a source asks of the engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Hot-add `range` (physical, whole memory blocks) as RAM and online it.
    Add {
        /// The physical range.
        range: Range<u64>,
        /// The requester.
        via: Via,
    },
    /// Hot-add `range` (whole memory blocks) but online only `online`; the rest stays
    /// offline and out of the allocator until [`Event::OnlinePart`] (virtio-mem sub-block
    /// mode: Linux's fake-offline pages of unplugged sub-blocks).
    AddPartial {
        /// The physical range.
        range: Range<u64>,
        /// The part to online (inside `range`, page-aligned).
        online: Range<u64>,
        /// The requester.
        via: Via,
    },
    /// Online `range`, an offline part of an added range (sub-blocks just plugged:
    /// Linux's `virtio_mem_fake_online`).
    OnlinePart {
        /// The physical range.
        range: Range<u64>,
        /// The requester.
        via: Via,
    },
    /// Take `range`, an online part of an added range, offline again, keeping the range
    /// added; refused if a page is in use (Linux's `virtio_mem_fake_offline`).
    OfflinePart {
        /// The physical range.
        range: Range<u64>,
        /// The requester.
        via: Via,
    },
    /// Offline and remove `range`, which must be a range added before.
    Remove {
        /// The physical range.
        range: Range<u64>,
        /// The requester.
        via: Via,
    },
    /// A new persistent-memory range (NVDIMM hot-add): becomes a device region.
    AddDevice {
        /// The physical range.
        range: Range<u64>,
        /// The requester.
        via: Via,
    },
}

impl Event {
    /// The range the event is about.
    pub fn range(&self) -> &Range<u64> {
        match self {
            Event::Add { range, .. }
            | Event::AddPartial { range, .. }
            | Event::OnlinePart { range, .. }
            | Event::OfflinePart { range, .. }
            | Event::Remove { range, .. }
            | Event::AddDevice { range, .. } => range,
        }
    }

    /// Who asked.
    pub fn via(&self) -> Via {
        match self {
            Event::Add { via, .. }
            | Event::AddPartial { via, .. }
            | Event::OnlinePart { via, .. }
            | Event::OfflinePart { via, .. }
            | Event::Remove { via, .. }
            | Event::AddDevice { via, .. } => *via,
        }
    }
}

/// A device that produces hotplug events.
pub trait EventSource {
    /// Short name for records, e.g. `"acpi-mhpd"`, `"virtio-mem-ccw.0"`.
    fn name(&self) -> &str;

    /// Looks at the hardware (interrupt status, config generation, registers) and appends
    /// new events in the order they happened. Cheap when nothing changed.
    fn poll(&mut self, out: &mut Vec<Event>);

    /// How `event` ended; the source acknowledges its hardware accordingly (e.g. `_OST`
    /// insert success or eject refusal, virtio-mem UNPLUG only after a successful remove).
    fn complete(&mut self, event: &Event, result: &Result<(), HotplugError>);

    /// One or more `key=value` lines describing the device, for the `hotplug` command.
    fn describe(&self, out: &mut dyn fmt::Write) -> fmt::Result;
}
