//! Host-only simulation of physical memory and the memmap, a software translator for any
//! [`PageTableFormat`](super::pgtable::PageTableFormat), the scenarios and the shared
//! vmemmap test suite every arch crate runs ([`suite`], `kernel::vmemmap_suite!`), and
//! memory models for the kernel's own tests ([`models`]).

mod harness;
mod memmap;
mod memory;
pub mod models;
pub mod scenarios;
pub mod suite;

pub use crate::mm::walk::{Mapping, TableDump, Translation, WalkFault, dump, translate};
pub use harness::{AltmapSpec, Op, Snapshot, World, run_ops};
pub use memmap::SimMemmap;
pub use memory::SimMemory;
