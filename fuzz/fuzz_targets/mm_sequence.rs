//! Fuzz target `mm_sequence`: random hot-add / hot-remove / fault-injection sequences
//! against the mm core (`Sparse` over the vmemmap walker) on the simulated memory
//! (`kernel::mm::sim::World`), for all three page-table formats.
//!
//! After every step the target checks:
//! - every altmap against a plain reference model written here: the set of live blocks,
//!   learnt from the altmap-backed leaves of the page tables before and after the step.
//!   Each new block must be aligned to the lowest set bit of its page count, inside the
//!   storage, at or above the bump pointer's start and clear of every live block; the
//!   altmap's live pages must equal the model's, every live block must be outstanding,
//!   `next_pfn` must lie above them all, `alloc + align` within `free`, and an altmap with
//!   no live block must be back at `alloc == align == 0` (the altmap's holes and buried
//!   pages are its own business; the model checks what they guarantee);
//! - the present subsections against a plain set;
//! - a failed add or remove changed nothing (tables, counters, RAM blocks, the altmap);
//!   an add over a present subsection is refused as such; an injected `ENOMEM` only
//!   when a rule fired;
//! - the harness invariants (`World::check_invariants`) whenever the live altmaps'
//!   storage areas are disjoint (its leaf-to-altmap attribution needs that).
//!
//! At the end every live add is removed (which must succeed), after which every altmap
//! has `alloc == align == 0` and no live page, and the simulated memory, the page tables and
//! their counters are exactly as at the start.
//!
//! How altmaps are used follows the kernel's callers (the hotplug engine and the region
//! list): one altmap per base pfn, reused while it has live blocks; a range added with an
//! altmap is removed whole with it; partial removes pass no altmap or another range's
//! altmap (which the mm core must refuse whenever a leaf it would free is not theirs).
//!
//! Input layout: `arch` u8 (x86_64, aarch64, s390x), `features` u8 (a per-arch list),
//! `window` u8 (1 + window % 3 sections), then up to 48 operations, each an opcode
//! byte (% 6) and its arguments:
//! - 0, 1 add: `first` u8, `count` u8 (subsections, clamped to the window), `altmap` u8
//!   (bit 0: with an altmap; bits 1-7 % 5: its reserve), `percent` u8 (its capacity as a
//!   percentage of the memmap pages the range needs, plus one huge leaf of padding room);
//! - 2 remove a live add: `pick` u8;
//! - 3 remove a range: `first` u8, `count` u8, `with` u8 (0: no altmap, else another
//!   range's altmap);
//! - 4 inject: `kind` u8 (% 3: altmap leaf, RAM leaf, page table), `nth` u8 (1 + % 16),
//!   `mode` u8 (bit 0: from then on, else once);
//! - 5 clear the fault rules.
#![no_main]

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use arch_aarch64::paging::Aarch64Paging;
use arch_s390x::paging::S390xPaging;
use arch_x86_64::paging::X86_64Paging;
use hotmem_fuzz::Bytes;
use kernel::mm::addr::{PAGE_SIZE, Pfn};
use kernel::mm::altmap::VmemAltmap;
use kernel::mm::arch::MmArch;
use kernel::mm::error::{AllocKind, MmError};
use kernel::mm::pgtable::Features;
use kernel::mm::sim::{Snapshot, World};
use kernel::mm::vmemmap::VmemmapArch;
use libfuzzer_sys::fuzz_target;

const NX: Features = Features::NO_EXECUTE;
const X86_FEATURES: [Features; 4] = [
    Features::PSE.union(NX),
    NX,
    Features::PSE.union(Features::PDPE1GB).union(NX),
    Features::PSE,
];
const ARM64_FEATURES: [Features; 2] = [NX, Features::empty()];
const S390_FEATURES: [Features; 3] = [
    Features::EDAT1.union(NX),
    NX,
    Features::EDAT1.union(Features::EDAT2).union(NX),
];
const KINDS: [AllocKind; 3] = [
    AllocKind::AltmapLeaf,
    AllocKind::RamLeaf,
    AllocKind::PageTable,
];
const MAX_OPS: usize = 48;

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes::new(data);
    let (arch, features) = (b.u8() % 3, usize::from(b.u8()));
    let window = 1 + u64::from(b.u8() % 3);
    match arch {
        0 => run::<X86_64Paging>(X86_FEATURES[features % 4], window, b),
        1 => run::<Aarch64Paging>(ARM64_FEATURES[features % 2], window, b),
        _ => run::<S390xPaging>(S390_FEATURES[features % 3], window, b),
    }
});

/// One outstanding block in the reference model.
#[derive(Clone, Copy, Debug)]
struct Block {
    pfn: u64,
    pages: u64,
}

/// The live blocks of one altmap, fed from the page tables.
#[derive(Clone, Debug)]
struct Model {
    base_pfn: u64,
    end_pfn: u64,
    reserve: u64,
    free: u64,
    blocks: Vec<Block>,
}

impl Model {
    fn new(a: &VmemAltmap) -> Self {
        Model {
            base_pfn: a.base_pfn,
            end_pfn: a.end_pfn,
            reserve: a.reserve,
            free: a.free,
            blocks: Vec::new(),
        }
    }

    /// A new block: naturally aligned, in the storage, clear of every live block.
    fn alloc(&mut self, pfn: u64, pages: u64) {
        let natural = 1u64 << pages.trailing_zeros();
        assert!(
            pfn.is_multiple_of(natural),
            "block {pfn:#x}+{pages} not naturally aligned"
        );
        let storage = self.base_pfn + self.reserve..self.base_pfn + self.reserve + self.free;
        assert!(
            storage.start <= pfn && pfn + pages <= storage.end,
            "block {pfn:#x}+{pages} outside the storage {storage:x?}"
        );
        for b in &self.blocks {
            assert!(
                pfn + pages <= b.pfn || b.pfn + b.pages <= pfn,
                "block {pfn:#x}+{pages} overlaps the live {b:?}"
            );
        }
        self.blocks.push(Block { pfn, pages });
    }

    fn free_block(&mut self, pfn: u64, pages: u64) {
        let i = self
            .blocks
            .iter()
            .position(|b| b.pfn == pfn && b.pages == pages)
            .unwrap_or_else(|| panic!("leaf {pfn:#x}+{pages} freed but is no live block"));
        self.blocks.swap_remove(i);
    }

    fn check(&self, a: &VmemAltmap) {
        let fields = |m: &Model| (m.base_pfn, m.end_pfn, m.reserve, m.free);
        let real = (a.base_pfn, a.end_pfn, a.reserve, a.free);
        assert_eq!(
            real,
            fields(self),
            "altmap fields (base, end, reserve, free)"
        );
        assert_eq!(a.next_pfn(), a.base_pfn + a.reserve + a.alloc + a.align);
        assert_eq!(a.nr_free(), a.free.saturating_sub(a.alloc + a.align));
        assert_eq!(
            a.live_pages(),
            self.blocks.iter().map(|b| b.pages).sum::<u64>()
        );
        for b in &self.blocks {
            assert!(
                a.is_outstanding(Pfn(b.pfn), b.pages),
                "{b:?} not outstanding"
            );
            assert!(b.pfn + b.pages <= a.next_pfn(), "{b:?} above next_pfn");
        }
        if self.blocks.is_empty() {
            assert_eq!(
                (a.alloc, a.align, a.buried_pages()),
                (0, 0, 0),
                "empty altmap"
            );
        }
        assert!(a.alloc + a.align <= a.free, "altmap over capacity");
    }
}

/// An altmap and its model, one per base pfn.
struct Slot {
    altmap: VmemAltmap,
    model: Model,
}

/// A successful add: its base subsection, what is left of it, and whether it has an
/// altmap (the slot of its base).
struct LiveAdd {
    base: u64,
    subs: BTreeSet<u64>,
    altmap: bool,
}

struct Sim<F: VmemmapArch> {
    world: World<F>,
    window: u64,
    slots: BTreeMap<u64, Slot>,
    adds: Vec<LiveAdd>,
    owner: BTreeMap<u64, usize>,
    /// Everything observable after the last step (the "before" of the next one).
    last: Snapshot,
}

/// Altmap-backed leaves `(pfn, pages)` in a snapshot (frames outside the simulated RAM).
fn altmap_leaves<F: VmemmapArch>(world: &World<F>, snap: &Snapshot) -> BTreeSet<(u64, u64)> {
    snap.tables
        .leaves
        .iter()
        .filter(|l| !world.mem.is_ram(l.frame))
        .map(|l| (l.frame.pfn().0, l.bytes / PAGE_SIZE))
        .collect()
}

fn run<F: VmemmapArch>(features: Features, window: u64, mut b: Bytes<'_>) {
    let arch = F::MM;
    let world = World::<F>::new(features);
    let start = world.snapshot();
    let mut sim = Sim {
        world,
        window: window * arch.subsections_per_section(),
        slots: BTreeMap::new(),
        adds: Vec::new(),
        owner: BTreeMap::new(),
        last: start.clone(),
    };
    let mut ops = 0;
    while !b.is_empty() && ops < MAX_OPS {
        ops += 1;
        match b.u8() % 6 {
            0 | 1 => {
                let (first, count) = sim.span(b.u8(), b.u8());
                let (spec, percent) = (b.u8(), b.u8());
                sim.add(first, count, spec, percent);
            }
            2 => sim.remove_live(usize::from(b.u8())),
            3 => {
                let (first, count) = sim.span(b.u8(), b.u8());
                sim.remove_range(first, count, b.u8());
            }
            4 => {
                let (kind, nth, mode) = (b.u8(), b.u8(), b.u8());
                let faults = sim.world.sparse.vmemmap_mut().faults();
                let kind = KINDS[usize::from(kind % 3)];
                let nth = 1 + u64::from(nth % 16);
                if mode & 1 != 0 {
                    faults.fail_from(kind, nth);
                } else {
                    faults.fail_nth(kind, nth);
                }
            }
            _ => sim.world.sparse.vmemmap_mut().faults().clear(),
        }
        sim.check();
    }
    sim.world.sparse.vmemmap_mut().faults().clear();
    for i in 0..sim.adds.len() {
        sim.remove_live_index(i);
        sim.check();
    }
    assert!(sim.owner.is_empty());
    for slot in sim.slots.values() {
        let a = &slot.altmap;
        assert_eq!(
            (a.alloc, a.align, a.live_pages()),
            (0, 0, 0),
            "altmap after teardown"
        );
    }
    assert_eq!(
        sim.world.snapshot(),
        start,
        "simulated memory not back to its start"
    );
}

impl<F: VmemmapArch> Sim<F> {
    fn arch(&self) -> &'static MmArch {
        self.world.arch()
    }

    fn span(&self, first: u8, count: u8) -> (u64, u64) {
        let first = u64::from(first) % self.window;
        (first, u64::from(count).clamp(1, self.window - first))
    }

    fn pfns(&self, first: u64, count: u64) -> Range<Pfn> {
        self.world.subsections(first, count)
    }

    fn add(&mut self, first: u64, count: u64, spec: u8, percent: u8) {
        let range = self.pfns(first, count);
        let base = range.start.0;
        let with_altmap = spec & 1 != 0;
        if with_altmap {
            let reuse = self
                .slots
                .get(&base)
                .is_some_and(|s| s.altmap.live_pages() > 0);
            if !reuse {
                let altmap = fresh_altmap(self.arch(), &range, u64::from(spec >> 1) % 5, percent);
                if let Some(old) = self.slots.get(&base) {
                    assert_eq!((old.altmap.alloc, old.altmap.align), (0, 0));
                }
                let model = Model::new(&altmap);
                self.slots.insert(base, Slot { altmap, model });
            }
        }
        let altmap_before = with_altmap.then(|| self.slots[&base].altmap.clone());
        let injected_before = self.injected();
        let overlaps = (first..first + count).any(|s| self.owner.contains_key(&s));
        let invalid = altmap_before
            .as_ref()
            .is_some_and(|a| a.offset() > range.end.0 - range.start.0);
        let result = {
            let altmap = with_altmap.then(|| &mut self.slots.get_mut(&base).expect("slot").altmap);
            self.world.add(range.clone(), altmap)
        };
        match result {
            Ok(()) => {
                assert!(
                    !overlaps && !invalid,
                    "add over present subsections or with a bad altmap"
                );
                let id = self.adds.len();
                let subs: BTreeSet<u64> = (first..first + count).collect();
                for s in &subs {
                    self.owner.insert(*s, id);
                }
                self.adds.push(LiveAdd {
                    base: first,
                    subs,
                    altmap: with_altmap,
                });
                self.learn(with_altmap.then_some(base));
            }
            Err(error) => {
                match &error {
                    MmError::AltmapInvalid(_) => assert!(invalid, "{error}"),
                    MmError::SubsectionExists { .. } => assert!(overlaps && !invalid, "{error}"),
                    MmError::NoMemory(kind) => {
                        assert!(!overlaps && !invalid, "{error}");
                        let i = KINDS.iter().position(|k| k == kind).expect("kind");
                        assert!(
                            self.injected()[i] > injected_before[i],
                            "ENOMEM without a fault"
                        );
                    }
                    MmError::AltmapExhausted { .. }
                    | MmError::AltmapMismatch { .. }
                    | MmError::NoHugeSupportForAltmap => assert!(!overlaps && !invalid, "{error}"),
                    other => panic!("unexpected add error {other:?}"),
                }
                self.unchanged(&format!("failed add ({error})"));
                if let Some(a) = altmap_before {
                    assert_eq!(self.slots[&base].altmap, a, "failed add changed the altmap");
                }
            }
        }
    }

    fn injected(&mut self) -> [u64; 3] {
        let faults = self.world.sparse.vmemmap_mut().faults();
        KINDS.map(|k| faults.injected(k))
    }

    /// After a refused step: everything observable is as before it.
    fn unchanged(&self, what: &str) {
        assert_eq!(self.world.snapshot(), self.last, "{what} changed state");
    }

    /// After a step that passed the altmap of slot `slot` (or none, in which case no
    /// altmap leaf may have come or gone): feeds the model the blocks handed out or
    /// returned, and takes the new snapshot.
    fn learn(&mut self, slot: Option<u64>) {
        let now = self.world.snapshot();
        let before = altmap_leaves(&self.world, &self.last);
        let after = altmap_leaves(&self.world, &now);
        self.last = now;
        let gone: Vec<_> = before.difference(&after).copied().collect();
        let new: Vec<_> = after.difference(&before).copied().collect();
        let Some(slot) = slot else {
            assert!(
                gone.is_empty() && new.is_empty(),
                "altmap leaves changed without an altmap"
            );
            return;
        };
        let model = &mut self.slots.get_mut(&slot).expect("slot").model;
        for (pfn, pages) in gone {
            model.free_block(pfn, pages);
        }
        for (pfn, pages) in new {
            model.alloc(pfn, pages);
        }
    }

    fn remove_live(&mut self, pick: usize) {
        let live: Vec<usize> = (0..self.adds.len())
            .filter(|i| !self.adds[*i].subs.is_empty())
            .collect();
        if !live.is_empty() {
            self.remove_live_index(live[pick % live.len()]);
        }
    }

    /// Removes what is left of add `id`, run by run, through its own altmap: must succeed.
    fn remove_live_index(&mut self, id: usize) {
        let subs: Vec<u64> = self.adds[id].subs.iter().copied().collect();
        let slot = self.adds[id]
            .altmap
            .then(|| self.pfns(self.adds[id].base, 1).start.0);
        for run in runs(&subs) {
            let range = self.pfns(run.start, run.end - run.start);
            let altmap = slot.map(|s| &mut self.slots.get_mut(&s).expect("slot").altmap);
            self.world
                .remove(range, altmap)
                .unwrap_or_else(|e| panic!("removing live add {id} run {run:?}: {e}"));
            self.learn(slot);
            for s in run {
                self.owner.remove(&s);
                self.adds[id].subs.remove(&s);
            }
        }
    }

    fn remove_range(&mut self, first: u64, count: u64, with: u8) {
        let subs = first..first + count;
        let present = subs.clone().all(|s| self.owner.contains_key(&s));
        // Another range's altmap: a slot whose base owns none of these subsections.
        let bases: BTreeSet<u64> = subs
            .clone()
            .filter_map(|s| self.owner.get(&s))
            .map(|id| self.pfns(self.adds[*id].base, 1).start.0)
            .collect();
        let others: Vec<u64> = self
            .slots
            .keys()
            .copied()
            .filter(|k| !bases.contains(k))
            .collect();
        let slot = match (with, others.is_empty()) {
            (0, _) | (_, true) => None,
            (w, false) => Some(others[usize::from(w) % others.len()]),
        };
        let altmap_before = slot.map(|s| self.slots[&s].altmap.clone());
        let range = self.pfns(first, count);
        let result = {
            let altmap = slot.map(|s| &mut self.slots.get_mut(&s).expect("slot").altmap);
            self.world.remove(range, altmap)
        };
        match result {
            Ok(()) => {
                assert!(present, "removed subsections that were not present");
                self.learn(None);
                for s in subs {
                    let id = self.owner.remove(&s).expect("present");
                    self.adds[id].subs.remove(&s);
                }
            }
            Err(error) => {
                match &error {
                    MmError::SubsectionNotPresent { .. } => assert!(!present, "{error}"),
                    MmError::AltmapMismatch { .. } => assert!(present, "{error}"),
                    other => panic!("unexpected remove error {other:?}"),
                }
                self.unchanged(&format!("failed remove ({error})"));
                if let (Some(s), Some(a)) = (slot, altmap_before) {
                    assert_eq!(self.slots[&s].altmap, a, "failed remove changed the altmap");
                }
            }
        }
    }

    /// The models against the altmaps and the tables; the present set; the harness.
    fn check(&self) {
        let leaves = altmap_leaves(&self.world, &self.last);
        let mut claimed = BTreeSet::new();
        for slot in self.slots.values() {
            slot.model.check(&slot.altmap);
            for b in &slot.model.blocks {
                assert!(claimed.insert((b.pfn, b.pages)), "block in two altmaps");
            }
        }
        assert_eq!(
            claimed, leaves,
            "altmap leaves in the tables != live blocks of the models"
        );

        let arch = self.arch();
        let per = arch.subsections_per_section();
        let first_section = arch.section_nr(self.pfns(0, 1).start);
        let present: BTreeSet<u64> = self
            .world
            .sparse
            .sections()
            .flat_map(|(nr, s)| {
                let base = (nr - first_section) * per;
                (0..per)
                    .filter(move |b| s.present & (1 << b) != 0)
                    .map(move |b| base + b)
            })
            .collect();
        let expect: BTreeSet<u64> = self.owner.keys().copied().collect();
        assert_eq!(present, expect, "present subsections");

        let live: Vec<&VmemAltmap> = self
            .slots
            .values()
            .map(|s| &s.altmap)
            .filter(|a| a.live_pages() > 0)
            .collect();
        let disjoint = live.iter().enumerate().all(|(i, a)| {
            live[i + 1..].iter().all(|b| {
                let (x, y) = (a.storage(), b.storage());
                x.end <= y.start || y.end <= x.start
            })
        });
        if disjoint {
            self.world.check_invariants(&live);
        }
    }
}

/// An altmap for `range` as the random adds of the harness size it.
fn fresh_altmap(arch: &MmArch, range: &Range<Pfn>, reserve: u64, percent: u8) -> VmemAltmap {
    let pages = range.end.0 - range.start.0;
    let needed = arch.memmap_bytes(pages) / PAGE_SIZE + arch.vmemmap_leaf_bytes() / PAGE_SIZE;
    let free = (needed * u64::from(percent) / 100).min(pages - reserve);
    VmemAltmap::new(range.start.0, range.end.0 - 1, reserve, free)
}

/// Maximal runs of consecutive numbers in a sorted list.
fn runs(sorted: &[u64]) -> Vec<Range<u64>> {
    let mut out: Vec<Range<u64>> = Vec::new();
    for &s in sorted {
        match out.last_mut() {
            Some(r) if r.end == s => r.end += 1,
            _ => out.push(s..s + 1),
        }
    }
    out
}
