//! Device regions: the one list of what discovery found (DESIGN.md §1–2), checked
//! against the boot RAM map and each other, each device region carrying the nvdimm pfn
//! layout its altmap is carved from (linux-mm.md §1.4).
//!
//! Flow: [`RegionSet::new`] over the boot memory map → [`RegionSet::add_checked`] per
//! discovered range (or [`discover()`] for all sources at once) → [`RegionSet::carve`]
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
//!
//! Files: `request.rs` (what is asked and accepted), `error.rs` (refusals), `set.rs` (the
//! list), `rules.rs` (the checks), `discover.rs`, `carve.rs`, `record.rs` (console records).

mod carve;
mod discover;
mod error;
mod record;
mod request;
mod rules;
mod set;
#[cfg(test)]
mod tests;

pub use carve::{carve_ram, usable_spans};
pub use discover::{Sources, discover};
pub use error::{Conflict, Outcome, Reason, RegionError};
pub use record::{
    AsciiMap, MAP_COLUMNS, OutcomeRecord, altmap_record, ascii_map, human_size, regions_table,
};
pub use request::{Region, RegionKind, RegionRequest, Source};
pub use set::RegionSet;

use crate::mm::arch::SUBSECTION_SHIFT;

/// Subsection size: the alignment every region start needs.
pub const SUBSECTION: u64 = 1 << SUBSECTION_SHIFT;
/// Default data alignment of a device region (Linux's PMD-size `nd_pfn->align`).
pub const DEFAULT_ALIGN: u64 = 2 << 20;
/// Largest data alignment accepted (PUD size).
pub const MAX_ALIGN: u64 = 1 << 30;
/// Smallest device region: Linux's `SZ_16M` floor on the capacity of a namespace that a
/// pfn (fsdax) device may claim (`nd_namespace_store`, drivers/nvdimm/claim.c).
pub const MIN_DEVICE_SIZE: u64 = 16 << 20;
