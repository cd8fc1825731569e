//! Scenarios of the live kernel's teardown rules on the recording fake: the flush comes
//! after every table write and before every free (also on rollback and with no heap
//! room), the teardown check finds what a remove left, and packed half-page tables.

use std::vec::Vec;

use super::altmaps::exact_altmap;
use super::recorder::{Recorder, Step, flush_order, flush_order_per_free};
use crate::mm::addr::PAGE_SIZE;
use crate::mm::error::AllocKind;
use crate::mm::pgtable::Features;
use crate::mm::sim::World;
use crate::mm::vmemmap::{NOTHING_ELSE_IN_USE, VmemmapArch};

/// The flush order of a live change, on a recording fake: removing two sections with
/// their memmap in RAM clears entries, flushes, and only then gives back RAM leaves and
/// page-table pages; an add that fails half-way rolls back in the same order. The same
/// remove straight through the walker (the order before the gather) frees first, which
/// the check catches.
pub fn flush_precedes_every_free<F: VmemmapArch>(features: Features) {
    use crate::mm::gather;
    use crate::mm::phys::FramePurpose;
    use std::rc::Rc;
    let log = Rc::new(core::cell::RefCell::new(Vec::new()));
    let mut world = World::<F>::new(features);
    let range = world.sections(0, 2);
    world.add(range.clone(), None).expect("add");
    let start = world.snapshot();
    // Without the gather: the walker frees as it clears, the flush comes last.
    {
        let mut rec = Recorder {
            mem: &mut world.mem,
            log: log.clone(),
        };
        world
            .sparse
            .remove(&mut rec, range.clone(), None)
            .expect("remove");
        log.borrow_mut().push(Step::Flush);
    }
    assert!(
        flush_order(&log.borrow()).is_err(),
        "the check must catch it"
    );
    world.add(range.clone(), None).expect("add again");
    assert_eq!(world.snapshot().stats, start.stats);
    // Through the gather.
    log.borrow_mut().clear();
    let rec = Recorder {
        mem: &mut world.mem,
        log: log.clone(),
    };
    let sparse = &mut world.sparse;
    let flush_log = log.clone();
    let (removed, _) = gather::run(
        rec,
        || flush_log.borrow_mut().push(Step::Flush),
        |g| sparse.remove(g, range.clone(), None),
    );
    removed.expect("remove");
    let steps = log.borrow().clone();
    flush_order(&steps).unwrap_or_else(|e| panic!("remove: {e}"));
    for purpose in [FramePurpose::Leaf, FramePurpose::PageTable] {
        assert!(
            steps.contains(&Step::Free(purpose)),
            "nothing of {purpose:?} freed: the check would be empty"
        );
    }
    assert_eq!(world.mem.outstanding(), 1, "only the root table is left");
    // A failed add rolls back in the same order.
    let mut rollbacks_with_frees = 0;
    for (kind, nth) in [
        (AllocKind::PageTable, 2),
        (AllocKind::PageTable, 3),
        (AllocKind::RamLeaf, 2),
        (AllocKind::RamLeaf, 3),
    ] {
        log.borrow_mut().clear();
        world.sparse.vmemmap_mut().faults().fail_nth(kind, nth);
        let rec = Recorder {
            mem: &mut world.mem,
            log: log.clone(),
        };
        let sparse = &mut world.sparse;
        let flush_log = log.clone();
        let (added, _) = gather::run(
            rec,
            || flush_log.borrow_mut().push(Step::Flush),
            |g| sparse.add(g, range.clone(), None),
        );
        world.sparse.vmemmap_mut().faults().clear();
        if added.is_ok() {
            world.remove(range.clone(), None).expect("clean up");
            continue;
        }
        let steps = log.borrow().clone();
        flush_order(&steps).unwrap_or_else(|e| panic!("rollback at {kind:?} {nth}: {e}"));
        rollbacks_with_frees += usize::from(steps.iter().any(|s| matches!(s, Step::Free(_))));
        assert_eq!(world.mem.outstanding(), 1, "rolled back exactly");
    }
    assert!(rollbacks_with_frees > 0, "no rollback freed anything");
    // With no heap room for the list of waiting frees, the gather flushes early: the
    // remove still succeeds and every free follows a flush after the writes before it.
    world
        .add(range.clone(), None)
        .expect("add for the heap case");
    log.borrow_mut().clear();
    log.borrow_mut().reserve(1 << 16);
    let rec = Recorder {
        mem: &mut world.mem,
        log: log.clone(),
    };
    let sparse = &mut world.sparse;
    let flush_log = log.clone();
    crate::heap::with_faults(|f| f.arm(1, crate::mm::inject::FaultMode::Always));
    let (removed, _) = gather::run(
        rec,
        || flush_log.borrow_mut().push(Step::Flush),
        |g| sparse.remove(g, range.clone(), None),
    );
    crate::heap::with_faults(|f| f.clear());
    removed.expect("remove with the heap failing");
    let steps = log.borrow().clone();
    flush_order_per_free(&steps).unwrap_or_else(|e| panic!("heap failing: {e}"));
    let flushes = steps.iter().filter(|s| **s == Step::Flush).count();
    assert!(flushes > 1, "the gather never had to flush early");
    assert_eq!(world.mem.outstanding(), 1, "only the root table is left");
}

/// The teardown check after a remove: clean after a real remove; it finds an altmap
/// still counting pages, a range still present, and struct pages still mapped without
/// their sections; a leaf shared with a present neighbour is not a leftover. Returns
/// whether that shared leaf was there (huge leaves spanning two subsections' memmap).
pub fn teardown_check_finds_what_a_remove_left<F: VmemmapArch>(features: Features) -> bool {
    use crate::mm::teardown::{Leftover, check};
    let mut world = World::<F>::new(features);
    let range = world.sections(0, 2);
    let mut altmap = exact_altmap(F::MM, &range);
    world.add(range.clone(), Some(&mut altmap)).expect("add");
    let stale = altmap.clone();
    assert!(stale.alloc > 0);
    assert!(matches!(
        check(&world.sparse, &world.mem, range.clone(), None),
        Err(Leftover::Present { .. })
    ));
    world
        .remove(range.clone(), Some(&mut altmap))
        .expect("remove");
    assert_eq!(
        check(&world.sparse, &world.mem, range.clone(), Some(&altmap)),
        Ok(())
    );
    assert_eq!(
        check(&world.sparse, &world.mem, range.clone(), Some(&stale)),
        Err(Leftover::AltmapAlloc(stale.alloc))
    );
    // Struct pages mapped with no section behind them (as a remove that freed nothing).
    let (start, end) = world
        .sparse
        .vmemmap()
        .memmap_range(range.start, range.end.0 - range.start.0);
    world
        .sparse
        .vmemmap_mut()
        .populate(&mut world.mem, start, end, None, NOTHING_ELSE_IN_USE)
        .expect("map");
    assert!(matches!(
        check(&world.sparse, &world.mem, range.clone(), None),
        Err(Leftover::Mapped { .. })
    ));
    world
        .sparse
        .vmemmap_mut()
        .free(&mut world.mem, start, end, None, NOTHING_ELSE_IN_USE)
        .expect("unmap");
    // Two neighbouring subsections added apart (with huge leaves, one leaf holds the
    // memmap of both): removing one leaves the other's leaf mapped, rightly.
    let (low, high) = (world.subsections(0, 1), world.subsections(1, 1));
    world.add(low.clone(), None).expect("low");
    world.add(high.clone(), None).expect("high");
    world.remove(low.clone(), None).expect("remove low");
    let shared = world.struct_page_phys(low.start).is_some();
    assert_eq!(check(&world.sparse, &world.mem, low, None), Ok(()));
    world.remove(high.clone(), None).expect("remove high");
    assert_eq!(check(&world.sparse, &world.mem, high, None), Ok(()));
    shared
}

/// Page tables through [`crate::mm::table_frames::Packed`], as the live kernel takes them:
/// populates `sections` sections from RAM, checks that the pages held for tables are
/// exactly the half-page tables two to a page plus the larger tables' own pages (and that
/// the simulated RAM agrees), then removes everything and checks every page came back.
/// Returns `(half-page tables, pages they occupy)` at the peak.
pub fn packed_page_tables<F: VmemmapArch>(features: Features, sections: u64) -> (u64, u64) {
    use crate::mm::table_frames::{Packed, TableFrames};
    use std::rc::Rc;
    let mut world = World::<F>::new(features);
    let start_bytes = world.mem.outstanding_bytes();
    let stats0 = world.stats();
    let mut tables = TableFrames::new();
    let log = Rc::new(core::cell::RefCell::new(Vec::new()));
    let range = world.sections(0, sections);
    let mut packed = Packed {
        inner: Recorder {
            mem: &mut world.mem,
            log: log.clone(),
        },
        tables: &mut tables,
    };
    world
        .sparse
        .add(&mut packed, range.clone(), None)
        .expect("add");
    let stats = world.stats();
    let (mut half, mut whole_pages) = (0, 0);
    for (level, geometry) in F::LEVELS.iter().enumerate() {
        let new = stats.tables[level] - stats0.tables[level];
        if geometry.table_bytes == PAGE_SIZE / 2 {
            half += new;
        } else {
            whole_pages += new * geometry.table_bytes.div_ceil(PAGE_SIZE);
        }
    }
    let pages = tables.pages();
    assert_eq!(
        pages,
        half.div_ceil(2) + whole_pages,
        "{half} half-page tables"
    );
    assert_eq!(tables.half_free() as u64, half % 2);
    assert_eq!(
        world.mem.outstanding_bytes() - start_bytes,
        pages * PAGE_SIZE + stats.ram_leaf_bytes,
        "the RAM really taken"
    );
    let mut packed = Packed {
        inner: Recorder {
            mem: &mut world.mem,
            log,
        },
        tables: &mut tables,
    };
    world
        .sparse
        .remove(&mut packed, range, None)
        .expect("remove");
    assert_eq!((tables.pages(), tables.half_free()), (0, 0));
    assert_eq!(
        world.mem.outstanding_bytes(),
        start_bytes,
        "every page back"
    );
    (half, pages - whole_pages)
}
