//! Named scenarios of linux-mm.md §6.4, generic over the arch's walker; the shared suite
//! ([`super::suite`]) runs them with each arch's features and expectations. Each panics
//! on a violation.

use std::vec::Vec;

use super::harness::World;
use crate::mm::addr::{PAGE_SIZE, Pfn, VirtAddr};
use crate::mm::altmap::VmemAltmap;
use crate::mm::arch::MmArch;
use crate::mm::cost::MemmapCost;
use crate::mm::error::{AllocKind, MmError};
use crate::mm::memmap_on_memory::{MemmapOnMemoryMode, memmap_on_memory_altmap};
use crate::mm::nvdimm::{NdPfnLayout, nvdimm_setup};
use crate::mm::pgtable::Features;
use crate::mm::semantics::Semantics;
use crate::mm::vmemmap::{NOTHING_ELSE_IN_USE, VmemmapArch};

/// An altmap covering exactly the memmap of `range` (no reserve).
pub fn exact_altmap(arch: &MmArch, range: &core::ops::Range<Pfn>) -> VmemAltmap {
    let pages = range.end.0 - range.start.0;
    VmemAltmap::new(
        range.start.0,
        range.end.0 - 1,
        0,
        arch.memmap_bytes(pages) / PAGE_SIZE,
    )
}

/// Populates `sections` sections under `semantics`, in `pieces` adds per section (each
/// with its own exact altmap when `altmap`), checks through the simulated MMU that every
/// memmap page maps to a leaf of `leaf_bytes` from the altmap (`expect_altmap_leaves`)
/// or RAM, then removes everything and checks memory is back to its starting state.
#[allow(clippy::too_many_arguments)]
pub fn populate_walk_free<F: VmemmapArch>(
    semantics: Semantics,
    features: Features,
    sections: u64,
    pieces: u64,
    altmap: bool,
    leaf_bytes: u64,
    expect_altmap_leaves: bool,
) {
    let arch = F::MM;
    let mut world = World::<F>::with_semantics(features, semantics);
    let start = world.snapshot();
    let piece_subs = arch.subsections_per_section() / pieces;
    let mut adds: Vec<(core::ops::Range<Pfn>, Option<VmemAltmap>)> = Vec::new();
    for piece in 0..sections * pieces {
        let range = world.subsections(piece * piece_subs, piece_subs);
        let mut map = altmap.then(|| exact_altmap(arch, &range));
        world.add(range.clone(), map.as_mut()).expect("add");
        adds.push((range, map));
    }
    let altmaps: Vec<&VmemAltmap> = adds.iter().filter_map(|(_, a)| a.as_ref()).collect();
    world.check_invariants(&altmaps);
    let all = world.sections(0, sections);
    let mut last_phys = None;
    for pfn in (all.start.0..all.end.0).step_by((PAGE_SIZE / 64) as usize) {
        let t = world
            .struct_page_phys(Pfn(pfn))
            .unwrap_or_else(|| panic!("struct page of {pfn:#x} unmapped"));
        assert_eq!(t.leaf_bytes, leaf_bytes, "leaf size for pfn {pfn:#x}");
        let owner = altmaps.iter().find(|a| a.in_storage(t.frame.pfn()));
        assert_eq!(
            owner.is_some(),
            expect_altmap_leaves,
            "leaf source for pfn {pfn:#x}"
        );
        assert_eq!(world.mem.is_ram(t.frame), !expect_altmap_leaves);
        if t.leaf_bytes > PAGE_SIZE && t.phys != t.frame {
            assert_eq!(
                Some(t.phys.0 - PAGE_SIZE),
                last_phys,
                "contiguous inside a leaf"
            );
        }
        last_phys = Some(t.phys.0);
    }
    while let Some((range, mut map)) = adds.pop() {
        world.remove(range, map.as_mut()).expect("remove");
        if let Some(map) = map {
            assert_eq!(
                (map.alloc, map.align),
                (0, 0),
                "teardown must end with alloc == 0"
            );
        }
    }
    assert_eq!(world.snapshot(), start);
}

/// Fails the nth allocation of `kind` for every n an add of `sections` sections makes
/// (from empty tables, or next to one section already present when `neighbour`), and
/// checks each failure rolls back exactly: counters, tables, altmap `alloc` and `align`,
/// and the simulated RAM. Up to 64 allocations every position is tried, beyond that the
/// first and last 8 and every 1/32nd. Returns (positions where the failure fired, adds
/// that failed; the others were absorbed by a fallback).
pub fn failure_at_each_allocation<F: VmemmapArch>(
    features: Features,
    kind: AllocKind,
    altmap: bool,
    sections: u64,
    neighbour: bool,
) -> (u64, u64) {
    let arch = F::MM;
    let mut world = World::<F>::new(features);
    if neighbour {
        world
            .add(world.sections(0, 1), None)
            .expect("first section");
    }
    let range = world.sections(1, sections);
    let fresh = || {
        VmemAltmap::new(
            range.start.0,
            range.end.0 - 1,
            2,
            arch.memmap_bytes(range.end.0 - range.start.0) / PAGE_SIZE + 512,
        )
    };
    let before = world.snapshot();
    let mut probe = altmap.then(fresh);
    let attempts_before = attempts(&mut world, kind);
    world.add(range.clone(), probe.as_mut()).expect("clean add");
    let attempts = attempts(&mut world, kind) - attempts_before;
    // Removal never allocates: it succeeds with every heap allocation failing.
    crate::heap::with_faults(|f| f.arm(1, crate::mm::inject::FaultMode::Always));
    let removed = world.remove(range.clone(), probe.as_mut());
    crate::heap::with_faults(|f| f.clear());
    removed.expect("clean remove with the heap refusing everything");
    assert_eq!(world.snapshot(), before);
    let mut failures = 0;
    let stride = (attempts / 32).max(1);
    let tried: Vec<u64> = (1..=attempts)
        .filter(|n| attempts <= 64 || *n <= 8 || *n > attempts - 8 || n % stride == 0)
        .collect();
    let mut fired = 0;
    for &nth in &tried {
        let mut map = altmap.then(fresh);
        let handed_out = world.mem.handed_out() - world.mem.returned();
        let injected_before = injected(&mut world, kind);
        arm(&mut world, kind, nth);
        let result = world.add(range.clone(), map.as_mut());
        disarm(&mut world);
        // A heap allocation made once (a vector growing for good) is not made again, so
        // later adds can make fewer allocations than the first: count what really fired.
        fired += u64::from(injected(&mut world, kind) > injected_before);
        match result {
            Err(error) => {
                assert_eq!(error, MmError::NoMemory(kind), "allocation {nth}");
                failures += 1;
            }
            Ok(()) => world
                .remove(range.clone(), map.as_mut())
                .expect("remove after absorbed failure"),
        }
        assert_eq!(
            world.snapshot(),
            before,
            "rollback after failing {kind:?} #{nth}"
        );
        assert_eq!(world.mem.handed_out() - world.mem.returned(), handed_out);
        if let Some(map) = map {
            assert_eq!(
                (map.alloc, map.align, map.live_pages()),
                (0, 0, 0),
                "altmap after failing #{nth}"
            );
        }
    }
    (fired, failures)
}

/// Allocations of `kind` so far (heap: on this thread; needs [`HostFaultAlloc`] as the
/// test binary's global allocator).
///
/// [`HostFaultAlloc`]: crate::heap::HostFaultAlloc
fn attempts<F: VmemmapArch>(world: &mut World<F>, kind: AllocKind) -> u64 {
    match kind {
        AllocKind::Heap => crate::heap::with_faults(|f| f.attempts()),
        _ => world.sparse.vmemmap_mut().faults().attempts(kind),
    }
}

fn injected<F: VmemmapArch>(world: &mut World<F>, kind: AllocKind) -> u64 {
    match kind {
        AllocKind::Heap => crate::heap::with_faults(|f| f.injected()),
        _ => world.sparse.vmemmap_mut().faults().injected(kind),
    }
}

fn arm<F: VmemmapArch>(world: &mut World<F>, kind: AllocKind, nth: u64) {
    match kind {
        AllocKind::Heap => {
            crate::heap::with_faults(|f| f.arm(nth, crate::mm::inject::FaultMode::Once))
        }
        _ => world.sparse.vmemmap_mut().faults().fail_nth(kind, nth),
    }
}

fn disarm<F: VmemmapArch>(world: &mut World<F>) {
    crate::heap::with_faults(|f| f.clear());
    world.sparse.vmemmap_mut().faults().clear();
}

/// Two adds in one section (`a` and `b` subsection counts, `b` after `a`); removing the
/// first keeps the second's memmap mapped (the arm64 2025 bug), removing the second
/// frees everything.
pub fn two_adds_share_section<F: VmemmapArch>(features: Features, altmap: bool) {
    let arch = F::MM;
    let mut world = World::<F>::new(features);
    let start = world.snapshot();
    let (a, b) = (world.subsections(0, 8), world.subsections(8, 8));
    let mut map_a = altmap.then(|| exact_altmap(arch, &a));
    let mut map_b = altmap.then(|| exact_altmap(arch, &b));
    world.add(a.clone(), map_a.as_mut()).expect("add A");
    world.add(b.clone(), map_b.as_mut()).expect("add B");
    world.remove(a.clone(), map_a.as_mut()).expect("remove A");
    for pfn in (b.start.0..b.end.0).step_by(64) {
        assert!(
            world.struct_page_phys(Pfn(pfn)).is_some(),
            "B's memmap lost when A was removed"
        );
    }
    world.check_invariants(&map_b.iter().collect::<Vec<_>>());
    assert_eq!(
        world
            .sparse
            .section(world.arch().section_nr(b.start))
            .map(|s| s.present),
        Some(0xff00)
    );
    world.remove(b, map_b.as_mut()).expect("remove B");
    assert!(world.sparse.sections().next().is_none());
    assert_eq!(world.snapshot(), start);
    for map in [map_a, map_b].into_iter().flatten() {
        assert_eq!((map.alloc, map.align), (0, 0));
    }
}

/// A huge leaf partly used: add a section, remove its first `subs` subsections (the leaf
/// stays for the rest), re-add them (the leaf is reused: no new allocation), then remove
/// all (the leaf goes).
pub fn partially_used_huge_leaf<F: VmemmapArch>(features: Features, subs: u64) {
    let arch = F::MM;
    let mut world = World::<F>::new(features);
    let start = world.snapshot();
    let section = world.sections(0, 1);
    let part = world.subsections(0, subs);
    world.add(section.clone(), None).expect("add section");
    let leaf_va = VirtAddr(arch.pfn_to_page(section.start).0);
    let leaf_pages = arch.vmemmap_leaf_bytes() / PAGE_SIZE;
    assert_eq!(world.sparse.huge_leaf_users(leaf_va), leaf_pages);
    let leaves = world.stats().leaves();
    world.remove(part.clone(), None).expect("remove part");
    let used_pages = leaf_pages - arch.memmap_bytes(part.end.0 - part.start.0) / PAGE_SIZE;
    assert_eq!(world.sparse.huge_leaf_users(leaf_va), used_pages);
    assert_eq!(
        world.stats().leaves(),
        leaves,
        "a partly used leaf must stay"
    );
    let handed_out = world.mem.handed_out();
    world.add(part, None).expect("re-add part");
    assert_eq!(
        world.mem.handed_out(),
        handed_out,
        "re-add must reuse the leaf, not pay twice"
    );
    world.check_invariants(&[]);
    world.remove(section, None).expect("remove section");
    assert_eq!(world.snapshot(), start);
}

/// Removes and re-adds `sections` sections with a fresh and with a reused altmap
/// (reserve 2, so the first leaf needs padding): the layout must be identical and the
/// reused altmap must not leak `align`.
pub fn readd_fresh_and_reused_altmap<F: VmemmapArch>(features: Features, sections: u64) {
    let arch = F::MM;
    let mut world = World::<F>::new(features);
    let range = world.sections(0, sections);
    let make = || {
        VmemAltmap::new(
            range.start.0,
            range.end.0 - 1,
            2,
            arch.memmap_bytes(range.end.0 - range.start.0) / PAGE_SIZE + 512,
        )
    };
    let mut reused = make();
    world.add(range.clone(), Some(&mut reused)).expect("add");
    let (layout, fields) = (world.dump(), (reused.alloc, reused.align));
    world
        .remove(range.clone(), Some(&mut reused))
        .expect("remove");
    assert_eq!(
        (reused.alloc, reused.align),
        (0, 0),
        "align leaked on teardown"
    );
    world
        .add(range.clone(), Some(&mut reused))
        .expect("re-add, reused altmap");
    assert_eq!(
        (world.dump(), (reused.alloc, reused.align)),
        (layout.clone(), fields)
    );
    world
        .remove(range.clone(), Some(&mut reused))
        .expect("remove");
    let mut fresh = make();
    world
        .add(range.clone(), Some(&mut fresh))
        .expect("re-add, fresh altmap");
    assert_eq!((world.dump(), (fresh.alloc, fresh.align)), (layout, fields));
    world.remove(range, Some(&mut fresh)).expect("remove");
}

/// An nvdimm namespace of `sections` sections at a section-aligned start: returns the
/// layout and the altmap after populating (the caller checks the arch's numbers), after
/// checking that removal ends at `alloc == 0`.
pub fn nvdimm_namespace<F: VmemmapArch>(
    features: Features,
    sections: u64,
) -> Result<(NdPfnLayout, VmemAltmap), MmError> {
    let arch = F::MM;
    let mut world = World::<F>::new(features);
    let range = world.sections(0, sections);
    let (layout, mut altmap) = nvdimm_setup(
        arch,
        range.start.addr().0,
        sections * arch.section_bytes(),
        2 << 20,
    )
    .expect("layout");
    world.add(range.clone(), Some(&mut altmap))?;
    world.check_invariants(&[&altmap]);
    let populated = altmap.clone();
    world.remove(range, Some(&mut altmap)).expect("remove");
    assert_eq!((altmap.alloc, altmap.align), (0, 0));
    Ok((layout, populated))
}

/// memmap_on_memory for a block of `sections` sections: the memmap lives in the block's
/// first pages (self-hosted: the struct page of the block's first pfn is inside the
/// block); removing without the altmap is refused (Linux's NULL-altmap error path,
/// §6.4 item 14) and removing with it ends at `alloc == 0`.
pub fn memmap_on_memory_block<F: VmemmapArch>(features: Features, sections: u64) {
    let arch = F::MM;
    let mut world = World::<F>::new(features);
    let start = world.snapshot();
    let range = world.sections(0, sections);
    let mut altmap = memmap_on_memory_altmap(
        arch,
        range.start,
        sections * arch.section_bytes(),
        MemmapOnMemoryMode::Enabled,
    )
    .expect("supported");
    world.add(range.clone(), Some(&mut altmap)).expect("add");
    assert_eq!(altmap.nr_free(), 0, "the altmap is consumed exactly");
    let first = world.struct_page_phys(range.start).expect("mapped");
    assert_eq!(
        first.phys.pfn(),
        range.start,
        "self-hosted: struct page of the first pfn in the first page"
    );
    let before = world.snapshot();
    let refused = world.remove(range.clone(), None).expect_err("no altmap");
    assert!(
        matches!(refused, MmError::AltmapMismatch { .. }),
        "{refused}"
    );
    assert_eq!(world.snapshot(), before);
    world
        .remove(range, Some(&mut altmap))
        .expect("remove with the altmap");
    assert_eq!((altmap.alloc, altmap.align), (0, 0));
    assert_eq!(world.snapshot(), start);
}

/// Removing through another altmap, or none, is refused and changes nothing.
pub fn wrong_altmap_is_refused<F: VmemmapArch>(features: Features) {
    let arch = F::MM;
    let mut world = World::<F>::new(features);
    let range = world.sections(0, 1);
    let mut right = exact_altmap(arch, &range);
    let mut other = VmemAltmap::new(range.end.0, range.end.0 + 4096, 0, 4096);
    world.add(range.clone(), Some(&mut right)).expect("add");
    let before = world.snapshot();
    for wrong in [Some(&mut other), None] {
        let error = world
            .remove(range.clone(), wrong)
            .expect_err("wrong altmap");
        assert!(matches!(error, MmError::AltmapMismatch { .. }), "{error}");
        assert_eq!(world.snapshot(), before);
    }
    world.remove(range, Some(&mut right)).expect("right altmap");
}

/// Populates 1 GiB of memory's memmap from RAM and checks the counters against the
/// arithmetic cost table.
pub fn cost_matches_formula<F: VmemmapArch>(features: Features, leaf_bytes: u64) {
    let arch = F::MM;
    let mut world = World::<F>::new(features);
    let sections = (1 << 30) / arch.section_bytes();
    world
        .add(world.sections(0, sections), None)
        .expect("add 1 GiB");
    let cost = MemmapCost::new(arch, leaf_bytes);
    let stats = world.stats();
    let huge_level = world.sparse.vmemmap().huge_level();
    assert_eq!(stats.leaves(), cost.leaves_per_gib);
    assert_eq!(stats.tables[huge_level + 1], cost.pte_tables_per_gib);
    assert_eq!(
        stats.tables[huge_level + 1] * F::LEVELS[huge_level + 1].table_bytes,
        cost.pte_table_bytes_per_gib
    );
    assert_eq!(stats.tables[huge_level], 1, "one leaf-holding table");
}

/// One step a live-table change makes, as the recording fake sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// A table word written.
    Write,
    /// The TLB flush.
    Flush,
    /// A frame back to its allocator.
    Free(crate::mm::phys::FramePurpose),
}

/// Simulated memory that records every table write and every free, in order.
struct Recorder<'a> {
    mem: &'a mut super::memory::SimMemory,
    log: std::rc::Rc<core::cell::RefCell<Vec<Step>>>,
}

impl crate::mm::phys::PhysMem for Recorder<'_> {
    fn read_u64(&self, addr: crate::mm::addr::PhysAddr) -> u64 {
        self.mem.read_u64(addr)
    }

    fn write_u64(&mut self, addr: crate::mm::addr::PhysAddr, value: u64) {
        self.log.borrow_mut().push(Step::Write);
        self.mem.write_u64(addr, value);
    }
}

impl crate::mm::phys::FrameSource for Recorder<'_> {
    fn alloc_frames(
        &mut self,
        size: u64,
        align: u64,
        purpose: crate::mm::phys::FramePurpose,
    ) -> Option<crate::mm::addr::PhysAddr> {
        self.mem.alloc_frames(size, align, purpose)
    }

    fn free_frames(
        &mut self,
        addr: crate::mm::addr::PhysAddr,
        size: u64,
        purpose: crate::mm::phys::FramePurpose,
    ) {
        self.log.borrow_mut().push(Step::Free(purpose));
        self.mem.free_frames(addr, size, purpose);
    }
}

/// Whether `log` flushed once, after every table write and before every free; `Err`
/// names the first step out of order.
pub fn flush_order(log: &[Step]) -> Result<(), String> {
    let flushes: Vec<usize> = (0..log.len()).filter(|&i| log[i] == Step::Flush).collect();
    let [flush] = flushes[..] else {
        return Err(format!("{} flushes", flushes.len()));
    };
    if let Some(i) = (0..flush).find(|&i| matches!(log[i], Step::Free(_))) {
        return Err(format!("step {i} frees before the flush at {flush}"));
    }
    if let Some(i) = (flush..log.len()).find(|&i| log[i] == Step::Write) {
        return Err(format!(
            "step {i} writes a table after the flush at {flush}"
        ));
    }
    Ok(())
}

/// Whether every free in `log` follows a flush that follows every table write before
/// it (the order a gather keeps when it has to flush early); `Err` names the first free
/// out of order.
pub fn flush_order_per_free(log: &[Step]) -> Result<(), String> {
    let mut flushed_since_write = false;
    for (i, step) in log.iter().enumerate() {
        match step {
            Step::Write => flushed_since_write = false,
            Step::Flush => flushed_since_write = true,
            Step::Free(_) if !flushed_since_write => {
                return Err(format!("step {i} frees with no flush since the last write"));
            }
            Step::Free(_) => {}
        }
    }
    Ok(())
}

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
