//! The memory-management core on the running machine: the boot RAM sections get their
//! memmap (from RAM, through the live page tables), the buddy allocator comes online on
//! it, and from then on page tables and RAM leaves come from the buddy.
//!
//! The arch supplies a [`LiveConfig`]: its CPU features, the root of the page tables the
//! CPU is using, its direct map and its TLB flush; its memory-model constants come with
//! its walker ([`VmemmapArch::MM`]).

mod frames;
mod heap;
mod memmap;

use alloc::vec::Vec;
use core::ops::Range;

pub use frames::{Bump, DirectMap, LiveFrames, PhysToVirt, Source};
pub use memmap::{FillPages, LiveMemmap};

use crate::boot_info::{MemKind, MemoryMap};
use crate::mm::addr::{PAGE_SIZE, Pfn, PhysAddr};
use crate::mm::altmap::VmemAltmap;
use crate::mm::arch::MmArch;
use crate::mm::buddy::Buddy;
use crate::mm::error::MmError;
use crate::mm::gather;
use crate::mm::inject::FaultInjector;
use crate::mm::memmap::MemmapAccess;
use crate::mm::page::{Page, PageFlags, Zone};
use crate::mm::pgtable::Features;
use crate::mm::sparse::Sparse;
use crate::mm::table_frames::{Packed, TableFrames};
use crate::mm::teardown::{self, Leftover};
use crate::mm::vmemmap::{Vmemmap, VmemmapArch};
use crate::mm::walk::{self, Translation, WalkFault};

/// What the arch tells the live memory manager.
#[derive(Clone, Copy)]
pub struct LiveConfig {
    /// CPU features the walker may use (PSE, EDAT-1, NX, ...).
    pub features: Features,
    /// Root of the live translation tables that map the vmemmap window.
    pub root: PhysAddr,
    /// The direct map.
    pub phys_to_virt: PhysToVirt,
    /// Makes new and removed translations visible to this CPU.
    pub flush_tlb: fn(),
    /// Fills struct pages with a template (the init pass); an arch without a faster
    /// block move passes [`crate::mm::memmap::fill_pages`].
    pub fill_pages: FillPages,
}

/// Figures of the boot-time set-up, for `mem` and the boot log.
#[derive(Clone, Copy, Debug, Default)]
pub struct BootFigures {
    /// Sections brought up for boot RAM.
    pub sections: u64,
    /// Bytes of RAM the boot bump allocator handed out (memmap leaves and tables).
    pub bump_bytes: u64,
    /// Nanoseconds spent (populate + struct-page init + online).
    pub ns: u64,
}

/// The live memory manager.
pub struct LiveMm<F: VmemmapArch> {
    config: LiveConfig,
    sparse: Sparse<F>,
    memmap: LiveMemmap,
    buddy: Buddy,
    movable: Buddy,
    boot: BootFigures,
    /// Pages the kernel heap holds from `buddy`.
    heap_pages: u64,
    clock: fn() -> u64,
    /// Table pages taken from the buddy since boot (sub-page tables packed).
    tables: TableFrames,
    /// Table pages the boot set-up took (the bump allocator packs tables back to back).
    boot_table_pages: u64,
}

impl<F: VmemmapArch> LiveMm<F> {
    /// Brings up boot RAM: every subsection that holds RAM gets its memmap, populated
    /// through the live tables with frames from the largest usable range; all struct
    /// pages start reserved; usable RAM minus what the set-up consumed is onlined into
    /// the buddy allocator.
    ///
    /// Linux gives boot ("early") sections a whole-section memmap. Ours stops at the 2 MiB
    /// subsections that hold RAM, so a device region carved out of RAM (`memmap=nn!ss`)
    /// or placed next to it can later be added to the same section with its own altmap.
    pub fn boot(config: LiveConfig, map: &MemoryMap, now_ns: fn() -> u64) -> Result<Self, MmError> {
        let t0 = now_ns();
        let arch = F::MM;
        let usable = usable_pfns(map);
        let largest = usable
            .iter()
            .max_by_key(|r| r.end.0 - r.start.0)
            .ok_or(MmError::Empty)?;
        let mut bump = Bump::new(largest.start.0 * PAGE_SIZE, largest.end.0 * PAGE_SIZE);
        let vmemmap = Vmemmap::with_root(config.features, config.root);
        let mut sparse = Sparse::with_vmemmap(vmemmap);
        sparse.set_clock(now_ns);
        let spans = ram_spans(arch, map);
        for span in &spans {
            let mut frames = LiveFrames::new(config.phys_to_virt, Source::Bump(&mut bump));
            sparse.add(&mut frames, span.clone(), None)?;
        }
        (config.flush_tlb)();
        let mut memmap = LiveMemmap::new(arch, config.fill_pages);
        memmap.reserve(sparse.section_count())?;
        memmap.sync(&sparse);
        for span in &spans {
            init_reserved(&mut memmap, arch, span.clone());
        }
        let used = Pfn(bump.start / PAGE_SIZE)..Pfn(bump.next.div_ceil(PAGE_SIZE));
        let mut buddy = Buddy::new();
        for range in &usable {
            for part in subtract(range.clone(), used.clone()) {
                buddy.online(&mut memmap, part)?;
            }
        }
        let boot = BootFigures {
            sections: spans
                .iter()
                .map(|s| (s.end.0 - s.start.0) / arch.pages_per_section())
                .sum(),
            bump_bytes: bump.next - bump.start,
            ns: now_ns().saturating_sub(t0),
        };
        let boot_table_pages = sparse.vmemmap().stats().table_pages();
        let mut mm = LiveMm {
            config,
            sparse,
            memmap,
            buddy,
            movable: Buddy::new(),
            boot,
            heap_pages: 0,
            clock: now_ns,
            tables: TableFrames::new(),
            boot_table_pages,
        };
        mm.tend_heap();
        Ok(mm)
    }

    /// Hot-adds frames `range` (and its memmap) with an optional altmap: Linux's
    /// `__add_pages`. Tables come from the buddy; the TLB is flushed afterwards, before
    /// anything a failed add rolled back goes back to the buddy.
    pub fn add(
        &mut self,
        range: Range<Pfn>,
        altmap: Option<&mut VmemAltmap>,
    ) -> Result<(), MmError> {
        self.tend_heap();
        let sections = crate::mm::sparse::section_span(F::MM, &range);
        self.memmap
            .reserve(self.sparse.section_count() + sections)?;
        let source = Source::Buddy(&mut self.buddy, &mut self.memmap);
        let frames = Packed {
            inner: LiveFrames::new(self.config.phys_to_virt, source),
            tables: &mut self.tables,
        };
        let sparse = &mut self.sparse;
        // A failed add rolls back: what it freed waits for the flush too.
        let (result, _) = gather::run(frames, self.config.flush_tlb, |g| {
            sparse.add(g, range.clone(), altmap)
        });
        if result.is_ok() {
            self.memmap.mark(range);
        }
        result
    }

    /// Removes frames `range` and frees its memmap through `altmap` (the one it was added
    /// with): Linux's `__remove_pages`. The TLB is flushed after the entries are cleared
    /// and before any leaf or table goes back to the buddy ([`gather`]).
    pub fn remove(
        &mut self,
        range: Range<Pfn>,
        altmap: Option<&mut VmemAltmap>,
    ) -> Result<(), MmError> {
        self.tend_heap();
        self.memmap.forget(range.clone());
        let source = Source::Buddy(&mut self.buddy, &mut self.memmap);
        let frames = Packed {
            inner: LiveFrames::new(self.config.phys_to_virt, source),
            tables: &mut self.tables,
        };
        let sparse = &mut self.sparse;
        // Entries cleared, then the flush, then leaves and tables back to the buddy.
        let (result, _) = gather::run(frames, self.config.flush_tlb, |g| {
            sparse.remove(g, range.clone(), altmap)
        });
        match result {
            Ok(()) => self.memmap.prune(range),
            Err(_) => self.memmap.sync(&self.sparse),
        }
        result
    }

    /// Whether [`LiveMm::remove`] of `range` through `altmap` would succeed; changes
    /// nothing.
    pub fn check_remove(
        &mut self,
        range: Range<Pfn>,
        altmap: Option<&mut VmemAltmap>,
    ) -> Result<(), MmError> {
        let source = Source::Buddy(&mut self.buddy, &mut self.memmap);
        let mut frames = LiveFrames::new(self.config.phys_to_virt, source);
        self.sparse.check_remove(&mut frames, range, altmap)
    }

    /// What a remove of `range` through `altmap` left behind, if anything
    /// ([`crate::mm::teardown`]), read from the live tables.
    pub fn teardown_check(
        &self,
        range: Range<Pfn>,
        altmap: Option<&VmemAltmap>,
    ) -> Result<(), Leftover> {
        teardown::check(&self.sparse, &self.direct_map(), range, altmap)
    }

    /// Pages of RAM the vmemmap's tables occupy: what boot took plus what hotplug took
    /// from the buddy (two 2 KiB s390x page tables to a page), not the tables' byte sum.
    pub fn table_pages(&self) -> u64 {
        self.boot_table_pages + self.tables.pages()
    }

    /// Nanoseconds on the clock the memory manager was brought up with (phase timing).
    pub fn now_ns(&self) -> u64 {
        (self.clock)()
    }

    /// The sparse model (sections, the vmemmap walker and its counters).
    pub fn sparse(&self) -> &Sparse<F> {
        &self.sparse
    }

    /// The vmemmap walker, mutable (semantics, tracer).
    pub fn vmemmap_mut(&mut self) -> &mut Vmemmap<F> {
        self.sparse.vmemmap_mut()
    }

    /// The buddy allocator of boot RAM (ZONE_NORMAL): page tables, DMA and every kernel
    /// allocation come from here, because only boot RAM is in the direct map.
    pub fn buddy(&self) -> &Buddy {
        &self.buddy
    }

    /// The buddy allocator of hot-added RAM (ZONE_MOVABLE, as Linux onlines hot-pluggable
    /// memory): never used for page tables, so removing it never strands a table.
    pub fn movable(&self) -> &Buddy {
        &self.movable
    }

    /// The movable allocator with the memmap (onlining and offlining hot-added RAM).
    pub fn movable_and_memmap(&mut self) -> (&mut Buddy, &mut LiveMemmap) {
        (&mut self.movable, &mut self.memmap)
    }

    /// The allocator that owns `pfn` (by the zone in its struct page) with the memmap.
    pub fn buddy_for(&mut self, pfn: Pfn) -> (&mut Buddy, &mut LiveMemmap) {
        let movable = self.memmap.has_page(pfn) && self.memmap.page(pfn).zone() == Zone::Movable;
        if movable {
            (&mut self.movable, &mut self.memmap)
        } else {
            (&mut self.buddy, &mut self.memmap)
        }
    }

    /// The fault injectors: the vmemmap walker's (altmap leaves, RAM leaves, page tables)
    /// and the boot-RAM buddy allocator's (every RAM frame the walker takes).
    pub fn injectors(&mut self) -> (&mut FaultInjector, &mut FaultInjector) {
        (self.sparse.vmemmap_mut().faults(), self.buddy.faults())
    }

    /// Free pages of both allocators.
    pub fn free_pages(&self) -> u64 {
        self.buddy.free_pages() + self.movable.free_pages()
    }

    /// Managed pages of both allocators.
    pub fn managed_pages(&self) -> u64 {
        self.buddy.managed_pages() + self.movable.managed_pages()
    }

    /// The buddy allocator with the memmap it runs through (allocation, online/offline).
    pub fn buddy_and_memmap(&mut self) -> (&mut Buddy, &mut LiveMemmap) {
        (&mut self.buddy, &mut self.memmap)
    }

    /// Struct pages.
    pub fn memmap(&self) -> &LiveMemmap {
        &self.memmap
    }

    /// Boot set-up figures.
    pub fn boot_figures(&self) -> BootFigures {
        self.boot
    }

    /// The memory-model constants.
    pub fn arch(&self) -> &'static MmArch {
        F::MM
    }

    /// Struct pages, mutable (initialisation, verification).
    pub fn memmap_mut(&mut self) -> &mut LiveMemmap {
        &mut self.memmap
    }

    /// Read access to the live tables, for software walks.
    pub fn direct_map(&self) -> DirectMap {
        DirectMap(self.config.phys_to_virt)
    }

    /// The live table root.
    pub fn root(&self) -> PhysAddr {
        self.config.root
    }

    /// The CPU features the walker uses.
    pub fn features(&self) -> Features {
        self.config.features
    }

    /// Translates `va` through the live tables in software.
    pub fn translate(&self, va: u64) -> Result<Translation, WalkFault> {
        walk::translate::<F, _>(&self.direct_map(), self.root(), self.features(), va)
    }

    /// The first frame past the last present section and the address of its struct page:
    /// a vmemmap address nothing maps (the memmap exists only for present sections).
    pub fn vmemmap_hole(&self) -> (Pfn, u64) {
        let next = self.sparse().sections().last().map_or(0, |(nr, _)| nr + 1);
        let pfn = self.arch().section_start(next);
        (pfn, self.arch().pfn_to_page(pfn).0)
    }
}

/// Usable RAM as frame ranges (partial pages at the edges dropped), ascending.
fn usable_pfns(map: &MemoryMap) -> Vec<Range<Pfn>> {
    let mut out: Vec<Range<Pfn>> = map
        .regions()
        .iter()
        .filter(|r| r.kind == MemKind::Usable)
        .map(|r| Pfn(r.start.div_ceil(PAGE_SIZE))..Pfn(r.end / PAGE_SIZE))
        .filter(|r| r.start < r.end)
        .collect();
    out.sort_by_key(|r| r.start);
    out
}

/// Subsection-aligned spans covering every RAM span of the map, merged, ascending.
fn ram_spans(arch: &MmArch, map: &MemoryMap) -> Vec<Range<Pfn>> {
    let per = arch.pages_per_subsection();
    let mut spans: Vec<Range<Pfn>> = map
        .regions()
        .iter()
        .filter(|r| r.kind.is_ram())
        .map(|r| {
            Pfn(r.start / PAGE_SIZE / per * per)
                ..Pfn((r.end.div_ceil(PAGE_SIZE)).div_ceil(per) * per)
        })
        .collect();
    spans.sort_by_key(|r| r.start);
    let mut merged: Vec<Range<Pfn>> = Vec::new();
    for span in spans {
        match merged.last_mut() {
            Some(last) if span.start <= last.end => last.end = last.end.max(span.end),
            _ => merged.push(span),
        }
    }
    merged
}

/// `range` minus `hole`: zero, one or two ranges.
fn subtract(range: Range<Pfn>, hole: Range<Pfn>) -> impl Iterator<Item = Range<Pfn>> {
    let before = range.start..range.end.min(hole.start);
    let after = range.start.max(hole.end)..range.end;
    [before, after].into_iter().filter(|r| r.start < r.end)
}

/// Initialises every struct page of `span` as reserved (onlining clears that).
fn init_reserved(memmap: &mut LiveMemmap, arch: &MmArch, span: Range<Pfn>) {
    crate::mm::memmap::init_with(memmap, arch, span, |section| {
        let mut template = Page::new(Zone::Normal, 0, section);
        template.set(PageFlags::RESERVED);
        template
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot_info::MemRegion;

    fn map(regions: &[(u64, u64, MemKind)]) -> MemoryMap {
        let mut m = MemoryMap::new();
        for &(start, end, kind) in regions {
            m.push(MemRegion { start, end, kind });
        }
        m
    }

    #[test]
    fn subsections_cover_ram_with_holes_and_merge() {
        let m = map(&[
            (0, 0x9f000, MemKind::Usable),
            (0x100000, 0x800000, MemKind::Kernel),
            (0x800000, 0x1f00_0000, MemKind::Usable),
            (0xfee0_0000, 0xfee0_1000, MemKind::Reserved),
        ]);
        let spans = ram_spans(&crate::mm::sim::models::SECTIONS_128M_LEAF_2M, &m);
        assert_eq!(
            spans,
            [Pfn(0)..Pfn(0x1f000)],
            "2 MiB subsections, MMIO ignored"
        );
        let m = map(&[
            (0, 0x1000_0000, MemKind::Usable),
            (0x1800_0000, 0x1830_0000, MemKind::Usable),
        ]);
        let spans = ram_spans(&crate::mm::sim::models::SECTIONS_128M_LEAF_2M, &m);
        assert_eq!(spans, [Pfn(0)..Pfn(0x10000), Pfn(0x18000)..Pfn(0x18400)]);
    }

    #[test]
    fn usable_ranges_shrink_to_whole_pages() {
        let m = map(&[
            (0x585800, 0x2000_0000, MemKind::Usable),
            (0, 0x585800, MemKind::Kernel),
        ]);
        assert_eq!(usable_pfns(&m), [Pfn(0x586)..Pfn(0x20000)]);
    }

    #[test]
    fn subtract_cuts_holes() {
        let cut: Vec<_> = subtract(Pfn(10)..Pfn(100), Pfn(10)..Pfn(20)).collect();
        assert_eq!(cut, [Pfn(20)..Pfn(100)]);
        let cut: Vec<_> = subtract(Pfn(10)..Pfn(100), Pfn(40)..Pfn(50)).collect();
        assert_eq!(cut, [Pfn(10)..Pfn(40), Pfn(50)..Pfn(100)]);
        let cut: Vec<_> = subtract(Pfn(10)..Pfn(100), Pfn(200)..Pfn(300)).collect();
        assert_eq!(cut, [Pfn(10)..Pfn(100)]);
    }
}
