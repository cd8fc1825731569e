//! `VmemAltmap`: Linux's bump allocator for memmap storage inside device or hot-added
//! memory, with its fields and arithmetic kept exactly (linux-mm.md §1.1–1.2).
//!
//! Under `mm.semantics=linux` (and `rfc-2017`) the frees follow Linux to the letter and
//! a checker names each hazard when it bites (`linux`). Under `hotmem` (the default)
//! the hazards are tracked instead, in O(1) state (no record per block):
//! - **Non-LIFO frees.** Linux's `vmem_altmap_free` only decrements `alloc`, so freeing a
//!   block below a live one makes the next allocation hand out the live block's pages.
//!   Here a free of the block that ends at `next_pfn` (the top) rolls `alloc` back; a free
//!   below the top only counts its pages as *buried* and remembers where they are in a
//!   small table of holes ([`MAX_HOLES`], merged when adjacent). When the top goes, the
//!   holes right below it go too (cascading), so `next_pfn` never retreats over a live
//!   block. A hole that does not fit the table is only counted: its pages come back when
//!   the altmap empties. [`VmemAltmap::live_pages`] always tells the truth, and once no
//!   page is live `alloc`, `align` and the table are reset, whatever the order of frees.
//! - **`align` never returned.** The padding an allocation skips is remembered as a hole
//!   too; rolling the block above it back rolls the padding back, so after a LIFO
//!   teardown `alloc == align == 0` and a reused altmap lays out exactly like a fresh one.
//!
//! The page tables are the record of which blocks are out: the vmemmap walker frees the
//! leaves it finds mapped, and [`VmemAltmap::is_outstanding`] checks a free against the
//! allocated span and the holes. Only the hazard checker of Linux's rules keeps a record
//! per block (it must see which blocks are still mapped to name a hazard), and only for
//! the blocks allocated while those rules are in force.

mod linux;

use linux::CheckedBlock;
pub use linux::Hazard;

use alloc::vec::Vec;

use super::addr::{PAGE_SIZE, Pfn};
use super::error::MmError;
use super::semantics::Semantics;

/// Holes (buried frees and paddings) remembered by position; more are only counted.
pub const MAX_HOLES: usize = 4;

/// What a hole holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HoleKind {
    /// Pages freed below the top (still counted in `alloc`).
    Freed,
    /// Pages skipped for alignment (counted in `align`).
    Padding,
}

/// `[start, end)` frames that no live block occupies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Hole {
    start: u64,
    end: u64,
    kind: HoleKind,
}

/// Linux's `struct vmem_altmap`, plus the holes below the top.
#[derive(Clone)]
pub struct VmemAltmap {
    /// First frame of the whole mapping (the device range or memory block).
    pub base_pfn: u64,
    /// Last frame of the namespace or memory block, **inclusive**.
    pub end_pfn: u64,
    /// Pages at the start that belong to the driver (mapped, never handed out).
    pub reserve: u64,
    /// Capacity after `reserve` set aside for memmap (not decremented on allocation).
    pub free: u64,
    /// Padding pages spent on alignment below the top.
    pub align: u64,
    /// Pages handed out (including freed pages still buried under live blocks).
    pub alloc: u64,
    /// Of `alloc`, pages freed below the top.
    buried: u64,
    /// Holes by position, ascending, non-overlapping; `holes[..nr_holes]` are valid.
    holes: [Hole; MAX_HOLES],
    nr_holes: usize,
    /// Blocks allocated under Linux's rules and still out (the hazard checker's view).
    checked: Vec<CheckedBlock>,
}

impl PartialEq for VmemAltmap {
    fn eq(&self, other: &Self) -> bool {
        let fields = |a: &Self| {
            (
                a.base_pfn, a.end_pfn, a.reserve, a.free, a.align, a.alloc, a.buried,
            )
        };
        fields(self) == fields(other)
            && self.holes() == other.holes()
            && self.checked == other.checked
    }
}

impl Eq for VmemAltmap {}

impl core::fmt::Debug for VmemAltmap {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("VmemAltmap")
            .field("base_pfn", &self.base_pfn)
            .field("end_pfn", &self.end_pfn)
            .field("reserve", &self.reserve)
            .field("free", &self.free)
            .field("align", &self.align)
            .field("alloc", &self.alloc)
            .field("buried", &self.buried)
            .field("holes", &self.holes())
            .field("checked", &self.checked)
            .finish()
    }
}

const NO_HOLE: Hole = Hole {
    start: 0,
    end: 0,
    kind: HoleKind::Freed,
};

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
            buried: 0,
            holes: [NO_HOLE; MAX_HOLES],
            nr_holes: 0,
            checked: Vec::new(),
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
    pub const fn live_pages(&self) -> u64 {
        self.alloc - self.buried
    }

    /// Of `alloc`, pages freed below the top and not yet rolled back.
    pub const fn buried_pages(&self) -> u64 {
        self.buried
    }

    /// Whether `[pfn, pfn + nr_pages)` may be a live block: inside what was handed out
    /// and in no hole (the page tables say which blocks exist; this checks a free).
    pub fn is_outstanding(&self, pfn: Pfn, nr_pages: u64) -> bool {
        let (start, end) = (pfn.0, pfn.0.saturating_add(nr_pages));
        nr_pages > 0
            && start >= self.base_pfn + self.reserve
            && end <= self.next_pfn()
            && self.live_pages() >= nr_pages
            && !self.holes().iter().any(|h| h.start < end && start < h.end)
    }

    /// [`VmemAltmap::is_outstanding`], or under Linux's rules also a block recorded by
    /// the hazard checker (whose pages `next_pfn` may have retreated over).
    pub fn is_outstanding_under(&self, pfn: Pfn, nr_pages: u64, semantics: Semantics) -> bool {
        let recorded = || {
            self.checked
                .iter()
                .any(|b| b.pfn == pfn.0 && b.nr_pages == nr_pages)
        };
        self.is_outstanding(pfn, nr_pages) || semantics.linux_rules() && recorded()
    }

    /// `altmap_alloc_block_buf`: `size` bytes, aligned to the lowest set bit of the page
    /// count measured on the absolute frame. On failure nothing changes.
    pub fn alloc_bytes(&mut self, size: u64) -> Result<Pfn, MmError> {
        self.alloc_bytes_under(size, Semantics::Hotmem)
            .map(|(pfn, _)| pfn)
    }

    /// Allocates `nr_pages` pages; see [`VmemAltmap::alloc_bytes`].
    pub fn alloc_block(&mut self, nr_pages: u64) -> Result<Pfn, MmError> {
        self.alloc_block_under(nr_pages, Semantics::Hotmem)
            .map(|(pfn, _)| pfn)
    }

    /// [`VmemAltmap::alloc_bytes`] under `semantics`: the allocation is the same
    /// arithmetic under every setting; under Linux's rules the hazard it runs into, if
    /// any, comes back with it (and is logged).
    pub fn alloc_bytes_under(
        &mut self,
        size: u64,
        semantics: Semantics,
    ) -> Result<(Pfn, Option<Hazard>), MmError> {
        if size == 0 || !size.is_multiple_of(PAGE_SIZE) {
            log::warn!("altmap: allocations must be a multiple of PAGE_SIZE ({size:#x})");
            return Err(MmError::NotPageMultiple { size });
        }
        self.alloc_block_under(size / PAGE_SIZE, semantics)
    }

    /// [`VmemAltmap::alloc_block`] under `semantics`.
    pub fn alloc_block_under(
        &mut self,
        nr_pages: u64,
        semantics: Semantics,
    ) -> Result<(Pfn, Option<Hazard>), MmError> {
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
        let hazard = if semantics.linux_rules() {
            self.checked.try_reserve(1)?;
            let hazard = self.hazard_of(pfn + padding, nr_pages, natural);
            self.checked.push(CheckedBlock {
                pfn: pfn + padding,
                nr_pages,
            });
            hazard
        } else {
            if padding > 0 {
                self.note_hole(pfn, pfn + padding, HoleKind::Padding);
            }
            None
        };
        if let Some(hazard) = &hazard {
            log::warn!("{hazard}");
        }
        self.alloc += nr_pages;
        self.align += padding;
        Ok((Pfn(pfn + padding), hazard))
    }

    /// Returns a block (hotmem's rules); see [`VmemAltmap::free_block_under`].
    pub fn free_block(&mut self, pfn: Pfn, nr_pages: u64) -> Result<(), MmError> {
        self.free_block_under(pfn, nr_pages, Semantics::Hotmem)
    }

    /// Returns a block under `semantics`: hotmem's (below) or Linux's `vmem_altmap_free`
    /// (`alloc -= nr_pages`, nothing else). Either way a block that is not outstanding is
    /// refused and nothing changes.
    pub fn free_block_under(
        &mut self,
        pfn: Pfn,
        nr_pages: u64,
        semantics: Semantics,
    ) -> Result<(), MmError> {
        if semantics.linux_rules() {
            return self.free_linux(pfn, nr_pages);
        }
        self.free_hotmem(pfn, nr_pages)
    }

    /// Hotmem's free: the top block rolls `alloc` back, with the holes right below it; a
    /// block below the top is buried (see the module header).
    fn free_hotmem(&mut self, pfn: Pfn, nr_pages: u64) -> Result<(), MmError> {
        if !self.is_outstanding(pfn, nr_pages) {
            return Err(MmError::AltmapBlockUnknown { pfn, nr_pages });
        }
        self.forget_checked(pfn, nr_pages);
        let end = pfn.0 + nr_pages;
        if end == self.next_pfn() {
            self.alloc -= nr_pages;
            self.roll_back_holes();
        } else {
            log::debug!(
                "altmap: non-LIFO free of {pfn}+{nr_pages} buried until the blocks above go"
            );
            self.buried += nr_pages;
            self.note_hole(pfn.0, end, HoleKind::Freed);
        }
        if self.live_pages() == 0 {
            // Nothing is live: every buried page and every padding comes back.
            self.alloc = 0;
            self.align = 0;
            self.buried = 0;
            self.nr_holes = 0;
            self.checked = Vec::new();
        }
        Ok(())
    }

    fn holes(&self) -> &[Hole] {
        &self.holes[..self.nr_holes]
    }

    /// While the highest hole ends at `next_pfn`, gives it back.
    fn roll_back_holes(&mut self) {
        while let Some(top) = self.holes().last().copied() {
            if top.end != self.next_pfn() {
                break;
            }
            let pages = top.end - top.start;
            match top.kind {
                HoleKind::Freed => {
                    self.alloc -= pages;
                    self.buried -= pages;
                }
                HoleKind::Padding => self.align -= pages,
            }
            self.nr_holes -= 1;
        }
    }

    /// Remembers `[start, end)` as a hole of `kind`, merged with a neighbour of the same
    /// kind; a hole that fits nowhere is only counted (by the caller).
    fn note_hole(&mut self, start: u64, end: u64, kind: HoleKind) {
        let at = self.holes().partition_point(|h| h.end <= start);
        let n = self.nr_holes;
        if at > 0 && self.holes[at - 1].end == start && self.holes[at - 1].kind == kind {
            self.holes[at - 1].end = end;
            if at < n && self.holes[at].start == end && self.holes[at].kind == kind {
                self.holes[at - 1].end = self.holes[at].end;
                self.holes.copy_within(at + 1..n, at);
                self.nr_holes -= 1;
            }
            return;
        }
        if at < n && self.holes[at].start == end && self.holes[at].kind == kind {
            self.holes[at].start = start;
            return;
        }
        if n == MAX_HOLES {
            log::debug!("altmap: hole table full; {start:#x}-{end:#x} only counted");
            return;
        }
        self.holes.copy_within(at..n, at + 1);
        self.holes[at] = Hole { start, end, kind };
        self.nr_holes += 1;
    }
}
