//! Memory management: addresses, the 64-byte `Page`, sparse sections and subsections,
//! `VmemAltmap`, the vmemmap populate/free machinery that each arch's walker drives over
//! its [`pgtable::PageTableFormat`], the buddy allocator on the memmap, and the nvdimm /
//! memmap_on_memory arithmetic. No arch is named here: each arch crate supplies its
//! constants and its `vmemmap_populate` through [`vmemmap::VmemmapArch`].
//!
//! Layout, top-down: `addr`, `arch` (memory-model constants), `page` → `pgtable` (format
//! trait), `phys` (memory traits), `semantics`, `altmap`, `inject` → `vmemmap` (the
//! populate/free primitives, shared helpers, trace) → `sparse` (sections, add/remove) →
//! `memmap` (struct-page access) → `buddy`; `gather` (flush before free), `table_frames`
//! (packed sub-page tables), `teardown` (the after-remove check); pure arithmetic in
//! `nvdimm`, `memmap_on_memory`, `memory_block`, `cost`; host-only `sim` (simulated
//! memory, the shared test suite).

pub mod addr;
pub mod altmap;
pub mod arch;
pub mod buddy;
pub mod cost;
pub mod error;
pub mod gather;
pub mod inject;
pub mod live;
pub mod map;
pub mod memmap;
pub mod memmap_on_memory;
pub mod memory_block;
pub mod nvdimm;
pub mod page;
pub mod pgtable;
pub mod phys;
pub mod semantics;
pub mod sparse;
pub mod table_frames;
pub mod teardown;
pub mod vmemmap;
pub mod walk;

#[cfg(not(target_os = "none"))]
pub mod sim;

#[cfg(test)]
mod tests;

pub use addr::{PAGE_SIZE, Pfn, PhysAddr, VirtAddr};
pub use altmap::VmemAltmap;
pub use arch::MmArch;
pub use error::{AllocKind, MmError};
pub use semantics::Semantics;
