//! Access to struct pages through the memmap, and memmap initialisation.
//!
//! Generic code (the buddy allocator, `init_range`) reaches `Page`s only through
//! [`MemmapAccess`]. On the target the arch crate implements it by pointer arithmetic from
//! the vmemmap base (`pfn_to_page`); on the host [`super::sim::SimMemmap`] backs it with
//! ordinary heap memory. Either way there is no `unsafe` in the generic code.

use super::addr::Pfn;
use super::arch::MmArch;
use super::page::{Page, Zone};
use super::sparse::chunks;

/// Struct pages by frame number.
pub trait MemmapAccess {
    /// Whether `pfn` has a struct page (its subsection's memmap is populated).
    fn has_page(&self, pfn: Pfn) -> bool;
    /// The struct page of `pfn` (which must satisfy [`MemmapAccess::has_page`]).
    fn page(&self, pfn: Pfn) -> &Page;
    /// The struct page of `pfn`, mutable.
    fn page_mut(&mut self, pfn: Pfn) -> &mut Page;
    /// The `count` struct pages from `first`, all within one section.
    fn pages_mut(&mut self, first: Pfn, count: usize) -> &mut [Page];
}

/// `memmap_init_range`: initialises the struct pages of `[first, first + nr_pages)` with
/// zone, node and section, one section slice at a time (a `fill` per slice).
pub fn init_range<A: MemmapAccess>(
    memmap: &mut A,
    arch: &MmArch,
    first: Pfn,
    nr_pages: u64,
    zone: Zone,
    node: u8,
) {
    if nr_pages == 0 {
        return;
    }
    for chunk in chunks(arch, first, first.add(nr_pages)) {
        let template = Page::new(zone, node, chunk.section);
        fill_pages(
            memmap.pages_mut(chunk.first, chunk.nr_pages as usize),
            template,
        );
    }
}

/// Sets every page of `pages` to `template`: one store of the template, then doubling
/// copies of what is already written, so the work is a handful of `memmove`s (the
/// platform's fastest bulk copy) rather than one 64-byte store sequence per page.
pub fn fill_pages(pages: &mut [Page], template: Page) {
    let Some(first) = pages.first_mut() else {
        return;
    };
    *first = template;
    let mut filled = 1;
    while filled < pages.len() {
        let n = filled.min(pages.len() - filled);
        pages.copy_within(0..n, filled);
        filled += n;
    }
}

#[cfg(test)]
mod fill_tests {
    use super::*;

    #[test]
    fn fill_pages_covers_every_length() {
        for len in [0usize, 1, 2, 3, 7, 8, 9, 512, 1000] {
            let mut pages = alloc::vec![Page::ZEROED; len];
            let template = Page::new(Zone::Device, 3, 17);
            fill_pages(&mut pages, template);
            assert!(pages.iter().all(|p| *p == template), "len {len}");
        }
    }
}
