//! What a region is and where it came from ([`RegionKind`], [`Source`]), the request a
//! discovery source makes ([`RegionRequest`]), and the region the set accepts for it
//! ([`Region`]), with its pfn layout and the altmap built from it.

use alloc::string::String;
use core::fmt;
use core::ops::Range;

use super::DEFAULT_ALIGN;
use crate::boot_info::HotplugWindow;
use crate::firmware::memmap_param::PmemRequest;
use crate::firmware::nfit::SpaRange;
use crate::firmware::srat::MemAffinity;
use crate::mm::VmemAltmap;
use crate::mm::arch::MmArch;
use crate::mm::nvdimm::{NdPfnLayout, nvdimm_altmap};

/// What a region is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionKind {
    /// Persistent memory (fsdax-like): NFIT pmem or `memmap=` carved from RAM.
    Pmem,
    /// Other ZONE_DEVICE memory (devdax-like).
    ZoneDevice,
    /// A window where memory may be hot-plugged; a container, not a device.
    HotplugWindow,
}

impl RegionKind {
    /// The stable name used in records.
    pub const fn name(self) -> &'static str {
        match self {
            RegionKind::Pmem => "pmem",
            RegionKind::ZoneDevice => "zone-device",
            RegionKind::HotplugWindow => "hotplug-window",
        }
    }

    /// Whether regions of this kind get an altmap and claim their range.
    pub const fn is_device(self) -> bool {
        !matches!(self, RegionKind::HotplugWindow)
    }
}

/// Where a region was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// An NFIT SPA range.
    Nfit {
        /// The SPA range structure index.
        range_index: u16,
    },
    /// A `memmap=SIZE!START` item.
    MemmapParam {
        /// The item as written.
        text: String,
    },
    /// An SRAT hot-pluggable memory affinity entry.
    Srat,
    /// The arch crate's `BootInfo::hotplug` (e.g. s390x DIAG 0x500).
    BootInfo,
}

impl Source {
    /// The stable name used in records.
    pub const fn name(&self) -> &'static str {
        match self {
            Source::Nfit { .. } => "nfit",
            Source::MemmapParam { .. } => "memmap",
            Source::Srat => "srat",
            Source::BootInfo => "boot",
        }
    }
}

/// A range asked for, before the checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegionRequest {
    /// First byte.
    pub start: u64,
    /// Size in bytes.
    pub size: u64,
    /// What it is.
    pub kind: RegionKind,
    /// Where it came from.
    pub source: Source,
    /// NUMA node, if known.
    pub node: Option<u32>,
    /// Data alignment for the pfn layout (a power of two, 4 KiB..=1 GiB; raised to 2 MiB).
    pub align: u64,
}

impl RegionRequest {
    /// A `memmap=SIZE!START` item: pmem carved from RAM.
    pub fn memmap(req: &PmemRequest) -> Self {
        Self {
            start: req.start,
            size: req.size,
            kind: RegionKind::Pmem,
            source: Source::MemmapParam {
                text: req.text.clone(),
            },
            node: None,
            align: DEFAULT_ALIGN,
        }
    }

    /// An NFIT SPA range (byte-addressable persistent memory).
    pub fn nfit(spa: &SpaRange) -> Self {
        Self {
            start: spa.base,
            size: spa.length,
            kind: RegionKind::Pmem,
            source: Source::Nfit {
                range_index: spa.index,
            },
            node: spa.node(),
            align: DEFAULT_ALIGN,
        }
    }

    /// An SRAT hot-pluggable window.
    pub fn srat_window(m: &MemAffinity) -> Self {
        Self {
            start: m.base,
            size: m.length,
            kind: RegionKind::HotplugWindow,
            source: Source::Srat,
            node: Some(m.domain),
            align: DEFAULT_ALIGN,
        }
    }

    /// The arch crate's hotplug window.
    pub fn boot_window(w: HotplugWindow) -> Self {
        Self {
            start: w.start,
            size: w.end.saturating_sub(w.start),
            kind: RegionKind::HotplugWindow,
            source: Source::BootInfo,
            node: None,
            align: DEFAULT_ALIGN,
        }
    }
}

/// An accepted region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Region {
    /// Position in the set, from 0, in acceptance order.
    pub id: u32,
    /// First byte.
    pub start: u64,
    /// Size in bytes, as the source gave it.
    pub size: u64,
    /// What it is.
    pub kind: RegionKind,
    /// Where it came from.
    pub source: Source,
    /// NUMA node, if known.
    pub node: Option<u32>,
    /// The nvdimm pfn layout (device regions only).
    pub layout: Option<NdPfnLayout>,
}

impl Region {
    /// One past the last byte.
    pub const fn end(&self) -> u64 {
        self.start + self.size
    }

    /// `[start, end)`.
    pub const fn range(&self) -> Range<u64> {
        self.start..self.end()
    }

    /// Bytes cut from the end to keep it aligned (`end_trunc`; NFIT ranges only).
    pub fn end_trunc(&self) -> u64 {
        self.layout.map_or(0, |l| l.end_trunc)
    }

    /// The range `add_memory` maps: the region minus `end_trunc`, subsection-aligned.
    pub fn map_range(&self) -> Range<u64> {
        self.start..self.end() - self.end_trunc()
    }

    /// A fresh altmap for this region (`__nvdimm_setup_pfn`); `None` for windows. Build
    /// one per `add_memory`, as Linux does, so `alloc` and `align` start at zero.
    pub fn altmap(&self, arch: &MmArch) -> Option<VmemAltmap> {
        self.layout.as_ref().map(|l| nvdimm_altmap(arch, l))
    }

    /// The console record `region: add id=.. start=.. ...`.
    pub fn record(&self) -> impl fmt::Display + '_ {
        super::record::AddRecord(self)
    }
}
