//! Access to struct pages through the memmap, and memmap initialisation.
//!
//! Generic code (the buddy allocator, the init pass) reaches `Page`s only through
//! [`MemmapAccess`]. On the target the arch crate implements it by pointer arithmetic from
//! the vmemmap base (`pfn_to_page`); on the host [`super::sim::SimMemmap`] backs it with
//! ordinary heap memory. Either way there is no `unsafe` in the generic code.
//!
//! Initialisation is one streaming write per section slice: every struct page of a
//! section gets the same 64 bytes (zone, node, section and state in `flags`, the rest
//! zero or "no link"), so the whole memmap of a range is written once, front to back,
//! through [`MemmapAccess::fill`] — which an arch may run on its fastest block-move
//! instruction. Pages bound for the buddy allocator get their online state in the same
//! pass ([`init_online`]), so onlining them afterwards touches only block heads.

use core::ops::Range;

use super::addr::Pfn;
use super::arch::MmArch;
use super::page::{Page, PageFlags, Zone};
use super::sparse::{Chunk, chunks};

/// Struct pages by frame number.
pub trait MemmapAccess {
    /// The memory-model constants (section and subsection sizes).
    fn arch(&self) -> &'static MmArch;
    /// Whether `pfn` has a struct page (its subsection's memmap is populated).
    fn has_page(&self, pfn: Pfn) -> bool;
    /// The struct page of `pfn` (which must satisfy [`MemmapAccess::has_page`]).
    fn page(&self, pfn: Pfn) -> &Page;
    /// The struct page of `pfn`, mutable.
    fn page_mut(&mut self, pfn: Pfn) -> &mut Page;
    /// The `count` struct pages from `first`, all within one section and all present.
    fn pages(&self, first: Pfn, count: usize) -> &[Page];
    /// The `count` struct pages from `first`, all within one section and all present,
    /// mutable.
    fn pages_mut(&mut self, first: Pfn, count: usize) -> &mut [Page];

    /// The first frame of `range` without a struct page, checked once per subsection.
    fn first_missing(&self, range: Range<Pfn>) -> Option<Pfn> {
        let per = self.arch().pages_per_subsection();
        let mut pfn = range.start.0;
        while pfn < range.end.0 {
            if !self.has_page(Pfn(pfn)) {
                return Some(Pfn(pfn));
            }
            pfn = (pfn / per + 1) * per;
        }
        None
    }

    /// Writes `template` into the `count` struct pages from `first` (one section, all
    /// present). An implementation may use the platform's fastest bulk store.
    fn fill(&mut self, first: Pfn, count: usize, template: &Page) {
        fill_pages(self.pages_mut(first, count), template);
    }
}

/// The struct pages of a range that [`init_online`] has just written as online, free,
/// unlinked pages: the proof [`super::buddy::Buddy::online_initialised`] asks for, so it
/// can hand the range over block by block without visiting every page again.
#[derive(Debug, PartialEq, Eq)]
#[must_use = "hand the pages to a buddy allocator"]
pub struct FreshPages {
    range: Range<Pfn>,
}

impl FreshPages {
    /// The frames whose struct pages were initialised.
    pub fn range(&self) -> Range<Pfn> {
        self.range.clone()
    }
}

/// `memmap_init_range`: initialises the struct pages of `[first, first + nr_pages)` with
/// zone, node and section, one section slice at a time.
pub fn init_range<A: MemmapAccess>(
    memmap: &mut A,
    arch: &MmArch,
    first: Pfn,
    nr_pages: u64,
    zone: Zone,
    node: u8,
) {
    init_with(memmap, arch, first..first.add(nr_pages), |section| {
        Page::new(zone, node, section)
    });
}

/// Initialises the struct pages of `range` as pages about to be onlined (Linux's
/// `memmap_init_range` followed by the per-page part of `online_pages`, folded into one
/// write): zone, node and section set, `ONLINE`, refcount 0, unlinked. The pages must not
/// be in any buddy allocator (their memmap was populated for this add).
pub fn init_online<A: MemmapAccess>(
    memmap: &mut A,
    arch: &MmArch,
    range: Range<Pfn>,
    zone: Zone,
    node: u8,
) -> FreshPages {
    init_with(memmap, arch, range.clone(), |section| {
        let mut page = Page::new(zone, node, section);
        page.set(PageFlags::ONLINE);
        page
    });
    FreshPages { range }
}

/// Writes `template(section)` into every struct page of `range`, one section slice at a
/// time, front to back.
pub fn init_with<A: MemmapAccess>(
    memmap: &mut A,
    arch: &MmArch,
    range: Range<Pfn>,
    template: impl Fn(u64) -> Page,
) {
    if range.start >= range.end {
        return;
    }
    for Chunk {
        section,
        first,
        nr_pages,
    } in chunks(arch, range.start, range.end)
    {
        memmap.fill(first, nr_pages as usize, &template(section));
    }
}

/// Sets every page of `pages` to `template` ([`Page::fill`]: stores only, front to back):
/// the generic [`crate::mm::live::FillPages`] hook.
pub fn fill_pages(pages: &mut [Page], template: &Page) {
    Page::fill(pages, template);
}

#[cfg(test)]
mod fill_tests {
    use super::*;

    #[test]
    fn fill_pages_covers_every_length() {
        for len in [0usize, 1, 2, 3, 7, 8, 9, 512, 1000] {
            let mut pages = alloc::vec![Page::ZEROED; len];
            let template = Page::new(Zone::Device, 3, 17);
            fill_pages(&mut pages, &template);
            assert!(pages.iter().all(|p| *p == template), "len {len}");
        }
    }
}
