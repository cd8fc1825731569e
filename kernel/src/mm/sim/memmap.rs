//! `SimMemmap`: struct pages on the host heap, one boxed slice per section, present at
//! subsection granularity (as `pfn_valid`).

use std::collections::HashMap;
use std::ops::Range;

use crate::mm::addr::Pfn;
use crate::mm::arch::MmArch;
use crate::mm::memmap::MemmapAccess;
use crate::mm::page::Page;
use crate::mm::sparse::{chunks, subsection_mask};

/// Host memmap.
pub struct SimMemmap {
    arch: &'static MmArch,
    sections: HashMap<u64, (u128, Box<[Page]>)>,
}

impl SimMemmap {
    /// No struct pages.
    pub fn new(arch: &'static MmArch) -> SimMemmap {
        SimMemmap {
            arch,
            sections: HashMap::new(),
        }
    }

    /// Makes the struct pages of `range` (subsection-aligned) exist, zeroed.
    pub fn add(&mut self, range: Range<Pfn>) {
        for chunk in chunks(self.arch, range.start, range.end) {
            let per_section = self.arch.pages_per_section() as usize;
            let entry = self
                .sections
                .entry(chunk.section)
                .or_insert_with(|| (0, vec![Page::ZEROED; per_section].into_boxed_slice()));
            entry.0 |= subsection_mask(self.arch, &chunk);
        }
    }

    /// Drops the struct pages of `range`.
    pub fn remove(&mut self, range: Range<Pfn>) {
        for chunk in chunks(self.arch, range.start, range.end) {
            if let Some(entry) = self.sections.get_mut(&chunk.section) {
                entry.0 &= !subsection_mask(self.arch, &chunk);
                if entry.0 == 0 {
                    self.sections.remove(&chunk.section);
                }
            }
        }
    }

    /// Panics unless `count` pages from `first` are present and in one section, as the
    /// live memmap requires.
    fn check_slice(&self, first: Pfn, count: usize) {
        let end = first.add(count as u64);
        assert_eq!(self.first_missing(first..end), None, "slice not present");
        assert!(
            count == 0 || self.arch.section_nr(first) == self.arch.section_nr(Pfn(end.0 - 1)),
            "slice spans sections"
        );
    }

    fn locate(&self, pfn: Pfn) -> (u64, usize) {
        (
            self.arch.section_nr(pfn),
            (pfn.0 % self.arch.pages_per_section()) as usize,
        )
    }
}

impl MemmapAccess for SimMemmap {
    fn arch(&self) -> &'static MmArch {
        self.arch
    }

    fn has_page(&self, pfn: Pfn) -> bool {
        let (section, index) = self.locate(pfn);
        let subsection = index as u64 / self.arch.pages_per_subsection();
        self.sections
            .get(&section)
            .is_some_and(|(present, _)| present & (1 << subsection) != 0)
    }

    fn page(&self, pfn: Pfn) -> &Page {
        let (section, index) = self.locate(pfn);
        &self.sections[&section].1[index]
    }

    fn page_mut(&mut self, pfn: Pfn) -> &mut Page {
        let (section, index) = self.locate(pfn);
        &mut self.sections.get_mut(&section).expect("no struct page").1[index]
    }

    fn pages(&self, first: Pfn, count: usize) -> &[Page] {
        self.check_slice(first, count);
        let (section, index) = self.locate(first);
        &self.sections[&section].1[index..index + count]
    }

    fn pages_mut(&mut self, first: Pfn, count: usize) -> &mut [Page] {
        self.check_slice(first, count);
        let (section, index) = self.locate(first);
        let chunk = crate::mm::sparse::Chunk {
            section,
            first,
            nr_pages: count as u64,
        };
        let wanted = subsection_mask(self.arch, &chunk);
        let entry = self.sections.get_mut(&section).expect("no struct page");
        // As the live memmap: every subsection of the range present, not only its ends.
        assert!(
            entry.0 & wanted == wanted,
            "struct pages of pfns {:#x}+{count} are not all present",
            first.0
        );
        &mut entry.1[index..index + count]
    }
}
