//! The error type of the mm core, with the Linux errno each case corresponds to.

use core::fmt;

use super::addr::{Pfn, VirtAddr};

/// What an allocation was for; used by errors, counters and fault injection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AllocKind {
    /// A leaf (huge or 4 KiB) taken from a `VmemAltmap`.
    AltmapLeaf,
    /// A leaf taken from RAM (the frame source).
    RamLeaf,
    /// A page-table page (always RAM).
    PageTable,
    /// A buddy-allocator block.
    Buddy,
    /// A kernel-heap allocation (bookkeeping: sections, ranges, events).
    Heap,
}

impl AllocKind {
    /// Number of kinds, for per-kind arrays.
    pub const COUNT: usize = 5;

    /// Index into per-kind arrays.
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// Errors of the vmemmap, sparse, altmap and buddy entry points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MmError {
    /// A value is not aligned as required (`-EINVAL`).
    Misaligned {
        /// What was checked.
        what: &'static str,
        /// The offending value.
        value: u64,
        /// Required alignment.
        align: u64,
    },
    /// An empty range or subsection mask (`-EINVAL`).
    Empty,
    /// A value lies outside what the memory model covers (`-EINVAL`).
    OutOfRange {
        /// What was checked.
        what: &'static str,
        /// The offending value.
        value: u64,
        /// First value past the limit.
        limit: u64,
    },
    /// The altmap does not fit the range it is used for (`-EINVAL`).
    AltmapInvalid(&'static str),
    /// Some of the subsections are already present (`-EEXIST`).
    SubsectionExists {
        /// The section.
        section: u64,
        /// Bits of the request that were already set.
        overlap: u128,
    },
    /// Some of the subsections are not present (`-ENOENT`; Linux WARNs).
    SubsectionNotPresent {
        /// The section.
        section: u64,
        /// Bits of the request that were not set.
        missing: u128,
    },
    /// An allocation failed, for real or injected (`-ENOMEM`).
    NoMemory(AllocKind),
    /// The altmap cannot satisfy a request (`-ENOMEM`, no fallback).
    AltmapExhausted {
        /// Pages requested.
        requested: u64,
        /// Padding the request would need on top.
        padding: u64,
        /// Pages left (`vmem_altmap_nr_free`).
        nr_free: u64,
    },
    /// An altmap request that is not a whole number of pages (Linux returns NULL).
    NotPageMultiple {
        /// The size in bytes.
        size: u64,
    },
    /// x86 without PSE cannot place the memmap in an altmap (`-ENOMEM`).
    NoHugeSupportForAltmap,
    /// A leaf belongs to an altmap other than the one passed, or to one when none was
    /// passed (`-EINVAL`; Linux would free device memory to the wrong allocator).
    AltmapMismatch {
        /// Frame of the leaf.
        leaf: Pfn,
    },
    /// Freeing an altmap block that is not outstanding (`-EINVAL`).
    AltmapBlockUnknown {
        /// First frame of the block.
        pfn: Pfn,
        /// Pages in the block.
        nr_pages: u64,
    },
    /// The tables hold something the walker did not expect at this address (`-EEXIST`).
    PageTableConflict {
        /// The address.
        va: VirtAddr,
        /// Level (0 = root).
        level: usize,
    },
    /// A page of the range is in use (`-EBUSY`).
    Busy(Pfn),
    /// A page is not in the state the operation needs (`-EINVAL`).
    BadPageState {
        /// The page.
        pfn: Pfn,
        /// What was wrong.
        why: &'static str,
    },
}

impl MmError {
    /// The Linux errno (negative) this error corresponds to.
    pub const fn errno(&self) -> i32 {
        const EINVAL: i32 = -22;
        const EEXIST: i32 = -17;
        const ENOENT: i32 = -2;
        const ENOMEM: i32 = -12;
        const EBUSY: i32 = -16;
        match self {
            MmError::SubsectionExists { .. } | MmError::PageTableConflict { .. } => EEXIST,
            MmError::SubsectionNotPresent { .. } => ENOENT,
            MmError::NoMemory(_)
            | MmError::AltmapExhausted { .. }
            | MmError::NotPageMultiple { .. }
            | MmError::NoHugeSupportForAltmap => ENOMEM,
            MmError::Busy(_) => EBUSY,
            _ => EINVAL,
        }
    }
}

impl fmt::Display for MmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MmError::Misaligned { what, value, align } => {
                write!(f, "{what} {value:#x} is not {align:#x}-aligned")
            }
            MmError::Empty => write!(f, "empty range"),
            MmError::OutOfRange { what, value, limit } => {
                write!(f, "{what} {value:#x} out of range (limit {limit:#x})")
            }
            MmError::AltmapInvalid(why) => write!(f, "invalid altmap: {why}"),
            MmError::SubsectionExists { section, overlap } => {
                write!(
                    f,
                    "section {section}: subsections {overlap:#x} already present"
                )
            }
            MmError::SubsectionNotPresent { section, missing } => {
                write!(f, "section {section}: subsections {missing:#x} not present")
            }
            MmError::NoMemory(kind) => write!(f, "out of memory ({kind:?})"),
            MmError::AltmapExhausted {
                requested,
                padding,
                nr_free,
            } => write!(
                f,
                "altmap exhausted: need {requested}+{padding} pages, {nr_free} free"
            ),
            MmError::NotPageMultiple { size } => {
                write!(
                    f,
                    "altmap allocations must be a multiple of PAGE_SIZE ({size:#x})"
                )
            }
            MmError::NoHugeSupportForAltmap => write!(f, "no cpu support for altmap allocations"),
            MmError::AltmapMismatch { leaf } => {
                write!(f, "leaf at pfn {leaf} belongs to a different altmap")
            }
            MmError::AltmapBlockUnknown { pfn, nr_pages } => {
                write!(f, "altmap block {pfn}+{nr_pages} is not outstanding")
            }
            MmError::PageTableConflict { va, level } => {
                write!(f, "unexpected entry at {va} level {level}")
            }
            MmError::Busy(pfn) => write!(f, "pfn {pfn} is in use"),
            MmError::BadPageState { pfn, why } => write!(f, "pfn {pfn}: {why}"),
        }
    }
}
