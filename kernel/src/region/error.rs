//! Why a request was refused ([`Reason`], [`Conflict`]), the refusal as the caller and
//! the console see it ([`RegionError`], one line naming the range and the reason), and
//! the [`Outcome`] of each discovery step.

use core::fmt;
use core::ops::Range;

use super::{RegionKind, Source};
use crate::firmware::memmap_param::MemmapError;
use crate::mm::addr::PAGE_SIZE;

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
    /// The region is under Linux's 16 MiB namespace floor
    /// ([`MIN_DEVICE_SIZE`](super::MIN_DEVICE_SIZE)).
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
        super::record::RejectRecord(self)
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
