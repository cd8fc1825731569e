//! `VmemAltmap`: Linux's bump allocator for memmap storage inside device or hot-added
//! memory, with its fields and arithmetic kept exactly (linux-mm.md §1.1–1.2).
//!
//! Where Linux has hazards we track instead:
//! - **Non-LIFO frees.** Linux's `vmem_altmap_free` only decrements `alloc`, so freeing a
//!   block below a live one makes the next allocation hand out the live block's pages.
//!   We keep the outstanding blocks as a stack. Freeing the top block rolls `alloc`
//!   back; freeing a block below it only marks it freed, and the roll-back happens
//!   (cascading) once everything above it is freed too. `next_pfn` therefore never
//!   retreats over a live block. The price: pages of a buried freed block stay counted in
//!   `alloc` until the blocks above them go ([`VmemAltmap::live_pages`] tells the truth).
//! - **`align` never returned.** Each block remembers its padding; rolling a block back
//!   returns its padding too, so after a LIFO teardown `alloc == align == 0` and a reused
//!   altmap lays out exactly like a fresh one.

use alloc::vec::Vec;

use super::addr::{PAGE_SIZE, Pfn};
use super::error::MmError;

/// One outstanding allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct AltmapBlock {
    /// First frame handed out (after padding).
    pfn: u64,
    /// Pages handed out.
    nr_pages: u64,
    /// Padding pages skipped before it.
    padding: u64,
    /// Freed, waiting for the blocks above it.
    freed: bool,
}

/// Linux's `struct vmem_altmap`, plus the stack of outstanding blocks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmemAltmap {
    /// First frame of the whole mapping (the device range or memory block).
    pub base_pfn: u64,
    /// Last frame of the namespace or memory block, **inclusive**.
    pub end_pfn: u64,
    /// Pages at the start that belong to the driver (mapped, never handed out).
    pub reserve: u64,
    /// Capacity after `reserve` set aside for memmap (not decremented on allocation).
    pub free: u64,
    /// Padding pages spent on alignment by the outstanding blocks.
    pub align: u64,
    /// Pages handed out (including freed blocks still buried under live ones).
    pub alloc: u64,
    blocks: Vec<AltmapBlock>,
}

impl VmemAltmap {
    /// A fresh altmap (`alloc = align = 0`).
    pub const fn new(base_pfn: u64, end_pfn: u64, reserve: u64, free: u64) -> VmemAltmap {
        VmemAltmap {
            base_pfn,
            end_pfn,
            reserve,
            free,
            align: 0,
            alloc: 0,
            blocks: Vec::new(),
        }
    }

    /// `vmem_altmap_offset`: pages from `base_pfn` to the first data page.
    pub const fn offset(&self) -> u64 {
        self.reserve + self.free
    }

    /// First data frame (`base_pfn + offset`).
    pub const fn first_data_pfn(&self) -> Pfn {
        Pfn(self.base_pfn + self.offset())
    }

    /// `vmem_altmap_next_pfn`: where the next allocation starts before padding.
    pub const fn next_pfn(&self) -> u64 {
        self.base_pfn + self.reserve + self.alloc + self.align
    }

    /// `vmem_altmap_nr_free`: pages still available, saturating at zero.
    pub const fn nr_free(&self) -> u64 {
        self.free.saturating_sub(self.alloc + self.align)
    }

    /// Frames of the memmap storage area: `[base + reserve, base + reserve + free)`.
    pub const fn storage(&self) -> core::ops::Range<u64> {
        let start = self.base_pfn + self.reserve;
        start..start + self.free
    }

    /// Whether a frame lies in the memmap storage area.
    pub const fn in_storage(&self, pfn: Pfn) -> bool {
        let storage = self.storage();
        pfn.0 >= storage.start && pfn.0 < storage.end
    }

    /// Pages in live (not freed) blocks.
    pub fn live_pages(&self) -> u64 {
        self.blocks
            .iter()
            .filter(|b| !b.freed)
            .map(|b| b.nr_pages)
            .sum()
    }

    /// Number of live blocks.
    pub fn live_blocks(&self) -> usize {
        self.blocks.iter().filter(|b| !b.freed).count()
    }

    /// Whether `[pfn, pfn + nr_pages)` is exactly one live block.
    pub fn has_live_block(&self, pfn: Pfn, nr_pages: u64) -> bool {
        self.find_live(pfn.0, nr_pages).is_some()
    }

    /// `altmap_alloc_block_buf`: `size` bytes, aligned to the lowest set bit of the page
    /// count measured on the absolute frame. On failure nothing changes.
    pub fn alloc_bytes(&mut self, size: u64) -> Result<Pfn, MmError> {
        if size == 0 || !size.is_multiple_of(PAGE_SIZE) {
            log::warn!("altmap: allocations must be a multiple of PAGE_SIZE ({size:#x})");
            return Err(MmError::NotPageMultiple { size });
        }
        self.alloc_block(size / PAGE_SIZE)
    }

    /// Allocates `nr_pages` pages; see [`VmemAltmap::alloc_bytes`].
    pub fn alloc_block(&mut self, nr_pages: u64) -> Result<Pfn, MmError> {
        if nr_pages == 0 {
            return Err(MmError::NotPageMultiple { size: 0 });
        }
        let pfn = self.next_pfn();
        let natural = 1u64 << nr_pages.trailing_zeros();
        let padding = pfn.next_multiple_of(natural) - pfn;
        if nr_pages + padding > self.nr_free() {
            return Err(MmError::AltmapExhausted {
                requested: nr_pages,
                padding,
                nr_free: self.nr_free(),
            });
        }
        self.blocks.try_reserve(1)?;
        self.alloc += nr_pages;
        self.align += padding;
        self.blocks.push(AltmapBlock {
            pfn: pfn + padding,
            nr_pages,
            padding,
            freed: false,
        });
        Ok(Pfn(pfn + padding))
    }

    /// Returns a block. Rolls `alloc` and `align` back for it and for any freed blocks
    /// below it once it is the top; otherwise only marks it freed. Refuses (changing
    /// nothing) a block that is not outstanding.
    pub fn free_block(&mut self, pfn: Pfn, nr_pages: u64) -> Result<(), MmError> {
        let index = self
            .find_live(pfn.0, nr_pages)
            .ok_or(MmError::AltmapBlockUnknown { pfn, nr_pages })?;
        self.blocks[index].freed = true;
        if index + 1 != self.blocks.len() {
            log::debug!("altmap: non-LIFO free of {pfn}+{nr_pages} deferred until blocks above go");
        }
        while let Some(top) = self.blocks.last().copied().filter(|b| b.freed) {
            self.alloc -= top.nr_pages;
            self.align -= top.padding;
            self.blocks.pop();
        }
        Ok(())
    }

    fn find_live(&self, pfn: u64, nr_pages: u64) -> Option<usize> {
        self.blocks
            .iter()
            .rposition(|b| !b.freed && b.pfn == pfn && b.nr_pages == nr_pages)
    }
}
