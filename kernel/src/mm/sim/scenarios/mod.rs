//! Named scenarios of linux-mm.md §6.4, generic over the arch's walker; the shared suite
//! ([`super::suite`]) runs them with each arch's features and expectations. Each panics
//! on a violation.
//!
//! By concern: `altmaps.rs` (the altmaps the kernel builds), `walks.rs` (the memmap's
//! layout across adds and removes), `rollback.rs` (exact rollback under fault
//! injection), `recorder.rs` and `live.rs` (the live kernel's flush order, teardown
//! check and packed tables).

mod altmaps;
mod live;
mod recorder;
mod rollback;
mod walks;

pub use altmaps::{
    exact_altmap, memmap_on_memory_block, nvdimm_namespace, wrong_altmap_is_refused,
};
pub use live::{
    flush_precedes_every_free, packed_page_tables, teardown_check_finds_what_a_remove_left,
};
pub use recorder::{Step, flush_order, flush_order_per_free};
pub use rollback::failure_at_each_allocation;
pub use walks::{
    cost_matches_formula, partially_used_huge_leaf, populate_walk_free,
    readd_fresh_and_reused_altmap, two_adds_share_section,
};
