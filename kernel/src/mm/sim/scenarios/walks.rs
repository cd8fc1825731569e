//! Scenarios of the memmap's layout across adds and removes: every memmap page mapped
//! from the expected source and leaf size, two adds sharing a section, a partly used
//! huge leaf, re-adding with a fresh or reused altmap, and the cost of 1 GiB against
//! the formula.

use std::vec::Vec;

use super::altmaps::exact_altmap;
use crate::mm::addr::{PAGE_SIZE, Pfn, VirtAddr};
use crate::mm::altmap::VmemAltmap;
use crate::mm::cost::MemmapCost;
use crate::mm::pgtable::Features;
use crate::mm::semantics::Semantics;
use crate::mm::sim::World;
use crate::mm::vmemmap::VmemmapArch;

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
