//! A simulated machine (`World`) with snapshots and invariant checks, and a random
//! operation runner for property tests. Used by the shared suite ([`super::suite`]), so
//! each arch's walker runs the same checks.

use std::collections::BTreeSet;
use std::ops::Range;
use std::vec::Vec;

use super::memory::SimMemory;
use crate::mm::addr::{PAGE_SIZE, Pfn};
use crate::mm::altmap::VmemAltmap;
use crate::mm::arch::MmArch;
use crate::mm::error::MmError;
use crate::mm::pgtable::Features;
use crate::mm::phys::FramePurpose;
use crate::mm::semantics::Semantics;
use crate::mm::sparse::{Section, Sparse};
use crate::mm::vmemmap::{VmemmapArch, VmemmapStats};
use crate::mm::walk::{Mapping, TableDump, dump, translate};

/// Where the simulated RAM (tables, RAM leaves) lives: 4 GiB, 2 GiB of it.
pub const RAM_BASE: u64 = 0x1_0000_0000;
/// Size of the simulated RAM.
pub const RAM_BYTES: u64 = 0x8000_0000;
/// Where hot-added ranges go in tests: 256 GiB.
pub const HOTPLUG_BASE: u64 = 0x40_0000_0000;

/// A simulated machine: memory plus the sparse model over one format.
pub struct World<F: VmemmapArch> {
    /// Simulated memory (tables and RAM leaves).
    pub mem: SimMemory,
    /// The sparse model and its vmemmap.
    pub sparse: Sparse<F>,
}

/// Everything observable about a world, for exact before/after comparisons.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// The walker's counters.
    pub stats: VmemmapStats,
    /// Present sections.
    pub sections: Vec<(u64, Section)>,
    /// RAM blocks outstanding.
    pub ram_blocks: usize,
    /// RAM bytes outstanding.
    pub ram_bytes: u64,
    /// Every table and leaf.
    pub tables: TableDump,
}

impl<F: VmemmapArch> World<F> {
    /// A machine with empty tables (hotmem semantics).
    pub fn new(features: Features) -> World<F> {
        let mut mem = SimMemory::new(RAM_BASE, RAM_BYTES);
        let sparse = Sparse::new(features, &mut mem).expect("root table");
        World { mem, sparse }
    }

    /// A machine with empty tables under `semantics`.
    pub fn with_semantics(features: Features, semantics: Semantics) -> World<F> {
        let mut world = Self::new(features);
        world.sparse.vmemmap_mut().set_semantics(semantics);
        world
    }

    /// The memory-model constants.
    pub fn arch(&self) -> &'static MmArch {
        self.sparse.arch()
    }

    /// Frames `[HOTPLUG_BASE + first_section sections, + sections)`.
    pub fn sections(&self, first_section: u64, sections: u64) -> Range<Pfn> {
        let arch = self.arch();
        let start = HOTPLUG_BASE / PAGE_SIZE + first_section * arch.pages_per_section();
        Pfn(start)..Pfn(start + sections * arch.pages_per_section())
    }

    /// Frames of subsections `[first, first + count)` counted from `HOTPLUG_BASE`.
    pub fn subsections(&self, first: u64, count: u64) -> Range<Pfn> {
        let per = self.arch().pages_per_subsection();
        let start = HOTPLUG_BASE / PAGE_SIZE + first * per;
        Pfn(start)..Pfn(start + count * per)
    }

    /// `Sparse::add`.
    pub fn add(
        &mut self,
        range: Range<Pfn>,
        altmap: Option<&mut VmemAltmap>,
    ) -> Result<(), MmError> {
        self.sparse.add(&mut self.mem, range, altmap)
    }

    /// `Sparse::remove`.
    pub fn remove(
        &mut self,
        range: Range<Pfn>,
        altmap: Option<&mut VmemAltmap>,
    ) -> Result<(), MmError> {
        self.sparse.remove(&mut self.mem, range, altmap)
    }

    /// The counters.
    pub fn stats(&self) -> VmemmapStats {
        *self.sparse.vmemmap().stats()
    }

    /// Every table and leaf.
    pub fn dump(&self) -> TableDump {
        dump::<F, _>(&self.mem, self.sparse.vmemmap().root()).expect("well-formed tables")
    }

    /// Everything observable.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            stats: self.stats(),
            sections: self.sparse.sections().map(|(nr, s)| (nr, *s)).collect(),
            ram_blocks: self.mem.outstanding(),
            ram_bytes: self.mem.outstanding_bytes(),
            tables: self.dump(),
        }
    }

    /// Where the struct page of `pfn` is backed, through the simulated MMU.
    pub fn struct_page_phys(&self, pfn: Pfn) -> Option<crate::mm::sim::Translation> {
        let va = self.arch().pfn_to_page(pfn).0;
        let vmemmap = self.sparse.vmemmap();
        translate::<F, _>(&self.mem, vmemmap.root(), vmemmap.features(), va).ok()
    }

    /// Checks every invariant; `altmaps` are all altmaps with live blocks.
    ///
    /// # Panics
    /// On the first violated invariant, with a description.
    pub fn check_invariants(&self, altmaps: &[&VmemAltmap]) {
        let dump = self.dump();
        let stats = self.stats();
        self.check_tables(&dump, &stats);
        check_disjoint(&dump);
        self.check_leaf_sources(&dump, &stats, altmaps);
        self.check_present_memmap_mapped();
        self.check_no_stray_leaves(&dump);
    }

    fn check_tables(&self, dump: &TableDump, stats: &VmemmapStats) {
        let mut per_level = [0u64; crate::mm::vmemmap::MAX_LEVELS];
        for (level, table) in &dump.tables {
            per_level[*level] += 1;
            let block = self.mem.live_block(*table);
            assert_eq!(
                block,
                Some((F::LEVELS[*level].table_bytes, FramePurpose::PageTable)),
                "table {table:?} at level {level} is not a live RAM table block"
            );
        }
        assert_eq!(
            per_level, stats.tables,
            "table counters disagree with the tables"
        );
        let ram_leaves = dump
            .leaves
            .iter()
            .filter(|m| self.mem.is_ram(m.frame))
            .count();
        assert_eq!(
            self.mem.outstanding(),
            dump.tables.len() + ram_leaves,
            "RAM blocks outstanding != tables + RAM leaves (a leak)"
        );
    }

    fn check_leaf_sources(&self, dump: &TableDump, stats: &VmemmapStats, altmaps: &[&VmemAltmap]) {
        let (mut ram_bytes, mut altmap_pages) = (0, 0);
        let mut per_altmap = vec![0u64; altmaps.len()];
        for leaf in &dump.leaves {
            if self.mem.is_ram(leaf.frame) {
                assert_eq!(
                    self.mem.live_block(leaf.frame),
                    Some((leaf.bytes, FramePurpose::Leaf))
                );
                ram_bytes += leaf.bytes;
                continue;
            }
            let owner = altmaps.iter().position(|a| a.in_storage(leaf.frame.pfn()));
            let owner =
                owner.unwrap_or_else(|| panic!("leaf {leaf:?} is neither RAM nor altmap storage"));
            let altmap = altmaps[owner];
            assert!(
                leaf.frame.pfn().0 + leaf.bytes / PAGE_SIZE <= altmap.next_pfn(),
                "leaf past next_pfn"
            );
            assert!(
                altmap.is_outstanding(leaf.frame.pfn(), leaf.bytes / PAGE_SIZE),
                "leaf is no live block"
            );
            per_altmap[owner] += leaf.bytes / PAGE_SIZE;
            altmap_pages += leaf.bytes / PAGE_SIZE;
        }
        assert_eq!(ram_bytes, stats.ram_leaf_bytes, "RAM leaf bytes");
        assert_eq!(altmap_pages, stats.altmap_pages, "altmap pages");
        for (altmap, used) in altmaps.iter().zip(per_altmap) {
            assert_eq!(
                altmap.live_pages(),
                used,
                "altmap accounting != frames mapped from it"
            );
            assert!(
                altmap.alloc + altmap.align <= altmap.free,
                "altmap over capacity"
            );
        }
    }

    fn check_present_memmap_mapped(&self) {
        let arch = self.arch();
        for (nr, section) in self.sparse.sections() {
            for sub in 0..arch.subsections_per_section() {
                if section.present & (1 << sub) == 0 {
                    continue;
                }
                let first = arch
                    .section_start(nr)
                    .add(sub * arch.pages_per_subsection());
                let pages_per_memmap_page = PAGE_SIZE / crate::mm::page::STRUCT_PAGE_SIZE;
                for step in (0..arch.pages_per_subsection()).step_by(pages_per_memmap_page as usize)
                {
                    assert!(
                        self.struct_page_phys(first.add(step)).is_some(),
                        "memmap of {first:?}+{step} unmapped"
                    );
                }
            }
        }
    }

    fn check_no_stray_leaves(&self, dump: &TableDump) {
        let arch = self.arch();
        for leaf in &dump.leaves {
            let first = arch.page_to_pfn(crate::mm::addr::VirtAddr(leaf.va));
            let last = arch.page_to_pfn(crate::mm::addr::VirtAddr(leaf.va + leaf.bytes - 1));
            let mut pfn = first.0 - first.0 % arch.pages_per_subsection();
            let mut used = false;
            while pfn <= last.0 && !used {
                used = self.sparse.pfn_valid(Pfn(pfn));
                pfn += arch.pages_per_subsection();
            }
            assert!(used, "leaf {leaf:?} maps memmap of no present subsection");
        }
    }
}

fn check_disjoint(dump: &TableDump) {
    let mut spans: Vec<(u64, u64)> = dump
        .leaves
        .iter()
        .map(|m: &Mapping| (m.frame.0, m.frame.0 + m.bytes))
        .collect();
    spans.sort();
    for pair in spans.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "frame mapped twice: {:#x?}", pair);
    }
    let tables: BTreeSet<u64> = dump.tables.iter().map(|(_, t)| t.0).collect();
    for (start, end) in &spans {
        assert!(
            tables.range(start..end).next().is_none(),
            "a leaf overlaps a table"
        );
    }
}

/// How a random add sizes its altmap.
#[derive(Clone, Copy, Debug)]
pub struct AltmapSpec {
    /// Reserved pages at the start (0..=4).
    pub reserve: u64,
    /// Capacity as a percentage of the memmap pages the range needs (plus padding room).
    pub percent: u64,
}

/// A random operation.
#[derive(Clone, Copy, Debug)]
pub enum Op {
    /// Add subsections `[first, first + count)` of the window.
    Add {
        /// First subsection.
        first: u64,
        /// Count.
        count: u64,
        /// Altmap, if any.
        altmap: Option<AltmapSpec>,
    },
    /// Remove the `pick`-th live add (modulo the number of live adds).
    Remove {
        /// Which.
        pick: usize,
    },
    /// Remove an arbitrary range (usually refused).
    RemoveRange {
        /// First subsection.
        first: u64,
        /// Count.
        count: u64,
    },
}

/// Runs `ops` on a fresh world of `window_sections` sections, checking after each step
/// the invariants and a plain reference model of the subsection bitmap; at the end
/// removes everything and checks the simulated memory is back to where it started.
pub fn run_ops<F: VmemmapArch>(features: Features, window_sections: u64, ops: &[Op]) {
    let arch = F::MM;
    let mut world = World::<F>::new(features);
    let start = world.snapshot();
    let window = window_sections * arch.subsections_per_section();
    let mut present: BTreeSet<u64> = BTreeSet::new();
    let mut live: Vec<(Range<Pfn>, Option<VmemAltmap>, Range<u64>)> = Vec::new();
    for op in ops {
        match *op {
            Op::Add {
                first,
                count,
                altmap,
            } => {
                let first = first % window;
                let count = count.clamp(1, window - first);
                let subs = first..first + count;
                let range = world.subsections(first, count);
                let mut altmap = altmap.map(|spec| spec_altmap(arch, &range, spec));
                let before = world.snapshot();
                let result = world.add(range.clone(), altmap.as_mut());
                let overlaps = subs.clone().any(|s| present.contains(&s));
                match result {
                    Ok(()) => {
                        assert!(!overlaps, "add over present subsections succeeded");
                        present.extend(subs.clone());
                        live.push((range, altmap, subs));
                    }
                    Err(error) => {
                        assert_eq!(
                            overlaps,
                            matches!(error, MmError::SubsectionExists { .. }),
                            "{error}"
                        );
                        assert_eq!(
                            world.snapshot(),
                            before,
                            "failed add changed state ({error})"
                        );
                        if let Some(altmap) = &altmap {
                            assert_eq!(
                                (altmap.alloc, altmap.align, altmap.live_pages()),
                                (0, 0, 0)
                            );
                        }
                    }
                }
            }
            Op::Remove { pick } if !live.is_empty() => {
                let (range, mut altmap, subs) = live.swap_remove(pick % live.len());
                world
                    .remove(range, altmap.as_mut())
                    .expect("removing a live add");
                if let Some(altmap) = &altmap {
                    assert_eq!(
                        (altmap.alloc, altmap.align, altmap.live_pages()),
                        (0, 0, 0),
                        "altmap not returned"
                    );
                }
                subs.for_each(|s| {
                    present.remove(&s);
                });
            }
            Op::Remove { .. } => {}
            Op::RemoveRange { first, count } => {
                let first = first % window;
                let count = count.clamp(1, window - first);
                if (first..first + count).all(|s| present.contains(&s)) {
                    continue;
                }
                let before = world.snapshot();
                let error = world
                    .remove(world.subsections(first, count), None)
                    .expect_err("not all present");
                assert!(
                    matches!(error, MmError::SubsectionNotPresent { .. }),
                    "{error}"
                );
                assert_eq!(world.snapshot(), before);
            }
        }
        let reference: BTreeSet<u64> = world
            .sparse
            .sections()
            .flat_map(|(nr, s)| {
                let base = nr * arch.subsections_per_section()
                    - HOTPLUG_BASE / arch.section_bytes() * arch.subsections_per_section();
                (0..128)
                    .filter(move |b| s.present & (1 << b) != 0)
                    .map(move |b| base + b)
            })
            .collect();
        assert_eq!(
            reference, present,
            "subsection bitmap differs from the reference model"
        );
        let altmaps: Vec<&VmemAltmap> = live.iter().filter_map(|(_, a, _)| a.as_ref()).collect();
        world.check_invariants(&altmaps);
    }
    while let Some((range, mut altmap, _)) = live.pop() {
        world.remove(range, altmap.as_mut()).expect("final removal");
    }
    assert_eq!(
        world.snapshot(),
        start,
        "simulated memory not back to its starting state"
    );
}

fn spec_altmap(arch: &MmArch, range: &Range<Pfn>, spec: AltmapSpec) -> VmemAltmap {
    let pages = range.end.0 - range.start.0;
    let needed = arch.memmap_bytes(pages) / PAGE_SIZE + arch.vmemmap_leaf_bytes() / PAGE_SIZE;
    let free = (needed * spec.percent / 100).min(pages - spec.reserve);
    VmemAltmap::new(range.start.0, range.end.0 - 1, spec.reserve, free)
}
