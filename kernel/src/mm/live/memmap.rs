//! The live memmap: struct pages reached through their vmemmap virtual address
//! (`pfn_to_page(pfn) = vmemmap_base + 64·pfn`), the only place generic code dereferences
//! the vmemmap. `has_page` consults a mirror of the sparse model's present subsections,
//! so no pointer is formed (and no slice handed out) for a frame whose memmap is not
//! mapped: a slice is checked over every subsection it touches, not only its two ends.
//! Bulk initialisation goes through the arch's [`FillPages`] hook. The mirror's room is
//! reserved before an add ([`LiveMemmap::reserve`]), so [`LiveMemmap::sync`] never
//! allocates.

use alloc::collections::TryReserveError;
use alloc::vec::Vec;
use core::cell::Cell;

use crate::mm::addr::Pfn;
use crate::mm::arch::MmArch;
use crate::mm::memmap::MemmapAccess;
use crate::mm::page::Page;
use crate::mm::sparse::{Chunk, Sparse, subsection_mask};
use crate::mm::vmemmap::VmemmapArch;

/// Writes a template into every struct page of a slice: the arch's fastest streaming
/// store (e.g. s390x MVCL), or [`crate::mm::memmap::fill_pages`].
pub type FillPages = fn(&mut [Page], &Page);

/// Struct pages in the live vmemmap.
pub struct LiveMemmap {
    arch: &'static MmArch,
    /// (section, present subsections), ascending by section.
    present: Vec<(u64, u128)>,
    /// The last section looked up and its present mask: walks over a range ask about the
    /// same section thousands of times in a row.
    last: Cell<Option<(u64, u128)>>,
    fill: FillPages,
}

impl LiveMemmap {
    /// A memmap with no section present, filled in bulk by `fill`.
    pub fn new(arch: &'static MmArch, fill: FillPages) -> Self {
        LiveMemmap {
            arch,
            present: Vec::new(),
            last: Cell::new(None),
            fill,
        }
    }

    /// Makes room for `sections` sections, so the next [`LiveMemmap::sync`] does not
    /// allocate.
    pub fn reserve(&mut self, sections: usize) -> Result<(), TryReserveError> {
        self.present
            .try_reserve(sections.saturating_sub(self.present.len()))
    }

    /// Copies the present subsections after `sparse` changed (add or remove). Sections
    /// beyond the room reserved are dropped from the mirror (their struct pages then read
    /// as absent) with an error line: callers reserve first.
    pub fn sync<F: VmemmapArch>(&mut self, sparse: &Sparse<F>) {
        self.present.clear();
        let room = self.present.capacity();
        for (nr, section) in sparse.sections() {
            if self.present.len() == room {
                log::error!("memmap: mirror has no room for section {nr}");
                break;
            }
            self.present.push((nr, section.present));
        }
        self.last.set(None);
    }

    /// Marks `range`'s subsections present after an add (O(sections of the range): the
    /// room was reserved, and an ascending add appends).
    pub fn mark(&mut self, range: core::ops::Range<Pfn>) {
        for chunk in crate::mm::sparse::chunks(self.arch, range.start, range.end) {
            let mask = subsection_mask(self.arch, &chunk);
            match self
                .present
                .binary_search_by_key(&chunk.section, |(nr, _)| *nr)
            {
                Ok(i) => self.present[i].1 |= mask,
                Err(_) if self.present.len() == self.present.capacity() => {
                    log::error!("memmap: mirror has no room for section {}", chunk.section);
                }
                Err(i) => self.present.insert(i, (chunk.section, mask)),
            }
        }
        self.last.set(None);
    }

    /// Drops the sections of `range` left with no present subsection after a remove
    /// (whose bits [`LiveMemmap::forget`] cleared).
    pub fn prune(&mut self, range: core::ops::Range<Pfn>) {
        for chunk in crate::mm::sparse::chunks(self.arch, range.start, range.end).rev() {
            if let Ok(i) = self
                .present
                .binary_search_by_key(&chunk.section, |(nr, _)| *nr)
                && self.present[i].1 == 0
            {
                self.present.remove(i);
            }
        }
        self.last.set(None);
    }

    fn mask_of(&self, section: u64) -> u128 {
        self.present
            .binary_search_by_key(&section, |(nr, _)| *nr)
            .map_or(0, |i| self.present[i].1)
    }

    /// Stops treating `range`'s subsections as present, before their memmap is freed, so
    /// nothing (e.g. a buddy merge looking at a neighbour) touches it during the removal.
    pub fn forget(&mut self, range: core::ops::Range<Pfn>) {
        for chunk in crate::mm::sparse::chunks(self.arch, range.start, range.end) {
            if let Ok(i) = self
                .present
                .binary_search_by_key(&chunk.section, |(nr, _)| *nr)
            {
                self.present[i].1 &= !subsection_mask(self.arch, &chunk);
            }
            self.last.set(None);
        }
    }

    fn address(&self, pfn: Pfn) -> *mut Page {
        self.arch.pfn_to_page(pfn).0 as *mut Page
    }

    fn check(&self, pfn: Pfn) {
        assert!(
            self.has_page(pfn),
            "struct page of pfn {:#x} is not mapped",
            pfn.0
        );
    }

    /// Panics unless the `count` struct pages from `first` (count > 0) are all mapped and
    /// in one section: every subsection they touch is checked.
    fn check_slice(&self, first: Pfn, count: usize) {
        let last = first.add(count as u64 - 1);
        assert_eq!(
            self.arch.section_nr(first),
            self.arch.section_nr(last),
            "struct-page slice spans sections"
        );
        if let Some(pfn) = self.first_missing(first..last.add(1)) {
            panic!(
                "struct pages of pfns {:#x}-{:#x} are not all mapped (pfn {:#x} is not)",
                first.0,
                last.0 + 1,
                pfn.0
            );
        }
    }
}

impl MemmapAccess for LiveMemmap {
    fn arch(&self) -> &'static MmArch {
        self.arch
    }

    fn has_page(&self, pfn: Pfn) -> bool {
        let section = self.arch.section_nr(pfn);
        let mask = match self.last.get() {
            Some((cached, mask)) if cached == section => mask,
            _ => {
                let mask = self.mask_of(section);
                self.last.set(Some((section, mask)));
                mask
            }
        };
        let chunk = Chunk {
            section,
            first: pfn,
            nr_pages: 1,
        };
        mask & subsection_mask(self.arch, &chunk) != 0
    }

    fn page(&self, pfn: Pfn) -> &Page {
        self.check(pfn);
        // SAFETY: the frame's subsection is present, so its struct page is mapped in the
        // live tables, 64-byte aligned, and only reached through this memmap.
        unsafe { &*self.address(pfn) }
    }

    fn page_mut(&mut self, pfn: Pfn) -> &mut Page {
        self.check(pfn);
        // SAFETY: as in `page`; `&mut self` makes this the only live reference.
        unsafe { &mut *self.address(pfn) }
    }

    fn pages(&self, first: Pfn, count: usize) -> &[Page] {
        if count == 0 {
            return &[];
        }
        self.check_slice(first, count);
        // SAFETY: every subsection the slice touches is present (checked above), so its
        // struct pages are mapped, contiguous in the vmemmap and 64-byte aligned; the
        // shared borrow of `self` keeps writers away for the slice's lifetime.
        unsafe { core::slice::from_raw_parts(self.address(first), count) }
    }

    fn pages_mut(&mut self, first: Pfn, count: usize) -> &mut [Page] {
        if count == 0 {
            return &mut [];
        }
        self.check_slice(first, count);
        // SAFETY: as in `pages`; `&mut self` makes the slice the only reference.
        unsafe { core::slice::from_raw_parts_mut(self.address(first), count) }
    }

    fn fill(&mut self, first: Pfn, count: usize, template: &Page) {
        let fill = self.fill;
        fill(self.pages_mut(first, count), template);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Section 0 with subsections 0 and 2 present and a hole at 1.
    fn holed() -> LiveMemmap {
        let mut m = LiveMemmap::new(
            &crate::mm::sim::models::SECTIONS_128M_LEAF_2M,
            crate::mm::memmap::fill_pages,
        );
        m.present.insert(0, (0, 0b101));
        m
    }

    #[test]
    #[should_panic(expected = "not all mapped")]
    fn a_slice_over_a_hole_is_refused_though_both_ends_are_mapped() {
        let mut m = holed();
        assert!(m.has_page(Pfn(0)) && m.has_page(Pfn(1535)) && !m.has_page(Pfn(600)));
        // Before the check looked at the two ends only, this formed a slice over the
        // unmapped struct pages of subsection 1.
        let _ = m.pages_mut(Pfn(0), 1536);
    }

    #[test]
    #[should_panic(expected = "not all mapped")]
    fn a_slice_crossing_into_a_hole_by_one_page_is_refused() {
        let mut m = holed();
        let _ = m.pages_mut(Pfn(511), 2);
    }
}
