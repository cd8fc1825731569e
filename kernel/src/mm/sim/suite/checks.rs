//! The suite's checks of the walker under hotmem's rules: where leaves come from, exact
//! rollback under fault injection, and the scenarios of linux-mm.md §6.4.

use super::{BasePagesWithAltmap, Profile, altmap_allowed, has_huge, leaf_for};
use crate::mm::VmemAltmap;
use crate::mm::addr::PAGE_SIZE;
use crate::mm::error::{AllocKind, MmError};
use crate::mm::semantics::Semantics;
use crate::mm::sim::{World, scenarios};
use crate::mm::vmemmap::{NOTHING_ELSE_IN_USE, Source, VmemmapArch};

const SECTIONS: [u64; 3] = [1, 3, 64];

fn failures<F: VmemmapArch>(
    features: crate::mm::pgtable::Features,
    kind: AllocKind,
    altmap: bool,
    sections: u64,
    neighbour: bool,
) -> u64 {
    scenarios::failure_at_each_allocation::<F>(features, kind, altmap, sections, neighbour).1
}

/// Leaves per section's memmap with `features`.
fn leaves_per_section<F: VmemmapArch>(features: crate::mm::pgtable::Features) -> u64 {
    F::MM.section_memmap_bytes() / leaf_for::<F>(features)
}

/// Full sections with an altmap: every leaf (huge, or base pages where the arch takes
/// them from the altmap) comes from it.
pub fn walk_leaves_from_the_altmap<F: VmemmapArch>(profile: &Profile) {
    for &features in profile.features {
        if altmap_allowed::<F>(profile, features) {
            for n in SECTIONS {
                let leaf = leaf_for::<F>(features);
                scenarios::populate_walk_free::<F>(
                    Semantics::Hotmem,
                    features,
                    n,
                    1,
                    true,
                    leaf,
                    true,
                );
            }
        }
    }
}

/// Full sections without an altmap: every leaf from RAM.
pub fn walk_leaves_from_ram<F: VmemmapArch>(profile: &Profile) {
    for &features in profile.features {
        for n in SECTIONS {
            let leaf = leaf_for::<F>(features);
            scenarios::populate_walk_free::<F>(
                Semantics::Hotmem,
                features,
                n,
                1,
                false,
                leaf,
                false,
            );
        }
    }
}

/// Without huge leaves an add with an altmap is refused (changing nothing) where the
/// arch says so.
pub fn no_huge_leaves_with_an_altmap<F: VmemmapArch>(profile: &Profile) {
    let BasePagesWithAltmap::Refused(expected) = &profile.base_pages_with_altmap else {
        return;
    };
    for &features in profile.features {
        if has_huge::<F>(features) {
            continue;
        }
        let mut world = World::<F>::new(features);
        let range = world.sections(0, 1);
        let mut altmap = scenarios::exact_altmap(F::MM, &range);
        let before = world.snapshot();
        assert_eq!(world.add(range, Some(&mut altmap)), Err(expected.clone()));
        assert_eq!(world.snapshot(), before);
        assert_eq!((altmap.alloc, altmap.align), (0, 0));
    }
}

/// Sub-section adds with their own altmaps take base pages, from where the arch says.
pub fn subsection_adds_with_an_altmap<F: VmemmapArch>(profile: &Profile) {
    let from_altmap = profile.subsection_altmap_source == Source::Altmap;
    for &features in profile.features {
        for n in SECTIONS {
            let pieces = profile.subsection_pieces;
            scenarios::populate_walk_free::<F>(
                Semantics::Hotmem,
                features,
                n,
                pieces,
                true,
                PAGE_SIZE,
                from_altmap,
            );
        }
    }
}

/// Sub-section adds without an altmap take RAM leaves: base pages where the arch's rule
/// says so, else what the CPU offers.
pub fn subsection_adds_without_an_altmap<F: VmemmapArch>(profile: &Profile) {
    for &features in profile.features {
        let leaf = if profile.subsection_takes_base_pages {
            PAGE_SIZE
        } else {
            leaf_for::<F>(features)
        };
        for n in SECTIONS {
            let pieces = profile.subsection_pieces;
            scenarios::populate_walk_free::<F>(
                Semantics::Hotmem,
                features,
                n,
                pieces,
                false,
                leaf,
                false,
            );
        }
    }
}

/// Failing each page-table allocation in turn: every one is fatal and rolls back
/// exactly; a first add creates the upper tables plus the PTE tables base pages need,
/// an add next to a present section only the latter.
pub fn failure_at_each_table_level_rolls_back_exactly<F: VmemmapArch>(profile: &Profile) {
    for &features in profile.features {
        let pte_tables = if has_huge::<F>(features) {
            0
        } else {
            profile.pte_tables_per_section
        };
        for altmap in [false, true] {
            if altmap && !altmap_allowed::<F>(profile, features) {
                continue;
            }
            for n in [1, 3] {
                assert_eq!(
                    failures::<F>(features, AllocKind::PageTable, altmap, n, false),
                    profile.upper_tables + n * pte_tables,
                    "{features:?} altmap={altmap} sections={n}: upper tables and PTE tables"
                );
                assert_eq!(
                    failures::<F>(features, AllocKind::PageTable, altmap, n, true),
                    n * pte_tables,
                    "{features:?} altmap={altmap} sections={n}: upper tables shared"
                );
            }
        }
    }
}

/// Every heap allocation of an add (sections, the walker) failing in turn: each refuses
/// the add with `NoMemory(Heap)` and changes nothing, and a removal makes none at all
/// (needs [`crate::heap::HostFaultAlloc`] as the test binary's global allocator).
pub fn heap_failure_at_each_allocation_rolls_back_exactly<F: VmemmapArch>(profile: &Profile) {
    for &features in profile.features {
        let altmaps: &[bool] = if altmap_allowed::<F>(profile, features) {
            &[false, true]
        } else {
            &[false]
        };
        for &altmap in altmaps {
            for neighbour in [false, true] {
                let (tried, failed) = scenarios::failure_at_each_allocation::<F>(
                    features,
                    AllocKind::Heap,
                    altmap,
                    3,
                    neighbour,
                );
                assert!(
                    tried > 0 && failed == tried,
                    "{features:?} altmap={altmap} neighbour={neighbour}: {tried} fired, {failed} refused"
                );
            }
        }
    }
}

/// Failing each leaf allocation in turn: huge altmap leaves are fatal unless the arch
/// falls back to base pages, huge RAM leaves always fall back, base pages are all fatal.
pub fn failure_at_each_leaf_rolls_back_exactly<F: VmemmapArch>(profile: &Profile) {
    for &features in profile.features {
        if has_huge::<F>(features) {
            for n in [1, 3] {
                let fatal = if profile.huge_altmap_failure_falls_back {
                    0
                } else {
                    n * leaves_per_section::<F>(features)
                };
                let failed = failures::<F>(features, AllocKind::AltmapLeaf, true, n, true);
                assert_eq!(
                    failed, fatal,
                    "{features:?}: huge altmap leaves, {n} sections"
                );
            }
            let failed = failures::<F>(features, AllocKind::RamLeaf, false, 2, true);
            assert_eq!(
                failed, 0,
                "{features:?}: a failed RAM huge leaf falls back to base pages"
            );
            continue;
        }
        let mut kinds = vec![(AllocKind::RamLeaf, false)];
        if altmap_allowed::<F>(profile, features) {
            kinds.push((AllocKind::AltmapLeaf, true));
        }
        for (kind, altmap) in kinds {
            let (tried, failed) =
                scenarios::failure_at_each_allocation::<F>(features, kind, altmap, 1, true);
            assert!(
                tried > 32 && failed == tried,
                "{features:?} {kind:?}: every base page is fatal ({failed} of {tried})"
            );
        }
    }
}

/// The first huge altmap leaf of a section fails: the arch either falls back to a PTE
/// table plus base pages from the altmap for that slot, or fails the add unchanged.
pub fn a_huge_altmap_leaf_that_fails<F: VmemmapArch>(profile: &Profile) {
    let features = profile.features[0];
    let mut world = World::<F>::new(features);
    let range = world.sections(0, 1);
    let mut altmap = scenarios::exact_altmap(F::MM, &range);
    let before = world.snapshot();
    world
        .sparse
        .vmemmap_mut()
        .faults()
        .fail_nth(AllocKind::AltmapLeaf, 1);
    let result = world.add(range.clone(), Some(&mut altmap));
    world.sparse.vmemmap_mut().faults().clear();
    if !profile.huge_altmap_failure_falls_back {
        assert_eq!(result, Err(MmError::NoMemory(AllocKind::AltmapLeaf)));
        assert_eq!(world.snapshot(), before);
        assert_eq!((altmap.alloc, altmap.align), (0, 0));
        return;
    }
    result.expect("the fallback succeeds");
    let stats = world.stats();
    let leaf_pages = F::MM.vmemmap_leaf_bytes() / PAGE_SIZE;
    assert_eq!(
        (stats.huge_leaves_altmap, stats.base_leaves_altmap),
        (leaves_per_section::<F>(features) - 1, leaf_pages)
    );
    assert_eq!((stats.ram_leaf_bytes, altmap.nr_free()), (0, 0));
    world.check_invariants(&[&altmap]);
    world.remove(range, Some(&mut altmap)).expect("remove");
    assert_eq!((altmap.alloc, altmap.align), (0, 0));
}

/// An altmap short of three sections' memmap: the add fails with the arch's error and
/// everything — earlier sections too — is undone (no RAM fallback).
pub fn altmap_exhausted_mid_add_rolls_back_the_whole_add<F: VmemmapArch>(profile: &Profile) {
    let mut world = World::<F>::new(profile.features[0]);
    let range = world.sections(0, 3);
    let exact = scenarios::exact_altmap(F::MM, &range);
    let free = exact.free - profile.altmap_short_by;
    let mut altmap = VmemAltmap::new(exact.base_pfn, exact.end_pfn, 0, free);
    let before = world.snapshot();
    let error = world.add(range, Some(&mut altmap)).expect_err("short");
    assert_eq!(error, profile.exhausted);
    assert_eq!(world.snapshot(), before, "earlier sections undone too");
    assert_eq!((altmap.alloc, altmap.align), (0, 0));
}

/// Linux's nvdimm layout for 1, 2, 3 and 8 sections, populated and removed.
pub fn nvdimm_exact_fit_for_n_sections<F: VmemmapArch>(profile: &Profile) {
    for n in [1, 2, 3, 8] {
        let (layout, altmap) =
            scenarios::nvdimm_namespace::<F>(profile.features[0], n).expect("fits");
        let got = super::NvdimmFigures {
            dataoff: layout.dataoff,
            reserve: altmap.reserve,
            free: altmap.free,
            align: altmap.align,
            alloc: altmap.alloc,
            nr_free: altmap.nr_free(),
        };
        assert_eq!(got, (profile.nvdimm)(n), "{n} sections");
    }
}

/// Two adds in one section: removing the first keeps the second's memmap (the arm64
/// 2025 bug of linux-mm.md §6.3 item 6).
pub fn two_adds_sharing_a_section_keep_each_others_memmap<F: VmemmapArch>(profile: &Profile) {
    for &features in profile.features {
        scenarios::two_adds_share_section::<F>(features, false);
        scenarios::two_adds_share_section::<F>(features, true);
    }
}

/// A huge leaf partly removed stays for its other users and is reused on re-add.
pub fn partially_used_huge_leaf_is_kept_and_reused<F: VmemmapArch>(profile: &Profile) {
    for &features in profile.features {
        if has_huge::<F>(features) {
            scenarios::partially_used_huge_leaf::<F>(features, 8);
        }
    }
}

/// Remove and re-add with a fresh and a reused altmap: identical layouts.
pub fn readd_with_fresh_and_reused_altmap_is_identical<F: VmemmapArch>(profile: &Profile) {
    for &features in profile.features {
        if altmap_allowed::<F>(profile, features) {
            let sections = if has_huge::<F>(features) { 3 } else { 1 };
            scenarios::readd_fresh_and_reused_altmap::<F>(features, sections);
        }
    }
}

/// memmap_on_memory blocks of 1 and 16 sections host their own memmap.
pub fn memmap_on_memory_blocks_self_host_and_error_path_keeps_the_altmap<F: VmemmapArch>(
    profile: &Profile,
) {
    for &features in profile.features {
        if altmap_allowed::<F>(profile, features) {
            scenarios::memmap_on_memory_block::<F>(features, 1);
            scenarios::memmap_on_memory_block::<F>(features, 16);
        }
    }
}

/// Removing through another altmap, or none, is refused.
pub fn removing_through_the_wrong_altmap_is_refused<F: VmemmapArch>(profile: &Profile) {
    for &features in profile.features {
        if altmap_allowed::<F>(profile, features) {
            scenarios::wrong_altmap_is_refused::<F>(features);
        }
    }
}

/// 1 GiB populated from RAM matches the cost table.
pub fn cost_table_matches_real_populate<F: VmemmapArch>(profile: &Profile) {
    for &features in profile.features {
        scenarios::cost_matches_formula::<F>(features, leaf_for::<F>(features));
    }
}

/// Populating what is populated changes nothing and allocates nothing.
pub fn populating_a_populated_range_is_a_no_op<F: VmemmapArch>(profile: &Profile) {
    for &features in profile.features {
        let mut world = World::<F>::new(features);
        let range = world.sections(0, 2);
        world.add(range.clone(), None).expect("add");
        let before = (world.snapshot(), world.mem.handed_out());
        let (start, end) = world
            .sparse
            .vmemmap()
            .memmap_range(range.start, range.end.0 - range.start.0);
        world
            .sparse
            .vmemmap_mut()
            .populate(&mut world.mem, start, end, None, NOTHING_ELSE_IN_USE)
            .expect("again");
        assert_eq!((world.snapshot(), world.mem.handed_out()), before);
    }
}
