//! `vmemmap trace`: one event per table and per leaf a populate or free creates or
//! releases, and a summary per call, each printable as one stable record line.
//!
//! The walk is generic over [`Trace`]: with no tracer installed it runs with
//! [`NoTrace`], whose `ON` is `false`, so every `if T::ON` vanishes at compile time and
//! the trace costs nothing when off.

use core::fmt;

use super::Source;
use crate::mm::addr::PhysAddr;
use crate::mm::error::MmError;

/// Which entry point an event belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `vmemmap_populate`.
    Populate,
    /// `vmemmap_free`.
    Free,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Populate => "populate",
            Op::Free => "free",
        }
    }
}

/// An altmap's `alloc` and `align` right after a call on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AltmapFigures {
    /// `alloc`.
    pub alloc: u64,
    /// `align`.
    pub align: u64,
}

/// One trace event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TraceEvent {
    /// A table was created (populate) or freed (free). Tables always come from RAM.
    Table {
        /// Populate or free.
        op: Op,
        /// The table's level (the root is 0).
        level: usize,
        /// The level's name in the format (`PD`, `segment`, ...).
        name: &'static str,
        /// First address the table translates.
        va: u64,
        /// The table's physical address.
        frame: PhysAddr,
        /// The table's size.
        bytes: u64,
    },
    /// A leaf was mapped (populate) or unmapped and released (free).
    Leaf {
        /// Populate or free.
        op: Op,
        /// The leaf's level.
        level: usize,
        /// The level's name in the format.
        name: &'static str,
        /// Address of the first struct page it backs.
        va: u64,
        /// Its frame.
        frame: PhysAddr,
        /// Its size.
        bytes: u64,
        /// Where it came from (and goes back to).
        source: Source,
        /// The altmap of the call after the allocation or free, if the call has one.
        altmap: Option<AltmapFigures>,
    },
    /// A free left a huge leaf mapped because other struct pages in it are still in use.
    Kept {
        /// The leaf's level.
        level: usize,
        /// The level's name in the format.
        name: &'static str,
        /// The leaf's address.
        va: u64,
        /// Its frame.
        frame: PhysAddr,
        /// 4 KiB pages of it still in use.
        users: u32,
    },
    /// The end of one populate or free call.
    Summary {
        /// Populate or free.
        op: Op,
        /// First address of the call's range.
        start: u64,
        /// End of the call's range.
        end: u64,
        /// Tables created or freed.
        tables: u64,
        /// Leaves mapped or released that belong to an altmap.
        leaves_altmap: u64,
        /// Leaves mapped or released that belong to RAM.
        leaves_ram: u64,
        /// The altmap after the call, if the call has one.
        altmap: Option<AltmapFigures>,
        /// How the call ended (a failed populate has been rolled back).
        result: Result<(), MmError>,
    },
}

impl fmt::Display for TraceEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TraceEvent::Table {
                op,
                level,
                name,
                va,
                frame,
                bytes,
            } => write!(
                f,
                "vmemmap.trace op={} what=table level={level} name={name} va={va:#x} frame={:#x} bytes={bytes} source=ram",
                op.name(),
                frame.0
            ),
            TraceEvent::Leaf {
                op,
                level,
                name,
                va,
                frame,
                bytes,
                source,
                altmap,
            } => {
                write!(
                    f,
                    "vmemmap.trace op={} what=leaf level={level} name={name} va={va:#x} frame={:#x} bytes={bytes} source={source}",
                    op.name(),
                    frame.0
                )?;
                write_altmap(f, altmap)
            }
            TraceEvent::Kept {
                level,
                name,
                va,
                frame,
                users,
            } => write!(
                f,
                "vmemmap.trace op=free what=kept level={level} name={name} va={va:#x} frame={:#x} users={users}",
                frame.0
            ),
            TraceEvent::Summary {
                op,
                start,
                end,
                tables,
                leaves_altmap,
                leaves_ram,
                altmap,
                result,
            } => {
                write!(
                    f,
                    "vmemmap.trace.summary op={} va={start:#x}-{end:#x} tables={tables} leaves={} leaves.altmap={leaves_altmap} leaves.ram={leaves_ram}",
                    op.name(),
                    leaves_altmap + leaves_ram
                )?;
                write_altmap(f, altmap)?;
                match result {
                    Ok(()) => write!(f, " result=ok"),
                    Err(e) => write!(f, " result=error errno={} detail={e:?}", e.errno()),
                }
            }
        }
    }
}

fn write_altmap(f: &mut fmt::Formatter<'_>, altmap: &Option<AltmapFigures>) -> fmt::Result {
    match altmap {
        Some(a) => write!(f, " altmap.alloc={} altmap.align={}", a.alloc, a.align),
        None => Ok(()),
    }
}

/// The installed tracer: receives every event of every call while installed.
pub type Tracer = alloc::boxed::Box<dyn FnMut(&TraceEvent)>;

/// Receives trace events; `ON` is checked at compile time before an event is built.
pub trait Trace {
    /// Whether events are wanted at all.
    const ON: bool;
    /// One event.
    fn event(&mut self, event: &TraceEvent);
}

/// No trace: every event site compiles away.
pub struct NoTrace;

impl Trace for NoTrace {
    const ON: bool = false;

    #[inline(always)]
    fn event(&mut self, _event: &TraceEvent) {}
}

/// The installed tracer, for the duration of one call.
pub(super) struct Sink<'a>(pub(super) &'a mut dyn FnMut(&TraceEvent));

impl Trace for Sink<'_> {
    const ON: bool = true;

    fn event(&mut self, event: &TraceEvent) {
        (self.0)(event)
    }
}

/// Counts of one call, for its summary.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct CallCounts {
    pub(super) tables: u64,
    pub(super) leaves_altmap: u64,
    pub(super) leaves_ram: u64,
}

impl CallCounts {
    pub(super) fn leaf(&mut self, source: Source) {
        match source {
            Source::Altmap => self.leaves_altmap += 1,
            Source::Ram => self.leaves_ram += 1,
        }
    }
}
