//! Host-only simulation of physical memory and the memmap, a software translator for any
//! [`PageTableFormat`](super::pgtable::PageTableFormat), and a test harness shared by the
//! arch crates' tests (so every format runs the same scenarios).

mod harness;
mod memmap;
mod memory;
pub mod scenarios;

pub use crate::mm::walk::{Mapping, TableDump, Translation, WalkFault, dump, translate};
pub use harness::{AltmapSpec, Op, Snapshot, World, run_ops};
pub use memmap::SimMemmap;
pub use memory::SimMemory;
