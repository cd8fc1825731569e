//! A buddy allocator whose free lists run through the memmap: each free block's head
//! `Page` carries `BUDDY`, its order and the list links, exactly like Linux's free areas.
//!
//! `online` hands a frame range to the allocator, `offline` takes it back only when every
//! page of it is free (nothing changes otherwise), and nothing of an offlined range stays
//! in the free lists.
//!
//! A range enters the free lists as the largest aligned blocks that fit (Linux's
//! `online_pages` hands `MAX_ORDER` chunks to the buddy), and leaves them block by block.
//! Hot-added memory whose struct pages were just written online by
//! [`super::memmap::init_online`] is handed over with [`Buddy::online_initialised`], which
//! touches only block heads; [`Buddy::online`] (boot RAM, undoing an offline) checks and
//! updates the struct pages first, one streaming pass per section slice.

use core::ops::Range;

use super::addr::Pfn;
use super::error::{AllocKind, MmError};
use super::inject::FaultInjector;
use super::memmap::{FreshPages, MemmapAccess};
use super::page::{NO_PFN, PageFlags};
use super::sparse::chunks;

/// Largest order (blocks of up to 2^10 pages = 4 MiB).
pub const MAX_ORDER: u32 = 10;
const ORDERS: usize = MAX_ORDER as usize + 1;

/// Free lists and counters; the pages themselves live in the memmap.
#[derive(Clone, Debug)]
pub struct Buddy {
    heads: [u64; ORDERS],
    blocks: [u64; ORDERS],
    managed: u64,
    free: u64,
    faults: FaultInjector,
}

impl Default for Buddy {
    fn default() -> Self {
        Self::new()
    }
}

impl Buddy {
    /// No memory.
    pub const fn new() -> Buddy {
        Buddy {
            heads: [NO_PFN; ORDERS],
            blocks: [0; ORDERS],
            managed: 0,
            free: 0,
            faults: FaultInjector::new(),
        }
    }

    /// Pages handed to the allocator (free or allocated).
    pub fn managed_pages(&self) -> u64 {
        self.managed
    }

    /// Pages currently free.
    pub fn free_pages(&self) -> u64 {
        self.free
    }

    /// Free blocks of `order`.
    pub fn free_blocks(&self, order: u32) -> u64 {
        self.blocks[order as usize]
    }

    /// The fault injector consulted by [`Buddy::alloc`].
    pub fn faults(&mut self) -> &mut FaultInjector {
        &mut self.faults
    }

    /// Hands `range` to the allocator. Every page needs a struct page and must not be
    /// online already; otherwise nothing changes. Presence is checked per subsection; the
    /// struct pages are read once (none online) and written once (online, unreferenced,
    /// not reserved), one section slice at a time; then the range enters the free lists
    /// block by block.
    pub fn online<A: MemmapAccess>(
        &mut self,
        memmap: &mut A,
        range: Range<Pfn>,
    ) -> Result<(), MmError> {
        if range.start >= range.end {
            return Ok(());
        }
        if let Some(pfn) = memmap.first_missing(range.clone()) {
            return Err(MmError::BadPageState {
                pfn,
                why: "no struct page",
            });
        }
        let arch = memmap.arch();
        for chunk in chunks(arch, range.start, range.end) {
            let pages = memmap.pages(chunk.first, chunk.nr_pages as usize);
            if let Some(i) = pages.iter().position(|p| p.has(PageFlags::ONLINE)) {
                return Err(MmError::BadPageState {
                    pfn: chunk.first.add(i as u64),
                    why: "already online",
                });
            }
        }
        for chunk in chunks(arch, range.start, range.end) {
            for page in memmap.pages_mut(chunk.first, chunk.nr_pages as usize) {
                page.set(PageFlags::ONLINE);
                page.clear(PageFlags::BUDDY | PageFlags::RESERVED);
                page.refcount = 0;
            }
        }
        self.managed += range.end.0 - range.start.0;
        self.free_span(memmap, range.start.0, range.end.0);
        Ok(())
    }

    /// Hands over pages whose struct pages [`super::memmap::init_online`] has just
    /// written as online, free and unlinked: only the free lists change, one block at a
    /// time, so the cost is per block, not per page. Each block's head is checked first
    /// (present, initialised online, unreferenced, in no free list); the init pass wrote
    /// the same state into every page of the block. Refused with nothing changed when a
    /// head is not in that state.
    pub fn online_initialised<A: MemmapAccess>(
        &mut self,
        memmap: &mut A,
        fresh: FreshPages,
    ) -> Result<(), MmError> {
        let range = fresh.range();
        let (start, end) = (range.start.0, range.end.0);
        if let Some(pfn) = memmap.first_missing(range) {
            return Err(MmError::BadPageState {
                pfn,
                why: "no struct page",
            });
        }
        for (head, _) in blocks(start, end) {
            let page = memmap.page(Pfn(head));
            let ready = page.has(PageFlags::INITIALIZED | PageFlags::ONLINE)
                && !page
                    .state()
                    .intersects(PageFlags::BUDDY | PageFlags::RESERVED)
                && page.refcount == 0;
            if !ready {
                return Err(MmError::BadPageState {
                    pfn: Pfn(head),
                    why: "not initialised for onlining",
                });
            }
        }
        self.managed += end - start;
        self.free_span(memmap, start, end);
        Ok(())
    }

    /// Takes `range` back. Refused with `Busy` (nothing changed) unless every page is
    /// online and free. The check visits free blocks, not pages; free blocks straddling
    /// the range edges are split; the online bit is then cleared in one streaming pass
    /// per section slice.
    pub fn offline<A: MemmapAccess>(
        &mut self,
        memmap: &mut A,
        range: Range<Pfn>,
    ) -> Result<(), MmError> {
        let (start, end) = (range.start.0, range.end.0);
        if start >= end {
            return Ok(());
        }
        let mut pfn = start;
        while pfn < end {
            if !memmap.has_page(Pfn(pfn)) || !memmap.page(Pfn(pfn)).has(PageFlags::ONLINE) {
                return Err(MmError::BadPageState {
                    pfn: Pfn(pfn),
                    why: "not online",
                });
            }
            let (head, order) = self
                .free_block_of(memmap, pfn)
                .ok_or(MmError::Busy(Pfn(pfn)))?;
            pfn = head + (1 << order);
        }
        let mut pfn = start;
        let mut outside = [(0u64, 0u64); 2];
        while pfn < end {
            let (head, order) = self.free_block_of(memmap, pfn).expect("checked above");
            self.unlink(memmap, head, order);
            let block_end = head + (1 << order);
            if head < start {
                outside[0] = (head, start);
            }
            if block_end > end {
                outside[1] = (end, block_end);
            }
            pfn = block_end;
        }
        for chunk in chunks(memmap.arch(), range.start, range.end) {
            for page in memmap.pages_mut(chunk.first, chunk.nr_pages as usize) {
                page.clear(PageFlags::ONLINE);
            }
        }
        for (from, to) in outside {
            self.free_span(memmap, from, to);
        }
        self.managed -= end - start;
        Ok(())
    }

    /// Allocates the specific frame `pfn`, which must be online and free: splits the free
    /// block around it. Used to make a chosen range busy (the shell's `alloc N PFN`).
    pub fn claim<A: MemmapAccess>(&mut self, memmap: &mut A, pfn: Pfn) -> Result<(), MmError> {
        self.offline(memmap, pfn..pfn.add(1))?;
        self.managed += 1;
        let page = memmap.page_mut(pfn);
        page.set(PageFlags::ONLINE);
        page.refcount = 1;
        page.order = 0;
        Ok(())
    }

    /// Allocates a block of 2^`order` pages.
    pub fn alloc<A: MemmapAccess>(&mut self, memmap: &mut A, order: u32) -> Result<Pfn, MmError> {
        if order > MAX_ORDER {
            return Err(MmError::OutOfRange {
                what: "order",
                value: order.into(),
                limit: ORDERS as u64,
            });
        }
        self.faults.check(AllocKind::Buddy)?;
        let found = (order..=MAX_ORDER).find(|o| self.heads[*o as usize] != NO_PFN);
        let mut current = found.ok_or(MmError::NoMemory(AllocKind::Buddy))?;
        let head = self.heads[current as usize];
        self.unlink(memmap, head, current);
        while current > order {
            current -= 1;
            self.push(memmap, head + (1 << current), current);
        }
        let page = memmap.page_mut(Pfn(head));
        page.refcount = 1;
        page.order = order as u8;
        Ok(Pfn(head))
    }

    /// Frees a block from [`Buddy::alloc`] with the same order, merging with free buddies.
    pub fn free<A: MemmapAccess>(
        &mut self,
        memmap: &mut A,
        pfn: Pfn,
        order: u32,
    ) -> Result<(), MmError> {
        if order > MAX_ORDER || !pfn.0.is_multiple_of(1 << order) {
            return Err(MmError::Misaligned {
                what: "buddy block",
                value: pfn.0,
                align: 1 << order.min(63),
            });
        }
        if !memmap.has_page(pfn) || !memmap.page(pfn).has(PageFlags::ONLINE) {
            return Err(MmError::BadPageState {
                pfn,
                why: "not online",
            });
        }
        if self.free_block_of(memmap, pfn.0).is_some() {
            return Err(MmError::BadPageState {
                pfn,
                why: "double free",
            });
        }
        let page = memmap.page(pfn);
        if page.refcount != 1 || u32::from(page.order) != order {
            return Err(MmError::BadPageState {
                pfn,
                why: "not an allocated block of this order",
            });
        }
        memmap.page_mut(pfn).refcount = 0;
        self.free_merging(memmap, pfn.0, order);
        Ok(())
    }

    /// Whether `pfn` lies in a free block.
    pub fn is_free<A: MemmapAccess>(&self, memmap: &A, pfn: Pfn) -> bool {
        self.free_block_of(memmap, pfn.0).is_some()
    }

    /// The free block containing `pfn`, as (head, order).
    fn free_block_of<A: MemmapAccess>(&self, memmap: &A, pfn: u64) -> Option<(u64, u32)> {
        (0..=MAX_ORDER).find_map(|order| {
            let head = pfn & !((1u64 << order) - 1);
            let page = memmap.has_page(Pfn(head)).then(|| memmap.page(Pfn(head)))?;
            let order_of_head = u32::from(page.order);
            (page.has(PageFlags::BUDDY) && order_of_head >= order).then_some((head, order_of_head))
        })
    }

    /// Frees `[from, to)` as the largest aligned blocks that fit.
    fn free_span<A: MemmapAccess>(&mut self, memmap: &mut A, from: u64, to: u64) {
        for (head, order) in blocks(from, to) {
            self.free_merging(memmap, head, order);
        }
    }

    /// The free blocks as `(head, order)`, for every order, in list order: the state a
    /// test compares.
    pub fn free_list_blocks<A: MemmapAccess>(&self, memmap: &A) -> alloc::vec::Vec<(u64, u32)> {
        let mut out = alloc::vec::Vec::new();
        for order in 0..=MAX_ORDER {
            let mut head = self.heads[order as usize];
            while head != NO_PFN {
                out.push((head, order));
                head = memmap.page(Pfn(head)).buddy_next;
            }
        }
        out
    }

    fn free_merging<A: MemmapAccess>(&mut self, memmap: &mut A, mut pfn: u64, mut order: u32) {
        while order < MAX_ORDER {
            let buddy = pfn ^ (1 << order);
            let mergeable = memmap.has_page(Pfn(buddy)) && {
                let page = memmap.page(Pfn(buddy));
                page.has(PageFlags::ONLINE | PageFlags::BUDDY) && u32::from(page.order) == order
            };
            if !mergeable {
                break;
            }
            self.unlink(memmap, buddy, order);
            pfn = pfn.min(buddy);
            order += 1;
        }
        self.push(memmap, pfn, order);
    }

    fn push<A: MemmapAccess>(&mut self, memmap: &mut A, pfn: u64, order: u32) {
        let old_head = self.heads[order as usize];
        let page = memmap.page_mut(Pfn(pfn));
        page.set(PageFlags::BUDDY);
        page.order = order as u8;
        page.buddy_prev = NO_PFN;
        page.buddy_next = old_head;
        if old_head != NO_PFN {
            memmap.page_mut(Pfn(old_head)).buddy_prev = pfn;
        }
        self.heads[order as usize] = pfn;
        self.blocks[order as usize] += 1;
        self.free += 1 << order;
    }

    fn unlink<A: MemmapAccess>(&mut self, memmap: &mut A, pfn: u64, order: u32) {
        let page = memmap.page_mut(Pfn(pfn));
        let (prev, next) = (page.buddy_prev, page.buddy_next);
        page.clear(PageFlags::BUDDY);
        page.buddy_prev = NO_PFN;
        page.buddy_next = NO_PFN;
        if prev == NO_PFN {
            self.heads[order as usize] = next;
        } else {
            memmap.page_mut(Pfn(prev)).buddy_next = next;
        }
        if next != NO_PFN {
            memmap.page_mut(Pfn(next)).buddy_prev = prev;
        }
        self.blocks[order as usize] -= 1;
        self.free -= 1 << order;
    }
}

/// `[from, to)` cut into the largest naturally aligned blocks of at most `MAX_ORDER`, as
/// `(head, order)`, ascending.
pub fn blocks(from: u64, to: u64) -> impl Iterator<Item = (u64, u32)> {
    let mut pfn = from;
    core::iter::from_fn(move || {
        if pfn >= to {
            return None;
        }
        let aligned = if pfn == 0 {
            MAX_ORDER
        } else {
            pfn.trailing_zeros().min(MAX_ORDER)
        };
        let fits = (to - pfn).ilog2().min(MAX_ORDER);
        let order = aligned.min(fits);
        let block = (pfn, order);
        pfn += 1 << order;
        Some(block)
    })
}
