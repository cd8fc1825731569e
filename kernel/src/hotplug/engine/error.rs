//! [`HotplugError`]: why the engine refused an add, remove, online or offline, and the
//! `reason=...` words of its refusal record.

use core::fmt;
use core::ops::Range;

use crate::hotplug::verify_ram::RamReport;
use crate::mm::error::MmError;

/// Why an add, remove, online or offline was refused. Nothing changed in every case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HotplugError {
    /// Not a non-empty run of whole memory blocks (`-EINVAL`).
    Misaligned {
        /// The memory-block size the range must be made of.
        block: u64,
    },
    /// Part of the range is already live (boot RAM, a device region, an earlier add).
    Overlap {
        /// The first 2 MiB subsection found live.
        at: u64,
    },
    /// No earlier add has exactly this range (or, for a part, contains it).
    NotAdded(Range<u64>),
    /// A part to online or offline is not page-aligned, spans memory blocks, or is not
    /// (wholly) offline, respectively online.
    BadPart {
        /// What is wrong.
        why: &'static str,
    },
    /// A page of the range is in use; the memory stays online.
    Busy {
        /// The first busy frame.
        pfn: u64,
    },
    /// The memory manager refused (out of memory, altmap exhausted, ...).
    Mm(MmError),
    /// The memory manager is down (boot RAM bring-up failed).
    NoMm,
    /// The sampled check through the MMU failed; the add was undone.
    Verify(RamReport),
}

impl fmt::Display for HotplugError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HotplugError::Misaligned { block } => {
                write!(f, "reason=misaligned block={block:#x}")
            }
            HotplugError::Overlap { at } => write!(f, "reason=overlap at={at:#x}"),
            // The refusal record names the range already.
            HotplugError::NotAdded(_) => write!(f, "reason=not-added"),
            HotplugError::BadPart { why } => write!(f, "reason=bad-part detail={why}"),
            HotplugError::Busy { pfn } => write!(f, "reason=busy pfn={pfn:#x}"),
            HotplugError::Mm(e) => write!(f, "reason=mm errno={} detail={e:?}", e.errno()),
            HotplugError::NoMm => write!(f, "reason=no-memory-manager"),
            HotplugError::Verify(r) => write!(
                f,
                "reason=verify pages={} state.failures={} rw.failures={}",
                r.pages, r.state_failures, r.rw_failures
            ),
        }
    }
}

impl From<MmError> for HotplugError {
    fn from(e: MmError) -> Self {
        match e {
            MmError::Busy(pfn) => HotplugError::Busy { pfn: pfn.0 },
            other => HotplugError::Mm(other),
        }
    }
}
