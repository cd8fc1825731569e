//! The shared populate helpers of Linux's `mm/sparse-vmemmap.c`, for the arches whose
//! `vmemmap_populate` uses them: `vmemmap_populate_basepages` and
//! `vmemmap_populate_hugepages` with the arch's `vmemmap_set_pmd` / `vmemmap_check_pmd`
//! ([`HugePmd`]).
//!
//! Unlike Linux, which walks from the root once per 4 KiB page, the walk descends once
//! per table and fills a last-level table in one loop, so each leaf costs O(1) table
//! accesses.

use super::call::{Populate, conflict};
use super::trace::Trace;
use super::{Block, VmemmapArch};
use crate::mm::addr::{PAGE_SIZE, PhysAddr, align_down};
use crate::mm::error::MmError;
use crate::mm::pgtable::Entry;
use crate::mm::phys::{FrameSource, PhysMem};

/// An arch's hooks into [`Populate::populate_hugepages`].
pub trait HugePmd: VmemmapArch {
    /// Linux's `vmemmap_set_pmd`: maps the new huge leaf `block` at `pmd` for the struct
    /// pages `[addr, next)`.
    fn vmemmap_set_pmd<M: PhysMem + FrameSource, T: Trace>(
        call: &mut Populate<'_, Self, M, T>,
        pmd: PhysAddr,
        block: Block,
        addr: u64,
        next: u64,
    );

    /// Linux's `vmemmap_check_pmd`: whether the entry at `pmd` (not empty) is a huge leaf
    /// that now also backs `[addr, next)`; `Ok(false)` sends the range to base pages.
    fn vmemmap_check_pmd<M: PhysMem + FrameSource, T: Trace>(
        call: &mut Populate<'_, Self, M, T>,
        pmd: PhysAddr,
        addr: u64,
        next: u64,
    ) -> Result<bool, MmError>;
}

impl<F: VmemmapArch, M: PhysMem + FrameSource, T: Trace> Populate<'_, F, M, T> {
    /// Linux's `vmemmap_populate_basepages(start, end, altmap)`: 4 KiB leaves from the
    /// call's altmap when it has one, else from RAM. A huge leaf already backing part of
    /// the range is kept (and gains the users).
    pub fn populate_basepages(&mut self, start: u64, end: u64) -> Result<(), MmError> {
        let root = self.root();
        let huge_level = self.huge_level();
        self.walk_to(
            huge_level,
            0,
            root,
            start,
            end,
            &mut |call, pmd, addr, next| call.pte_range(pmd, addr, next),
        )
    }

    /// `vmemmap_populate_basepages(start, end, NULL)`: base pages from RAM although the
    /// call has an altmap (Linux's x86 sub-section rule).
    pub fn populate_basepages_without_altmap(
        &mut self,
        start: u64,
        end: u64,
    ) -> Result<(), MmError> {
        self.without_altmap(|call| call.populate_basepages(start, end))
    }

    /// The base pages `[addr, next)` below the huge-level entry at `pmd`: a PTE table
    /// (from RAM, if missing) and a leaf per empty entry from
    /// [`Populate::alloc_block_buf`]. An existing huge leaf there is reused instead.
    pub fn pte_range(&mut self, pmd: PhysAddr, addr: u64, next: u64) -> Result<(), MmError> {
        let huge_level = self.huge_level();
        if let Entry::Leaf { frame, attrs } = self.decode(huge_level, pmd) {
            return self.reuse_huge_leaf(frame, attrs, addr, next);
        }
        let pte_table = self.table(huge_level, pmd, addr)?;
        let last = huge_level + 1;
        for va in (addr..next).step_by(PAGE_SIZE as usize) {
            let (pte, entry) = self.entry(last, pte_table, va);
            match entry {
                Entry::Leaf { .. } => {}
                Entry::Empty => {
                    let block = self.alloc_block_buf(PAGE_SIZE)?;
                    self.set_leaf(last, pte, va, block);
                }
                Entry::Table(_) | Entry::Malformed => return Err(conflict(va, last)),
            }
        }
        Ok(())
    }

    /// Walks `[start, end)` from `table` (of `level`) down to `stop`, creating missing
    /// tables from RAM, and hands each `stop`-level entry with its part of the range to
    /// `slot`.
    pub fn walk_to(
        &mut self,
        stop: usize,
        level: usize,
        table: PhysAddr,
        start: u64,
        end: u64,
        slot: &mut impl FnMut(&mut Self, PhysAddr, u64, u64) -> Result<(), MmError>,
    ) -> Result<(), MmError> {
        let span = F::LEVELS[level].entry_span();
        let mut addr = start;
        while addr < end {
            let next = align_down(addr, span)
                .checked_add(span)
                .map_or(end, |n| n.min(end));
            let (at, _) = self.entry(level, table, addr);
            if level == stop {
                slot(self, at, addr, next)?;
            } else {
                let child = self.table(level, at, addr)?;
                self.walk_to(stop, level + 1, child, addr, next, slot)?;
            }
            addr = next;
        }
        Ok(())
    }
}

impl<F: HugePmd, M: PhysMem + FrameSource, T: Trace> Populate<'_, F, M, T> {
    /// Linux's `vmemmap_populate_hugepages(start, end, altmap)`: per huge slot, a new
    /// huge leaf from [`Populate::alloc_block_buf`] through `vmemmap_set_pmd`; an
    /// existing one through `vmemmap_check_pmd`; if the allocation fails, an error with
    /// an altmap (no fallback: the altmap is sized wrongly) and base pages from RAM
    /// without one. Under hotmem a slot only partly in the range takes base pages when
    /// the call has an altmap ([`Populate::altmap_crosses_boundary`]).
    pub fn populate_hugepages(&mut self, start: u64, end: u64) -> Result<(), MmError> {
        let root = self.root();
        let huge_level = self.huge_level();
        self.walk_to(
            huge_level,
            0,
            root,
            start,
            end,
            &mut |call, pmd, addr, next| call.huge_slot(pmd, addr, next),
        )
    }

    fn huge_slot(&mut self, pmd: PhysAddr, addr: u64, next: u64) -> Result<(), MmError> {
        let level = self.huge_level();
        match self.decode(level, pmd) {
            Entry::Empty if !self.altmap_crosses_boundary(addr, next) => {
                match self.alloc_block_buf(F::LEVELS[level].entry_span()) {
                    Ok(block) => {
                        F::vmemmap_set_pmd(self, pmd, block, addr, next);
                        return Ok(());
                    }
                    Err(error) if self.has_altmap() => return Err(error),
                    Err(error) => log::debug!(
                        "vmemmap: huge leaf for {addr:#x} failed ({error}); using base pages"
                    ),
                }
            }
            Entry::Empty => {}
            Entry::Malformed => return Err(conflict(addr, level)),
            Entry::Leaf { .. } | Entry::Table(_) => {
                if F::vmemmap_check_pmd(self, pmd, addr, next)? {
                    return Ok(());
                }
            }
        }
        self.pte_range(pmd, addr, next)
    }
}
