//! Device regions: the one list of what discovery found (DESIGN.md §1–2), checked
//! against the boot RAM map and each other, each device region carrying the nvdimm pfn
//! layout its altmap is carved from (linux-mm.md §1.4).
//!
//! Flow: [`RegionSet::new`] over the boot memory map → [`RegionSet::add_checked`] per
//! discovered range (or [`discover`] for all sources at once) → [`RegionSet::carve`]
//! hands the RAM map, minus the `memmap=` ranges, to the allocator → for each device
//! region [`Region::altmap`] gives a fresh `VmemAltmap` for `add_memory`.
//!
//! Rules, each refusal one [`RegionError`] naming the range and the reason, the other
//! regions unaffected:
//! - not zero-sized; ending inside the memory model (`max_phys_bits`);
//! - start 2 MiB (subsection) aligned; size too, except NFIT ranges, whose unaligned
//!   tail is cut off as Linux's `nd_pfn_init` does (`end_trunc`);
//! - `memmap=` ranges lie wholly inside usable RAM (they are carved out of it);
//! - other ranges do not touch RAM, and NFIT ranges lie inside a hotplug window when one
//!   is known;
//! - device regions do not overlap each other, nor windows each other (device regions
//!   sit inside windows, which is the point of a window);
//! - a device region is at least 16 MiB, as Linux requires of the namespace a pfn device
//!   claims (`nd_namespace_store`: `__nvdimm_namespace_capacity() < SZ_16M` is `-ENXIO`);
//! - a device region holds its own memmap: `dataoff` < usable size.

mod carve;
mod discover;
mod record;
#[cfg(test)]
mod tests;

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;

pub use carve::{carve_ram, usable_spans};
pub use discover::{Sources, discover};
pub use record::{
    AsciiMap, MAP_COLUMNS, OutcomeRecord, altmap_record, ascii_map, human_size, regions_table,
};

use crate::boot_info::{HotplugWindow, MemoryMap};
use crate::firmware::memmap_param::{MemmapError, PmemRequest};
use crate::firmware::nfit::SpaRange;
use crate::firmware::srat::MemAffinity;
use crate::mm::VmemAltmap;
use crate::mm::addr::PAGE_SIZE;
use crate::mm::arch::{MmArch, SUBSECTION_SHIFT};
use crate::mm::nvdimm::{NdPfnLayout, NvdimmError, nd_pfn_init, nvdimm_altmap};

/// Subsection size: the alignment every region start needs.
pub const SUBSECTION: u64 = 1 << SUBSECTION_SHIFT;
/// Default data alignment of a device region (Linux's PMD-size `nd_pfn->align`).
pub const DEFAULT_ALIGN: u64 = 2 << 20;
/// Largest data alignment accepted (PUD size).
pub const MAX_ALIGN: u64 = 1 << 30;
/// Smallest device region: Linux's `SZ_16M` floor on the capacity of a namespace that a
/// pfn (fsdax) device may claim (`nd_namespace_store`, drivers/nvdimm/claim.c).
pub const MIN_DEVICE_SIZE: u64 = 16 << 20;

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
        record::AddRecord(self)
    }
}

/// What an existing range a request collided with is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Conflict {
    /// An accepted region.
    Region {
        /// Its id.
        id: u32,
        /// Its range.
        range: Range<u64>,
    },
    /// RAM in the boot memory map.
    Ram {
        /// The memory-map span.
        range: Range<u64>,
    },
}

/// Why a request was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Size 0.
    ZeroSize,
    /// The range wraps or ends past what the memory model covers.
    OutOfRange {
        /// First address past the memory model (`1 << max_phys_bits`).
        limit: u64,
    },
    /// A value is not aligned.
    Unaligned {
        /// `start`, `size` or `align`.
        what: &'static str,
        /// The value.
        value: u64,
        /// The alignment it needs (for `align`: the accepted maximum).
        align: u64,
    },
    /// A `memmap=` range not wholly inside usable RAM.
    OutsideRam {
        /// The first byte of the range that is not usable RAM.
        first_bad: u64,
    },
    /// A device range outside every known hotplug window.
    OutsideHotplugWindow {
        /// How many windows are known.
        windows: usize,
    },
    /// The range overlaps a region or RAM.
    Overlap(Conflict),
    /// The region is under Linux's 16 MiB namespace floor ([`MIN_DEVICE_SIZE`]).
    UnderMinimum {
        /// The floor.
        minimum: u64,
    },
    /// The region cannot hold its own memmap.
    TooSmall {
        /// Where data would start.
        dataoff: u64,
        /// Size minus `end_trunc`.
        usable: u64,
    },
    /// The kernel heap refused room to record the region (`-ENOMEM`; the set is unchanged
    /// and this refusal is not kept in its outcomes).
    NoMemory,
}

impl Reason {
    /// The stable short code used in records.
    pub const fn code(&self) -> &'static str {
        match self {
            Reason::ZeroSize => "zero-size",
            Reason::OutOfRange { .. } => "out-of-range",
            Reason::Unaligned { .. } => "unaligned",
            Reason::OutsideRam { .. } => "outside-ram",
            Reason::OutsideHotplugWindow { .. } => "outside-hotplug-window",
            Reason::Overlap(_) => "overlap",
            Reason::UnderMinimum { .. } | Reason::TooSmall { .. } => "too-small",
            Reason::NoMemory => "no-memory",
        }
    }
}

/// A refused request: the range, where it came from, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegionError {
    /// First byte asked for.
    pub start: u64,
    /// Size asked for.
    pub size: u64,
    /// Kind asked for.
    pub kind: RegionKind,
    /// Where it came from.
    pub source: Source,
    /// Why it was refused.
    pub reason: Reason,
}

impl RegionError {
    /// The end for display (saturating: a wrapping request still prints).
    pub const fn end(&self) -> u64 {
        self.start.saturating_add(self.size)
    }

    /// The console record `region: reject range=.. reason=.. ...`.
    pub fn record(&self) -> impl fmt::Display + '_ {
        record::RejectRecord(self)
    }
}

impl fmt::Display for RegionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "region {:#x}-{:#x}: ", self.start, self.end())?;
        match &self.reason {
            Reason::ZeroSize => write!(f, "zero-sized"),
            Reason::OutOfRange { limit } => write!(
                f,
                "ends past the memory model's limit {limit:#x} (size {:#x})",
                self.size
            ),
            Reason::Unaligned { what, value, align } if *what == "align" => write!(
                f,
                "alignment {value:#x} is not a power of two in {PAGE_SIZE:#x}..={align:#x}"
            ),
            Reason::Unaligned { what, value, align } => {
                write!(
                    f,
                    "{what} {value:#x} is not {align:#x} (subsection) aligned"
                )
            }
            Reason::OutsideRam { first_bad } => write!(
                f,
                "not wholly inside usable RAM (first non-usable byte {first_bad:#x})"
            ),
            Reason::OutsideHotplugWindow { windows } => write!(
                f,
                "outside the hotplug window{}",
                if *windows == 1 { "" } else { "s" }
            ),
            Reason::Overlap(Conflict::Region { id, range }) => write!(
                f,
                "overlaps region {id} {:#x}-{:#x}",
                range.start, range.end
            ),
            Reason::Overlap(Conflict::Ram { range }) => {
                write!(f, "overlaps RAM {:#x}-{:#x}", range.start, range.end)
            }
            Reason::UnderMinimum { minimum } => write!(
                f,
                "size {:#x} is under the {minimum:#x} a namespace needs (Linux: ENXIO)",
                self.size
            ),
            Reason::TooSmall { dataoff, usable } => write!(
                f,
                "too small for its memmap: needs dataoff {dataoff:#x} >= usable size {usable:#x}"
            ),
            Reason::NoMemory => write!(f, "no heap room to record it"),
        }
    }
}

/// One step of discovery, in order, for the console.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A region was accepted with this id.
    Added(u32),
    /// A request was refused.
    Rejected(RegionError),
    /// A `memmap=` item could not be read.
    Ignored(MemmapError),
}

/// The region list and the facts it is checked against.
#[derive(Clone, Debug)]
pub struct RegionSet {
    arch: MmArch,
    usable: Vec<Range<u64>>,
    ram: Vec<Range<u64>>,
    regions: Vec<Region>,
    outcomes: Vec<Outcome>,
}

impl RegionSet {
    /// An empty set checked against `ram`, the boot memory map *before* carving.
    pub fn new(arch: MmArch, ram: &MemoryMap) -> Self {
        Self {
            arch,
            usable: usable_spans(ram),
            ram: ram
                .regions()
                .iter()
                .filter(|r| r.kind.is_ram())
                .map(|r| r.start..r.end)
                .collect(),
            regions: Vec::new(),
            outcomes: Vec::new(),
        }
    }

    /// The arch the layouts are computed for.
    pub const fn arch(&self) -> &MmArch {
        &self.arch
    }

    /// Accepted regions in id order.
    pub fn regions(&self) -> &[Region] {
        &self.regions
    }

    /// The region with this id.
    pub fn get(&self, id: u32) -> Option<&Region> {
        self.regions.get(usize::try_from(id).ok()?)
    }

    /// Device regions (those with an altmap), in id order.
    pub fn devices(&self) -> impl Iterator<Item = &Region> {
        self.regions.iter().filter(|r| r.kind.is_device())
    }

    /// Hotplug windows, in id order.
    pub fn windows(&self) -> impl Iterator<Item = &Region> {
        self.regions
            .iter()
            .filter(|r| r.kind == RegionKind::HotplugWindow)
    }

    /// Every add, reject and ignore so far, in order.
    pub fn outcomes(&self) -> &[Outcome] {
        &self.outcomes
    }

    /// The refusals so far, in order.
    pub fn rejected(&self) -> impl Iterator<Item = &RegionError> {
        self.outcomes.iter().filter_map(|o| match o {
            Outcome::Rejected(e) => Some(e),
            _ => None,
        })
    }

    /// A fresh altmap for a device region.
    pub fn altmap(&self, id: u32) -> Option<VmemAltmap> {
        self.get(id)?.altmap(&self.arch)
    }

    /// The ranges `memmap=` carves out of RAM, in id order.
    pub fn carved_ranges(&self) -> Vec<Range<u64>> {
        self.regions
            .iter()
            .filter(|r| matches!(r.source, Source::MemmapParam { .. }))
            .map(Region::range)
            .collect()
    }

    /// `map` with the `memmap=` regions turned from usable into reserved.
    pub fn carve(&self, map: &MemoryMap) -> MemoryMap {
        carve_ram(map, &self.carved_ranges())
    }

    /// The console records of every outcome so far, one line each.
    pub fn records(&self) -> impl Iterator<Item = OutcomeRecord<'_>> {
        self.outcomes.iter().map(move |o| OutcomeRecord {
            set: self,
            outcome: o,
        })
    }

    /// Notes a `memmap=` item that could not be read.
    pub fn note_ignored(&mut self, error: MemmapError) {
        log::debug!("{error}");
        self.outcomes.push(Outcome::Ignored(error));
    }

    /// Checks a request against the rules (module docs) and adds it, or records and
    /// returns the refusal. Returns the new region's id.
    pub fn add_checked(&mut self, req: RegionRequest) -> Result<u32, RegionError> {
        // Room for the region and its outcome first: a refused heap allocation changes
        // nothing (and is the one refusal not kept in the outcomes).
        if self.regions.try_reserve(1).is_err() || self.outcomes.try_reserve(1).is_err() {
            return Err(RegionError {
                start: req.start,
                size: req.size,
                kind: req.kind,
                source: req.source,
                reason: Reason::NoMemory,
            });
        }
        match self.check(&req) {
            Ok(layout) => {
                let id = u32::try_from(self.regions.len()).unwrap_or(u32::MAX);
                let region = Region {
                    id,
                    start: req.start,
                    size: req.size,
                    kind: req.kind,
                    source: req.source,
                    node: req.node,
                    layout,
                };
                log::debug!("{}", region.record());
                self.regions.push(region);
                self.outcomes.push(Outcome::Added(id));
                Ok(id)
            }
            Err(reason) => {
                let error = RegionError {
                    start: req.start,
                    size: req.size,
                    kind: req.kind,
                    source: req.source,
                    reason,
                };
                log::debug!("{error}");
                self.outcomes.push(Outcome::Rejected(error.clone()));
                Err(error)
            }
        }
    }

    fn check(&self, req: &RegionRequest) -> Result<Option<NdPfnLayout>, Reason> {
        let limit = 1u64 << self.arch.max_phys_bits;
        if req.size == 0 {
            return Err(Reason::ZeroSize);
        }
        let end = match req.start.checked_add(req.size) {
            Some(end) if end <= limit => end,
            _ => return Err(Reason::OutOfRange { limit }),
        };
        check_alignment(req)?;
        let range = req.start..end;
        if matches!(req.source, Source::MemmapParam { .. }) {
            if let Some(first_bad) = first_uncovered(&self.usable, &range) {
                return Err(Reason::OutsideRam { first_bad });
            }
        } else {
            if let Some(ram) = self.ram.iter().find(|r| overlaps(r, &range)) {
                return Err(Reason::Overlap(Conflict::Ram { range: ram.clone() }));
            }
            let windows = self.windows().count();
            if matches!(req.source, Source::Nfit { .. })
                && windows > 0
                && !self
                    .windows()
                    .any(|w| w.start <= range.start && range.end <= w.end())
            {
                return Err(Reason::OutsideHotplugWindow { windows });
            }
        }
        let rivals = self
            .regions
            .iter()
            .filter(|r| r.kind.is_device() == req.kind.is_device());
        if let Some(other) = rivals.clone().find(|r| overlaps(&r.range(), &range)) {
            return Err(Reason::Overlap(Conflict::Region {
                id: other.id,
                range: other.range(),
            }));
        }
        if !req.kind.is_device() {
            return Ok(None);
        }
        if req.size < MIN_DEVICE_SIZE {
            return Err(Reason::UnderMinimum {
                minimum: MIN_DEVICE_SIZE,
            });
        }
        match nd_pfn_init(req.start, req.size, req.align) {
            Ok(layout) => Ok(Some(layout)),
            Err(NvdimmError::TooSmall { dataoff, usable }) => {
                Err(Reason::TooSmall { dataoff, usable })
            }
            Err(NvdimmError::StartMisaligned { start, align }) => Err(Reason::Unaligned {
                what: "start",
                value: start,
                align,
            }),
            Err(NvdimmError::BadAlign(value)) => Err(Reason::Unaligned {
                what: "align",
                value,
                align: MAX_ALIGN,
            }),
        }
    }
}

fn check_alignment(req: &RegionRequest) -> Result<(), Reason> {
    if !req.start.is_multiple_of(SUBSECTION) {
        return Err(Reason::Unaligned {
            what: "start",
            value: req.start,
            align: SUBSECTION,
        });
    }
    let nfit = matches!(req.source, Source::Nfit { .. });
    if !nfit && !req.size.is_multiple_of(SUBSECTION) {
        return Err(Reason::Unaligned {
            what: "size",
            value: req.size,
            align: SUBSECTION,
        });
    }
    if !req.align.is_power_of_two() || !(PAGE_SIZE..=MAX_ALIGN).contains(&req.align) {
        return Err(Reason::Unaligned {
            what: "align",
            value: req.align,
            align: MAX_ALIGN,
        });
    }
    Ok(())
}

fn overlaps(a: &Range<u64>, b: &Range<u64>) -> bool {
    a.start < b.end && b.start < a.end
}

/// The first byte of `range` not covered by `spans` (sorted, merged), if any.
fn first_uncovered(spans: &[Range<u64>], range: &Range<u64>) -> Option<u64> {
    let mut pos = range.start;
    for span in spans {
        if span.end <= pos {
            continue;
        }
        if span.start > pos {
            break;
        }
        pos = span.end;
        if pos >= range.end {
            return None;
        }
    }
    Some(pos)
}
