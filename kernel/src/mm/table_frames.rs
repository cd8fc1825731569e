//! Page-table frames as the kernel really takes them: tables smaller than a page (s390x's
//! 2 KiB page tables) are packed two to a 4 KiB page, as Linux's `page_table_alloc` did
//! up to v6.6 (arch/s390/mm/pgalloc.c, the `pt_frag_refcount` halves); the page goes back
//! to its allocator when both halves are free. Every page held for tables is counted,
//! so the records say what the tables cost in RAM, not the sum of their sizes.
//!
//! (Linux v6.7, d08d4e7cd6bf "s390/mm: use full 4KB page for 2KB PTE", gave each 2 KiB
//! table a page of its own; packing keeps the older, denser layout.)

use alloc::vec::Vec;

use super::addr::{PAGE_SIZE, PhysAddr};
use super::phys::{FramePurpose, FrameSource, PhysMem};

/// The halves of partly used table pages, and the count of pages held for tables.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableFrames {
    /// (page address, used halves: bit 0 low, bit 1 high) for pages holding sub-page
    /// tables, ascending by address; grown fallibly (no room: the table is refused).
    halves: Vec<(u64, u8)>,
    /// Pages taken from the allocator for tables and not given back.
    pages: u64,
}

impl TableFrames {
    /// Nothing held.
    pub const fn new() -> Self {
        TableFrames {
            halves: Vec::new(),
            pages: 0,
        }
    }

    /// Pages held for tables.
    pub fn pages(&self) -> u64 {
        self.pages
    }

    /// Pages holding one sub-page table with the other half free.
    pub fn half_free(&self) -> usize {
        self.halves.iter().filter(|(_, m)| *m != 0b11).count()
    }

    /// A table of `size` bytes: a free half of a partly used page, else a new page, for
    /// tables of half a page; whole pages from `inner` otherwise.
    pub fn alloc<M: FrameSource>(
        &mut self,
        inner: &mut M,
        size: u64,
        align: u64,
    ) -> Option<PhysAddr> {
        if size != PAGE_SIZE / 2 {
            let addr = inner.alloc_frames(size, align, FramePurpose::PageTable)?;
            self.pages += size.div_ceil(PAGE_SIZE);
            return Some(addr);
        }
        if let Some((page, mask)) = self.halves.iter_mut().find(|(_, m)| *m != 0b11) {
            let half = if *mask & 1 == 0 { 0 } else { 1 };
            *mask |= 1 << half;
            return Some(PhysAddr(*page + half * size));
        }
        // Room for the new page's entry first: a refused heap allocation refuses the table.
        self.halves.try_reserve(1).ok()?;
        let page = inner.alloc_frames(PAGE_SIZE, PAGE_SIZE, FramePurpose::PageTable)?;
        let at = self.halves.partition_point(|(p, _)| *p < page.0);
        self.halves.insert(at, (page.0, 1));
        self.pages += 1;
        Some(page)
    }

    /// Gives back a table from [`TableFrames::alloc`] of the same size; a page goes back
    /// to `inner` once nothing of it is used.
    pub fn free<M: FrameSource>(&mut self, inner: &mut M, addr: PhysAddr, size: u64) {
        if size != PAGE_SIZE / 2 {
            inner.free_frames(addr, size, FramePurpose::PageTable);
            self.pages -= size.div_ceil(PAGE_SIZE);
            return;
        }
        let page = addr.0 & !(PAGE_SIZE - 1);
        let half = (addr.0 - page) / size;
        let found = self.halves.binary_search_by_key(&page, |(p, _)| *p);
        let Ok(index) = found else {
            log::error!(
                "table_frames: {:#x} was not handed out as a half page",
                addr.0
            );
            return;
        };
        let mask = &mut self.halves[index].1;
        *mask &= !(1 << half);
        if *mask == 0 {
            self.halves.remove(index);
            inner.free_frames(PhysAddr(page), PAGE_SIZE, FramePurpose::PageTable);
            self.pages -= 1;
        }
    }
}

/// A [`PhysMem`] + [`FrameSource`] whose page-table frames go through [`TableFrames`].
pub struct Packed<'t, M> {
    /// The memory and the allocator behind it.
    pub inner: M,
    /// The table pages.
    pub tables: &'t mut TableFrames,
}

impl<M: PhysMem> PhysMem for Packed<'_, M> {
    fn read_u64(&self, addr: PhysAddr) -> u64 {
        self.inner.read_u64(addr)
    }

    fn write_u64(&mut self, addr: PhysAddr, value: u64) {
        self.inner.write_u64(addr, value);
    }

    fn fill_u64(&mut self, addr: PhysAddr, count: usize, value: u64) {
        self.inner.fill_u64(addr, count, value);
    }

    fn fill_bytes(&mut self, addr: PhysAddr, len: u64, byte: u8) {
        self.inner.fill_bytes(addr, len, byte);
    }

    fn zero(&mut self, addr: PhysAddr, len: u64) {
        self.inner.zero(addr, len);
    }
}

impl<M: FrameSource> FrameSource for Packed<'_, M> {
    fn alloc_frames(&mut self, size: u64, align: u64, purpose: FramePurpose) -> Option<PhysAddr> {
        match purpose {
            FramePurpose::PageTable => self.tables.alloc(&mut self.inner, size, align),
            FramePurpose::Leaf => self.inner.alloc_frames(size, align, purpose),
        }
    }

    fn free_frames(&mut self, addr: PhysAddr, size: u64, purpose: FramePurpose) {
        match purpose {
            FramePurpose::PageTable => self.tables.free(&mut self.inner, addr, size),
            FramePurpose::Leaf => self.inner.free_frames(addr, size, purpose),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    /// Hands out 4 KiB pages from 0x10000 up and records what comes back.
    #[derive(Default)]
    struct Pages {
        next: u64,
        freed: Vec<u64>,
        refuse: bool,
    }

    impl FrameSource for Pages {
        fn alloc_frames(&mut self, size: u64, _align: u64, _p: FramePurpose) -> Option<PhysAddr> {
            if self.refuse {
                return None;
            }
            let at = 0x10000 + self.next;
            self.next += size;
            Some(PhysAddr(at))
        }

        fn free_frames(&mut self, addr: PhysAddr, _size: u64, _p: FramePurpose) {
            self.freed.push(addr.0);
        }
    }

    #[test]
    fn two_half_page_tables_share_one_page_and_it_goes_back_with_the_second() {
        let mut inner = Pages::default();
        let mut t = TableFrames::new();
        let a = t.alloc(&mut inner, 2048, 2048).unwrap();
        let b = t.alloc(&mut inner, 2048, 2048).unwrap();
        assert_eq!((a.0, b.0), (0x10000, 0x10800), "both halves of one page");
        assert_eq!(t.pages(), 1);
        let c = t.alloc(&mut inner, 2048, 2048).unwrap();
        assert_eq!(
            (c.0, t.pages()),
            (0x11000, 2),
            "a third needs a second page"
        );
        t.free(&mut inner, a, 2048);
        assert!(inner.freed.is_empty(), "the other half is still a table");
        assert_eq!(t.half_free(), 2);
        let d = t.alloc(&mut inner, 2048, 2048).unwrap();
        assert_eq!(d, a, "the free half is reused before a new page");
        for x in [b, c, d] {
            t.free(&mut inner, x, 2048);
        }
        assert_eq!(inner.freed, [0x11000, 0x10000]);
        assert_eq!((t.pages(), t.half_free()), (0, 0));
    }

    #[test]
    fn whole_page_tables_pass_through_and_are_counted() {
        let mut inner = Pages::default();
        let mut t = TableFrames::new();
        let region = t.alloc(&mut inner, 16384, 16384).unwrap();
        assert_eq!(t.pages(), 4, "a 16 KiB s390x region table is four pages");
        t.free(&mut inner, region, 16384);
        assert_eq!((t.pages(), inner.freed.len()), (0, 1));
        inner.refuse = true;
        assert_eq!(t.alloc(&mut inner, 2048, 2048), None);
        assert_eq!(t.pages(), 0, "a refused page is not counted");
    }

    #[test]
    fn no_heap_room_for_a_new_half_page_refuses_the_table_and_takes_no_page() {
        let mut inner = Pages::default();
        let mut t = TableFrames::new();
        let a = t.alloc(&mut inner, 2048, 2048).unwrap();
        let _ = t.alloc(&mut inner, 2048, 2048).unwrap();
        t.halves.shrink_to_fit();
        let before = t.clone();
        crate::heap::with_faults(|f| f.arm(1, crate::mm::inject::FaultMode::Always));
        let refused = t.alloc(&mut inner, 2048, 2048);
        crate::heap::with_faults(|f| f.clear());
        assert_eq!(refused, None);
        assert_eq!((t.clone(), inner.next), (before, 0x1000), "nothing taken");
        t.free(&mut inner, a, 2048);
    }
}
