//! The suite's checks of `mm.semantics` and `vmemmap trace`: where each setting takes
//! leaves from, Linux's altmap hazards happening exactly as Linux's code makes them (and
//! named by the checker), and a trace line for every table and leaf.

use std::cell::RefCell;
use std::rc::Rc;
use std::vec::Vec;

use super::{Profile, altmap_allowed, has_huge, leaf_for};
use crate::mm::addr::{PAGE_SIZE, Pfn};
use crate::mm::altmap::{Hazard, VmemAltmap};
use crate::mm::semantics::Semantics;
use crate::mm::sim::{World, scenarios};
use crate::mm::vmemmap::trace::Op;
use crate::mm::vmemmap::{NOTHING_ELSE_IN_USE, Source, TraceEvent, VmemmapArch};

/// Under every setting full sections and sub-section pieces take their leaves where that
/// setting's code did: the altmap, except base pages under `rfc-2017` on an arch whose
/// 2017 walker took them from RAM.
pub fn each_semantics_takes_leaves_where_its_code_did<F: VmemmapArch>(profile: &Profile) {
    for semantics in Semantics::ALL {
        let rfc_ram = semantics.rfc_2017() && profile.rfc_2017_base_pages_from_ram;
        for &features in profile.features {
            if altmap_allowed::<F>(profile, features) {
                let from_altmap = has_huge::<F>(features) || !rfc_ram;
                let leaf = leaf_for::<F>(features);
                for n in [1, 3] {
                    scenarios::populate_walk_free::<F>(
                        semantics,
                        features,
                        n,
                        1,
                        true,
                        leaf,
                        from_altmap,
                    );
                }
            }
            let from_altmap = profile.subsection_altmap_source == Source::Altmap && !rfc_ram;
            let pieces = profile.subsection_pieces;
            scenarios::populate_walk_free::<F>(
                semantics,
                features,
                1,
                pieces,
                true,
                PAGE_SIZE,
                from_altmap,
            );
        }
    }
}

/// `rfc-2017`, one section with an altmap: on an arch whose 2017 walker took base pages
/// from RAM every base-page leaf comes from RAM and `altmap.alloc` stays 0 (the 2017
/// gap); huge leaves, and every other arch, still come from the altmap.
pub fn rfc_2017_base_pages_and_the_altmap<F: VmemmapArch>(profile: &Profile) {
    for &features in profile.features {
        if !altmap_allowed::<F>(profile, features) {
            continue;
        }
        let mut world = World::<F>::with_semantics(features, Semantics::Rfc2017);
        let start = world.snapshot();
        let range = world.sections(0, 1);
        let mut altmap = scenarios::exact_altmap(F::MM, &range);
        world.add(range.clone(), Some(&mut altmap)).expect("add");
        let memmap_pages = F::MM.section_memmap_bytes() / PAGE_SIZE;
        let stats = world.stats();
        let tally = world.sparse.vmemmap().tally();
        if profile.rfc_2017_base_pages_from_ram && !has_huge::<F>(features) {
            assert_eq!(
                (altmap.alloc, altmap.align),
                (0, 0),
                "nothing from the altmap"
            );
            assert_eq!(stats.base_leaves_ram, memmap_pages);
            assert_eq!(stats.ram_leaf_bytes, memmap_pages * PAGE_SIZE);
            assert_eq!(stats.altmap_pages, 0);
            assert_eq!(tally.ram_leaves_by_semantics, memmap_pages);
            world.check_invariants(&[]);
        } else {
            assert_eq!(
                altmap.alloc, memmap_pages,
                "{features:?}: unchanged by rfc-2017"
            );
            assert_eq!(
                (stats.ram_leaf_bytes, tally.ram_leaves_by_semantics),
                (0, 0)
            );
            world.check_invariants(&[&altmap]);
        }
        world.remove(range, Some(&mut altmap)).expect("remove");
        assert_eq!((altmap.alloc, altmap.align), (0, 0));
        assert_eq!(world.snapshot(), start);
    }
}

/// Two sections from one altmap (room for three), then the lower one freed and
/// populated again. Linux: `vmem_altmap_free` only decrements `alloc`, so the new leaves
/// are the upper section's, still mapped — two parts of the memmap on the same frames —
/// and the checker names it. Hotmem: the free is deferred and the new leaves are fresh.
pub fn linux_non_lifo_free_hands_out_mapped_pages_and_is_named<F: VmemmapArch>(profile: &Profile) {
    for &features in profile.features {
        if !altmap_allowed::<F>(profile, features) {
            continue;
        }
        for semantics in [Semantics::Hotmem, Semantics::Linux] {
            let mut world = World::<F>::with_semantics(features, semantics);
            let (a, b) = (world.sections(0, 1), world.sections(1, 1));
            let mut altmap = scenarios::exact_altmap(F::MM, &world.sections(0, 3));
            let pages = a.end.0 - a.start.0;
            let World { mem, sparse } = &mut world;
            let vm = sparse.vmemmap_mut();
            for range in [&a, &b] {
                vm.populate_pfns(
                    mem,
                    range.start,
                    pages,
                    Some(&mut altmap),
                    NOTHING_ELSE_IN_USE,
                )
                .expect("populate");
            }
            vm.free_pfns(mem, a.start, pages, Some(&mut altmap), NOTHING_ELSE_IN_USE)
                .expect("free the lower one");
            vm.populate_pfns(mem, a.start, pages, Some(&mut altmap), NOTHING_ELSE_IN_USE)
                .expect("populate it again");
            let backing = |pfn: Pfn| world.struct_page_phys(pfn).expect("mapped").phys;
            let (again, upper) = (backing(a.start), backing(b.start));
            let hazards = world.sparse.vmemmap().hazards().to_vec();
            if semantics == Semantics::Hotmem {
                assert_ne!(again, upper, "hotmem defers the free");
                assert!(hazards.is_empty(), "{hazards:?}");
            } else {
                assert_eq!(again, upper, "Linux hands out the upper section's frames");
                let leaf_pages = leaf_for::<F>(features) / PAGE_SIZE;
                assert_eq!(
                    hazards.first(),
                    Some(&Hazard::NonLifoFree {
                        base_pfn: altmap.base_pfn,
                        pfn: upper.pfn(),
                        nr_pages: leaf_pages,
                        live: upper.pfn(),
                        live_pages: leaf_pages,
                    })
                );
                let per_section = F::MM.section_memmap_bytes() / PAGE_SIZE / leaf_pages;
                assert_eq!(hazards.len() as u64, per_section, "one per leaf handed out");
                assert_eq!(world.sparse.vmemmap().tally().hazards, per_section);
            }
            let World { mem, sparse } = &mut world;
            let vm = sparse.vmemmap_mut();
            for range in [&a, &b] {
                vm.free_pfns(
                    mem,
                    range.start,
                    pages,
                    Some(&mut altmap),
                    NOTHING_ELSE_IN_USE,
                )
                .expect("teardown");
            }
            assert_eq!(altmap.alloc, 0);
        }
    }
}

/// An altmap with `reserve = 2` (so its first huge leaf pads) populated and torn down:
/// Linux keeps the padding in `align` (`alloc == 0`, `align > 0`); a full re-add
/// happens to need that padding again and lays out as before; a sub-section re-add
/// that takes base pages from the altmap lands past the stale padding, and the checker
/// names it. Hotmem returns `align` with its block.
pub fn linux_never_returns_align_and_names_it_when_it_bites<F: VmemmapArch>(profile: &Profile) {
    let features = profile.features[0];
    let leaf_pages = F::MM.vmemmap_leaf_bytes() / PAGE_SIZE;
    for semantics in [Semantics::Hotmem, Semantics::Linux] {
        let mut world = World::<F>::with_semantics(features, semantics);
        let range = world.sections(0, 1);
        let memmap_pages = F::MM.section_memmap_bytes() / PAGE_SIZE;
        let mut altmap =
            VmemAltmap::new(range.start.0, range.end.0 - 1, 2, memmap_pages + leaf_pages);
        world.add(range.clone(), Some(&mut altmap)).expect("add");
        let figures = (altmap.alloc, altmap.align);
        assert_eq!(
            figures,
            (memmap_pages, leaf_pages - 2),
            "the first leaf pads"
        );
        let layout = world.dump();
        world
            .remove(range.clone(), Some(&mut altmap))
            .expect("remove");
        let linux = semantics == Semantics::Linux;
        let stale = if linux { leaf_pages - 2 } else { 0 };
        assert_eq!((altmap.alloc, altmap.align), (0, stale));
        world.add(range.clone(), Some(&mut altmap)).expect("re-add");
        assert_eq!(
            (world.dump(), (altmap.alloc, altmap.align)),
            (layout, figures)
        );
        world
            .remove(range.clone(), Some(&mut altmap))
            .expect("remove");
        assert!(
            world.sparse.vmemmap().hazards().is_empty(),
            "nothing bit yet"
        );
        if !(profile.subsection_takes_base_pages
            && profile.subsection_altmap_source == Source::Altmap)
        {
            continue;
        }
        let half = world.subsections(0, F::MM.subsections_per_section() / 2);
        world
            .add(half.clone(), Some(&mut altmap))
            .expect("sub-section re-add");
        let first = world
            .struct_page_phys(half.start)
            .expect("mapped")
            .frame
            .pfn();
        let storage = altmap.base_pfn + altmap.reserve;
        assert_eq!(first, Pfn(storage + stale), "the first base page");
        let hazards = world.sparse.vmemmap().hazards().to_vec();
        if linux {
            assert_eq!(
                hazards.first(),
                Some(&Hazard::AlignNeverReturned {
                    base_pfn: altmap.base_pfn,
                    pfn: first,
                    nr_pages: 1,
                    wanted: Pfn(storage),
                    stale,
                })
            );
        } else {
            assert!(hazards.is_empty(), "{hazards:?}");
        }
        world.remove(half, Some(&mut altmap)).expect("remove");
    }
}

/// With a tracer installed an add and a remove report one event per table and per leaf
/// (tables from RAM, leaves from the altmap with its figures after each) and a summary
/// per call; with none installed, nothing.
pub fn trace_lists_every_table_and_leaf_and_is_silent_when_off<F: VmemmapArch>(profile: &Profile) {
    for &features in profile.features {
        if !altmap_allowed::<F>(profile, features) {
            continue;
        }
        let mut world = World::<F>::new(features);
        let events: Rc<RefCell<Vec<TraceEvent>>> = Rc::default();
        let sink = events.clone();
        let tracer = Box::new(move |e: &TraceEvent| sink.borrow_mut().push(e.clone()));
        world.sparse.vmemmap_mut().set_tracer(Some(tracer));
        let range = world.sections(0, 1);
        let mut altmap = scenarios::exact_altmap(F::MM, &range);
        world.add(range.clone(), Some(&mut altmap)).expect("add");
        let stats = world.stats();
        let tables: u64 = stats.tables.iter().sum::<u64>() - 1;
        check_call(
            &events.borrow(),
            Op::Populate,
            tables,
            stats.leaves(),
            &altmap,
        );
        let leaf_line = events
            .borrow()
            .iter()
            .find(|e| matches!(e, TraceEvent::Leaf { .. }))
            .map(|e| e.to_string())
            .expect("a leaf");
        for key in [
            "what=leaf",
            "source=altmap",
            "altmap.alloc=",
            "altmap.align=",
            "frame=0x",
        ] {
            assert!(leaf_line.contains(key), "{leaf_line}");
        }
        events.borrow_mut().clear();
        world
            .remove(range.clone(), Some(&mut altmap))
            .expect("remove");
        check_call(&events.borrow(), Op::Free, tables, stats.leaves(), &altmap);
        events.borrow_mut().clear();
        world.sparse.vmemmap_mut().set_tracer(None);
        world
            .add(range.clone(), Some(&mut altmap))
            .expect("add untraced");
        world
            .remove(range, Some(&mut altmap))
            .expect("remove untraced");
        assert!(events.borrow().is_empty(), "no tracer, no events");
    }
}

/// One call's events: `tables` table events, `leaves` leaf events all from the altmap,
/// the last one showing the altmap as it is now, and one summary saying the same.
fn check_call(events: &[TraceEvent], op: Op, tables: u64, leaves: u64, altmap: &VmemAltmap) {
    let count = |want: fn(&TraceEvent) -> bool| events.iter().filter(|e| want(e)).count() as u64;
    let table_events = count(|e| matches!(e, TraceEvent::Table { .. }));
    let leaf_events = count(|e| {
        matches!(
            e,
            TraceEvent::Leaf {
                source: Source::Altmap,
                ..
            }
        )
    });
    assert_eq!((table_events, leaf_events), (tables, leaves), "{op:?}");
    assert!(events.iter().all(|e| match e {
        TraceEvent::Table { op: o, .. }
        | TraceEvent::Leaf { op: o, .. }
        | TraceEvent::Summary { op: o, .. } => *o == op,
        TraceEvent::Kept { .. } => false,
    }));
    let last_leaf = events.iter().rev().find_map(|e| match e {
        TraceEvent::Leaf { altmap, .. } => *altmap,
        _ => None,
    });
    assert_eq!(
        last_leaf.map(|a| (a.alloc, a.align)),
        Some((altmap.alloc, altmap.align))
    );
    let summaries: Vec<&TraceEvent> = events
        .iter()
        .filter(|e| matches!(e, TraceEvent::Summary { .. }))
        .collect();
    assert_eq!(summaries.len(), 1, "one call");
    let TraceEvent::Summary {
        tables: t,
        leaves_altmap,
        leaves_ram,
        result,
        ..
    } = summaries[0]
    else {
        unreachable!()
    };
    assert_eq!(
        (*t, *leaves_altmap, *leaves_ram, result.clone()),
        (tables, leaves, 0, Ok(()))
    );
    assert!(
        matches!(events.last(), Some(TraceEvent::Summary { .. })),
        "summary last"
    );
}
