//! The sparse memory model: sections with per-section subsection bitmaps, and the
//! `add` / `remove` entry points that activate subsections and populate or free their
//! memmap through the [`Vmemmap`] walker (Linux's `__add_pages` / `__remove_pages`).
//!
//! Rules (linux-mm.md §4): spans must be subsection-aligned; re-adding a present
//! subsection is `EEXIST`; an empty mask is `EINVAL`; a section has memmap while any of
//! its subsections is present; removing subsections that are not all present fails and
//! changes nothing.
//!
//! Unlike Linux, which leaks the sections added before a failing one (§6.3 item 11),
//! a failed `add` undoes the whole add, and `remove` validates everything before it
//! changes anything. The bookkeeping is a sorted vector of present sections whose room
//! is reserved (fallibly) before an add changes anything; `remove` never allocates.

mod subsection;

use alloc::vec::Vec;
use core::ops::Range;

pub use subsection::{Chunk, check_span, chunks, section_span, subsection_mask};

use super::addr::Pfn;
use super::altmap::VmemAltmap;
use super::arch::MmArch;
use super::error::MmError;
use super::pgtable::Features;
use super::phys::{FrameSource, PhysMem};
use super::vmemmap::{Vmemmap, VmemmapArch};

/// One present section.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Section {
    /// Present subsections (bit i = subsection i).
    pub present: u128,
}

impl Section {
    /// Whether the section has a memmap (any subsection present).
    pub fn has_memmap(&self) -> bool {
        self.present != 0
    }
}

/// Where the last [`Sparse::add`] spent its time (zero unless a clock is set).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AddTimes {
    /// Span checks and subsection-bitmap activation, in nanoseconds.
    pub activate_ns: u64,
    /// `vmemmap_populate` (tables and leaves), in nanoseconds.
    pub populate_ns: u64,
}

/// Sections plus the vmemmap that backs their memmap.
pub struct Sparse<F: VmemmapArch> {
    arch: &'static MmArch,
    /// Present sections, ascending by number.
    sections: Vec<(u64, Section)>,
    vmemmap: Vmemmap<F>,
    clock: Option<fn() -> u64>,
    last_add: AddTimes,
}

impl<F: VmemmapArch> Sparse<F> {
    /// An empty model with a fresh vmemmap root.
    pub fn new<M: PhysMem + FrameSource>(features: Features, mem: &mut M) -> Result<Self, MmError> {
        Ok(Self::with_vmemmap(Vmemmap::new(features, mem)?))
    }

    /// An empty model over an existing vmemmap walker.
    pub fn with_vmemmap(vmemmap: Vmemmap<F>) -> Self {
        Sparse {
            arch: F::MM,
            sections: Vec::new(),
            vmemmap,
            clock: None,
            last_add: AddTimes::default(),
        }
    }

    /// The memory-model constants.
    pub fn arch(&self) -> &'static MmArch {
        self.arch
    }

    /// Times every later [`Sparse::add`] by phase with `clock` (nanoseconds).
    pub fn set_clock(&mut self, clock: fn() -> u64) {
        self.clock = Some(clock);
    }

    /// The phase times of the last [`Sparse::add`].
    pub fn last_add_times(&self) -> AddTimes {
        self.last_add
    }

    fn now(&self) -> u64 {
        self.clock.map_or(0, |clock| clock())
    }

    /// The vmemmap walker (counters, root).
    pub fn vmemmap(&self) -> &Vmemmap<F> {
        &self.vmemmap
    }

    /// The vmemmap walker, mutable (fault injection).
    pub fn vmemmap_mut(&mut self) -> &mut Vmemmap<F> {
        &mut self.vmemmap
    }

    /// Gives the walker back (e.g. to release its root).
    pub fn into_vmemmap(self) -> Vmemmap<F> {
        self.vmemmap
    }

    /// A present section.
    pub fn section(&self, nr: u64) -> Option<&Section> {
        let index = self.sections.binary_search_by_key(&nr, |(n, _)| *n).ok()?;
        Some(&self.sections[index].1)
    }

    /// All present sections, ascending.
    pub fn sections(&self) -> impl DoubleEndedIterator<Item = (u64, &Section)> {
        self.sections.iter().map(|(nr, s)| (*nr, s))
    }

    /// Number of present sections.
    pub fn section_count(&self) -> usize {
        self.sections.len()
    }

    /// `pfn_valid`: the frame's subsection is present (so its struct page is mapped).
    pub fn pfn_valid(&self, pfn: Pfn) -> bool {
        let chunk = Chunk {
            section: self.arch.section_nr(pfn),
            first: pfn,
            nr_pages: 1,
        };
        self.section(chunk.section)
            .is_some_and(|s| s.present & subsection_mask(self.arch, &chunk) != 0)
    }

    /// 4 KiB pages of the huge vmemmap leaf that holds the struct page at `leaf_va` which
    /// present subsections use (the leaf stays while this is not 0).
    pub fn huge_leaf_users(&self, leaf_va: crate::mm::addr::VirtAddr) -> u64 {
        let span = self.arch.vmemmap_leaf_bytes();
        let start = crate::mm::addr::align_down(leaf_va.0, span);
        let first = self.arch.page_to_pfn(crate::mm::addr::VirtAddr(start));
        let end = self
            .arch
            .page_to_pfn(crate::mm::addr::VirtAddr(start + span));
        let frames = present_frames(self.arch, &self.sections, first..end);
        (frames * crate::mm::page::STRUCT_PAGE_SIZE).div_ceil(crate::mm::addr::PAGE_SIZE)
    }

    /// Frames in present subsections.
    pub fn present_pages(&self) -> u64 {
        self.sections
            .iter()
            .map(|(_, s)| u64::from(s.present.count_ones()))
            .sum::<u64>()
            * self.arch.pages_per_subsection()
    }

    /// Hot-adds frames `range`: activates their subsections and populates their memmap,
    /// section by section. `altmap`, if any, must start at `range.start`. On failure the
    /// whole add is undone and the error returned.
    pub fn add<M: PhysMem + FrameSource>(
        &mut self,
        mem: &mut M,
        range: Range<Pfn>,
        mut altmap: Option<&mut VmemAltmap>,
    ) -> Result<(), MmError> {
        let mut times = AddTimes::default();
        let t_checks = self.now();
        check_span(self.arch, range.start, range.end)?;
        if let Some(altmap) = altmap.as_deref() {
            check_altmap(altmap, &range)?;
        }
        let (mut nr_chunks, mut new_sections) = (0, 0);
        for chunk in chunks(self.arch, range.start, range.end) {
            let present = self.section(chunk.section).map(|s| s.present);
            let overlap = present.unwrap_or(0) & subsection_mask(self.arch, &chunk);
            if overlap != 0 {
                return Err(MmError::SubsectionExists {
                    section: chunk.section,
                    overlap,
                });
            }
            nr_chunks += 1;
            new_sections += usize::from(present.is_none());
        }
        // Room for everything the add records, reserved before anything changes.
        self.sections.try_reserve(new_sections)?;
        let mut added: Vec<Chunk> = Vec::new();
        added.try_reserve_exact(nr_chunks)?;
        times.activate_ns += self.now().saturating_sub(t_checks);
        for chunk in chunks(self.arch, range.start, range.end) {
            let t0 = self.now();
            self.activate(&chunk);
            let t1 = self.now();
            let (arch, sections) = (self.arch, &self.sections);
            let in_use = |r: Range<Pfn>| present_frames(arch, sections, r);
            let populated = self.vmemmap.populate_pfns(
                mem,
                chunk.first,
                chunk.nr_pages,
                altmap.as_deref_mut(),
                &in_use,
            );
            let t2 = self.now();
            times.activate_ns += t1.saturating_sub(t0);
            times.populate_ns += t2.saturating_sub(t1);
            self.last_add = times;
            if let Err(error) = populated {
                self.deactivate(&chunk);
                for done in added.iter().rev() {
                    let (arch, sections) = (self.arch, &self.sections);
                    let in_use = |r: Range<Pfn>| present_frames(arch, sections, r);
                    if let Err(undo_error) = self.vmemmap.free_pfns(
                        mem,
                        done.first,
                        done.nr_pages,
                        altmap.as_deref_mut(),
                        &in_use,
                    ) {
                        log::error!(
                            "sparse: undoing section {} failed: {undo_error}",
                            done.section
                        );
                    }
                    self.deactivate(done);
                }
                log::warn!(
                    "sparse: add {}-{} failed: {error}; undone",
                    range.start,
                    range.end
                );
                return Err(error);
            }
            added.push(chunk);
        }
        log::debug!(
            "sparse: added pfns {}-{} ({} sections)",
            range.start,
            range.end,
            added.len()
        );
        Ok(())
    }

    /// Hot-removes frames `range`: frees their memmap and clears their subsections.
    /// Every subsection must be present and every altmap-backed leaf must belong to
    /// `altmap`; otherwise nothing changes.
    pub fn remove<M: PhysMem + FrameSource>(
        &mut self,
        mem: &mut M,
        range: Range<Pfn>,
        mut altmap: Option<&mut VmemAltmap>,
    ) -> Result<(), MmError> {
        self.check_remove(mem, range.clone(), altmap.as_deref_mut())?;
        for chunk in chunks(self.arch, range.start, range.end).rev() {
            let (arch, sections) = (self.arch, &self.sections);
            let in_use = |r: Range<Pfn>| present_frames(arch, sections, r);
            self.vmemmap.free_pfns(
                mem,
                chunk.first,
                chunk.nr_pages,
                altmap.as_deref_mut(),
                &in_use,
            )?;
            self.deactivate(&chunk);
        }
        log::debug!("sparse: removed pfns {}-{}", range.start, range.end);
        Ok(())
    }

    /// Whether [`Sparse::remove`] of `range` through `altmap` would succeed; changes
    /// nothing.
    pub fn check_remove<M: PhysMem + FrameSource>(
        &mut self,
        mem: &mut M,
        range: Range<Pfn>,
        mut altmap: Option<&mut VmemAltmap>,
    ) -> Result<(), MmError> {
        check_span(self.arch, range.start, range.end)?;
        for chunk in chunks(self.arch, range.start, range.end) {
            let present = self.section(chunk.section).map_or(0, |s| s.present);
            let missing = subsection_mask(self.arch, &chunk) & !present;
            if missing != 0 {
                log::warn!(
                    "sparse: section {} already deactivated ({missing:#x})",
                    chunk.section
                );
                return Err(MmError::SubsectionNotPresent {
                    section: chunk.section,
                    missing,
                });
            }
        }
        for chunk in chunks(self.arch, range.start, range.end) {
            let (start, end) = self.vmemmap.memmap_range(chunk.first, chunk.nr_pages);
            let (arch, sections) = (self.arch, &self.sections);
            let in_use = |r: Range<Pfn>| present_frames(arch, sections, r);
            self.vmemmap
                .check_free(mem, start, end, altmap.as_deref_mut(), &in_use)?;
        }
        Ok(())
    }

    /// Marks the chunk's subsections present. A new section takes room reserved by `add`
    /// (so this never allocates).
    fn activate(&mut self, chunk: &Chunk) {
        let mask = subsection_mask(self.arch, chunk);
        match self
            .sections
            .binary_search_by_key(&chunk.section, |(n, _)| *n)
        {
            Ok(i) => self.sections[i].1.present |= mask,
            Err(i) => {
                debug_assert!(self.sections.len() < self.sections.capacity());
                self.sections
                    .insert(i, (chunk.section, Section { present: mask }));
            }
        }
    }

    fn deactivate(&mut self, chunk: &Chunk) {
        let mask = subsection_mask(self.arch, chunk);
        if let Ok(i) = self
            .sections
            .binary_search_by_key(&chunk.section, |(n, _)| *n)
        {
            self.sections[i].1.present &= !mask;
            if !self.sections[i].1.has_memmap() {
                self.sections.remove(i);
            }
        }
    }
}

/// Frames of `range` in present subsections (a subsection counts whole when any of its
/// frames is in the range): the walker's [`super::vmemmap::InUse`].
fn present_frames(arch: &MmArch, sections: &[(u64, Section)], range: Range<Pfn>) -> u64 {
    if range.start >= range.end {
        return 0;
    }
    chunks(arch, range.start, range.end)
        .map(|chunk| {
            let present = sections
                .binary_search_by_key(&chunk.section, |(nr, _)| *nr)
                .map_or(0, |i| sections[i].1.present);
            u64::from((present & subsection_mask(arch, &chunk)).count_ones())
        })
        .sum::<u64>()
        * arch.pages_per_subsection()
}

/// `__add_pages`' altmap checks: it starts at the range and fits inside it.
fn check_altmap(altmap: &VmemAltmap, range: &Range<Pfn>) -> Result<(), MmError> {
    if altmap.base_pfn != range.start.0 {
        return Err(MmError::AltmapInvalid(
            "base_pfn is not the start of the range",
        ));
    }
    if altmap.offset() > range.end.0 - range.start.0 {
        return Err(MmError::AltmapInvalid("reserve + free exceed the range"));
    }
    Ok(())
}
