//! The suite's checks of what surrounds the walker on a live machine: the TLB flush
//! before anything is freed ([`crate::mm::gather`]), the teardown check after a remove
//! ([`crate::mm::teardown`]) and page tables smaller than a page packed two to a page
//! ([`crate::mm::table_frames`]).

use super::{Profile, altmap_allowed, has_huge};
use crate::mm::addr::PAGE_SIZE;
use crate::mm::sim::scenarios;
use crate::mm::vmemmap::VmemmapArch;

/// Every live-table change (remove, and an add rolled back half-way) clears entries,
/// flushes once, then frees leaves and tables; the order before the gather is caught.
pub fn the_flush_comes_after_every_table_write_and_before_every_free<F: VmemmapArch>(
    profile: &Profile,
) {
    for &features in profile.features {
        scenarios::flush_precedes_every_free::<F>(features);
    }
}

/// The teardown check is clean after a real remove and finds a stale altmap, a present
/// range and struct pages still mapped. Where huge leaves hold the memmap of several
/// sub-sections and a sub-section add may take one, the leaf shared with a present
/// neighbour is seen and not reported. (Run with every feature set that can add with an
/// altmap.)
pub fn the_teardown_check_finds_what_a_remove_left<F: VmemmapArch>(profile: &Profile) {
    let with_altmap = profile
        .features
        .iter()
        .filter(|&&f| altmap_allowed::<F>(profile, f));
    let mut ran = 0;
    for &features in with_altmap {
        ran += 1;
        let shared = scenarios::teardown_check_finds_what_a_remove_left::<F>(features);
        let expected = has_huge::<F>(features) && !profile.subsection_takes_base_pages;
        assert_eq!(shared, expected, "shared-leaf case with {features:?}");
    }
    assert!(ran > 0, "no feature set adds with an altmap");
}

/// Page tables of half a page share a page two to one (Linux's s390 `page_table_alloc`
/// up to v6.6); the RAM the tables take is what the records count, and every page comes
/// back on removal. Formats without half-page tables pass through unchanged.
pub fn page_tables_are_packed_two_to_a_page<F: VmemmapArch>(profile: &Profile) {
    let half_page_tables = F::LEVELS.iter().any(|l| l.table_bytes == PAGE_SIZE / 2);
    for &features in profile.features {
        for sections in [1, 3] {
            let (half, pages) = scenarios::packed_page_tables::<F>(features, sections);
            assert_eq!(pages, half.div_ceil(2), "{features:?}, {sections} sections");
            if !half_page_tables || has_huge::<F>(features) {
                assert_eq!(half, 0, "{features:?}: no half-page tables");
            } else {
                let expected = profile.pte_tables_per_section * sections;
                assert_eq!(half, expected, "{features:?}, {sections} sections");
            }
        }
    }
}
