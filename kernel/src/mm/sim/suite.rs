//! The vmemmap test suite every arch runs on the simulated memory: the scenarios of
//! linux-mm.md §6.4, exact rollback under fault injection, the semantics switch, the
//! trace, and the live kernel's flush order, teardown check and packed tables, checked
//! against the figures the arch states in its [`Profile`].
//!
//! An arch crate runs it with one line in its tests, next to its walker:
//! `kernel::vmemmap_suite!(TheFormat, PROFILE);` expands to one `#[test]` per check
//! (and a property test over random add/remove sequences), so a failure names the
//! check and the arch.

mod checks;
mod lifecycle;
mod semantics;

pub use checks::*;
pub use lifecycle::*;
pub use semantics::*;

use crate::mm::addr::PAGE_SIZE;
use crate::mm::error::MmError;
use crate::mm::pgtable::Features;
use crate::mm::vmemmap::{Source, VmemmapArch};

/// What an add with an altmap does when the CPU offers no huge vmemmap leaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BasePagesWithAltmap {
    /// Refused with this error, nothing changed (Linux's x86 without PSE).
    Refused(MmError),
    /// Base pages from the altmap (Linux's s390 without EDAT-1).
    FromAltmap,
}

/// Linux's nvdimm figures for a namespace of some sections (linux-mm.md §6.4 item 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NvdimmFigures {
    /// `dataoff` in bytes.
    pub dataoff: u64,
    /// Altmap `reserve`.
    pub reserve: u64,
    /// Altmap `free`.
    pub free: u64,
    /// Altmap `align` after populating.
    pub align: u64,
    /// Altmap `alloc` after populating.
    pub alloc: u64,
    /// `nr_free` after populating.
    pub nr_free: u64,
}

/// An arch's vmemmap, as the suite checks it: Linux's figures for that arch.
#[derive(Clone, Debug)]
pub struct Profile {
    /// The CPU feature sets the arch runs with; the first one has huge vmemmap leaves.
    pub features: &'static [Features],
    /// Tables a first add creates between the root and the leaves.
    pub upper_tables: u64,
    /// Last-level tables one section's memmap needs in base pages.
    pub pte_tables_per_section: u64,
    /// Adds per section in the sub-section walks.
    pub subsection_pieces: u64,
    /// Sub-section ranges take base pages whatever the CPU offers.
    pub subsection_takes_base_pages: bool,
    /// Where sub-section base pages come from when the add has an altmap.
    pub subsection_altmap_source: Source,
    /// An add with an altmap when the CPU has no huge vmemmap leaves.
    pub base_pages_with_altmap: BasePagesWithAltmap,
    /// A huge leaf the altmap cannot give falls back to base pages from it, instead of
    /// failing the add.
    pub huge_altmap_failure_falls_back: bool,
    /// An altmap this many pages short of three sections' memmap...
    pub altmap_short_by: u64,
    /// ...fails the add with this error.
    pub exhausted: MmError,
    /// Linux's nvdimm figures for `n` sections.
    pub nvdimm: fn(u64) -> NvdimmFigures,
    /// Under `mm.semantics=rfc-2017` base-page leaves come from RAM although an altmap
    /// is given (the 2017 RFC's walker for this arch did so).
    pub rfc_2017_base_pages_from_ram: bool,
}

/// The level of the huge vmemmap leaves.
pub fn huge_level<F: VmemmapArch>() -> usize {
    F::level_for_span(F::MM.vmemmap_leaf_bytes()).expect("huge leaf level")
}

/// Whether `features` allow huge vmemmap leaves.
pub fn has_huge<F: VmemmapArch>(features: Features) -> bool {
    F::leaf_allowed(huge_level::<F>(), features)
}

/// The leaf a full-section add takes with `features`.
pub fn leaf_for<F: VmemmapArch>(features: Features) -> u64 {
    if has_huge::<F>(features) {
        F::MM.vmemmap_leaf_bytes()
    } else {
        PAGE_SIZE
    }
}

/// Whether a full-section add with an altmap can succeed with `features`.
pub fn altmap_allowed<F: VmemmapArch>(profile: &Profile, features: Features) -> bool {
    has_huge::<F>(features) || profile.base_pages_with_altmap == BasePagesWithAltmap::FromAltmap
}

/// Expands to the suite's tests for `$format` with `$profile` (a [`Profile`]). Needs
/// `proptest` among the caller's dev-dependencies.
#[macro_export]
macro_rules! vmemmap_suite {
    ($format:ty, $profile:expr) => {
        $crate::vmemmap_suite!(@tests $format, $profile;
            walk_leaves_from_the_altmap,
            walk_leaves_from_ram,
            no_huge_leaves_with_an_altmap,
            subsection_adds_with_an_altmap,
            subsection_adds_without_an_altmap,
            failure_at_each_table_level_rolls_back_exactly,
            failure_at_each_leaf_rolls_back_exactly,
            heap_failure_at_each_allocation_rolls_back_exactly,
            a_huge_altmap_leaf_that_fails,
            altmap_exhausted_mid_add_rolls_back_the_whole_add,
            nvdimm_exact_fit_for_n_sections,
            two_adds_sharing_a_section_keep_each_others_memmap,
            partially_used_huge_leaf_is_kept_and_reused,
            readd_with_fresh_and_reused_altmap_is_identical,
            memmap_on_memory_blocks_self_host_and_error_path_keeps_the_altmap,
            removing_through_the_wrong_altmap_is_refused,
            cost_table_matches_real_populate,
            populating_a_populated_range_is_a_no_op,
            each_semantics_takes_leaves_where_its_code_did,
            rfc_2017_base_pages_and_the_altmap,
            linux_non_lifo_free_hands_out_mapped_pages_and_is_named,
            linux_never_returns_align_and_names_it_when_it_bites,
            trace_lists_every_table_and_leaf_and_is_silent_when_off,
            the_flush_comes_after_every_table_write_and_before_every_free,
            the_teardown_check_finds_what_a_remove_left,
            page_tables_are_packed_two_to_a_page,
        );

        proptest::proptest! {
            #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]
            #[test]
            fn random_add_remove_keeps_invariants(
                ops in proptest::collection::vec($crate::vmemmap_suite!(@op $format), 1..12),
                pick in 0usize..8,
            ) {
                $crate::mm::sim::suite::random_ops::<$format>(&$profile, pick, &ops);
            }
        }
    };
    (@tests $format:ty, $profile:expr; $($name:ident,)*) => {
        $(
            #[test]
            fn $name() {
                $crate::mm::sim::suite::$name::<$format>(&$profile);
            }
        )*
    };
    (@op $format:ty) => {{
        use proptest::prelude::*;
        use $crate::mm::sim::{AltmapSpec, Op};
        let window = <$format as $crate::mm::vmemmap::VmemmapArch>::MM.subsections_per_section() * 3;
        let spec = (0u64..4, 50u64..250)
            .prop_map(|(reserve, percent)| AltmapSpec { reserve, percent });
        prop_oneof![
            3 => (0..window, 1..window / 2, proptest::option::of(spec))
                .prop_map(|(first, count, altmap)| Op::Add { first, count, altmap }),
            2 => any::<usize>().prop_map(|pick| Op::Remove { pick }),
            1 => (0..window, 1u64..64).prop_map(|(first, count)| Op::RemoveRange { first, count }),
        ]
    }};
}

/// The property test's body: `ops` on a three-section window with one of the arch's
/// feature sets.
pub fn random_ops<F: VmemmapArch>(profile: &Profile, pick: usize, ops: &[super::Op]) {
    let features = profile.features[pick % profile.features.len()];
    super::run_ops::<F>(features, 3, ops);
}
