//! `free`: a read-only validation pass, then the same walk applying the changes.
//! Slots are visited from high to low addresses so altmap blocks go back in LIFO order
//! when a whole range is torn down.

use super::leaves::PageBits;
use super::{LeafSource, Vmemmap};
use crate::mm::addr::{PAGE_SHIFT, PAGE_SIZE, PhysAddr, VirtAddr, align_down};
use crate::mm::altmap::VmemAltmap;
use crate::mm::error::MmError;
use crate::mm::pgtable::{Entry, PageTableFormat};
use crate::mm::phys::{FrameSource, PhysMem};

/// Which pass of a free.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Pass {
    /// Check that every leaf to release can go back where it came from; change nothing.
    Check,
    /// Release.
    Apply,
}

impl<F: PageTableFormat> Vmemmap<F> {
    pub(super) fn free_range<M: PhysMem + FrameSource>(
        &mut self,
        mem: &mut M,
        start: u64,
        end: u64,
        mut altmap: Option<&mut VmemAltmap>,
        pass: Pass,
    ) -> Result<(), MmError> {
        let root = self.root;
        self.free_level(mem, &mut altmap, 0, root, start, end, pass)
    }

    #[allow(clippy::too_many_arguments)]
    fn free_level<M: PhysMem + FrameSource>(
        &mut self,
        mem: &mut M,
        altmap: &mut Option<&mut VmemAltmap>,
        level: usize,
        table: PhysAddr,
        start: u64,
        end: u64,
        pass: Pass,
    ) -> Result<(), MmError> {
        let span = F::LEVELS[level].entry_span();
        let mut slot_end = end;
        while slot_end > start {
            let addr = align_down(slot_end - 1, span).max(start);
            let entry = Self::entry_addr(table, level, addr);
            match F::decode(level, mem.read_u64(entry)) {
                Entry::Empty => {}
                Entry::Malformed => {
                    return Err(MmError::PageTableConflict {
                        va: VirtAddr(addr),
                        level,
                    });
                }
                Entry::Leaf { frame, .. } if level == F::last_level() => {
                    self.free_leaf(mem, altmap, entry, frame, PAGE_SIZE, pass)?;
                }
                Entry::Leaf { frame, .. } if level == self.huge_level => {
                    self.free_huge_slot(mem, altmap, entry, frame, addr, slot_end, pass)?;
                }
                Entry::Leaf { .. } => {
                    return Err(MmError::PageTableConflict {
                        va: VirtAddr(addr),
                        level,
                    });
                }
                Entry::Table(child) => {
                    self.free_level(mem, altmap, level + 1, child, addr, slot_end, pass)?;
                    if pass == Pass::Apply && self.table_is_empty(mem, level + 1, child) {
                        mem.write_u64(entry, F::empty_entry(level));
                        self.drop_table(mem, level + 1, child);
                    }
                }
            }
            slot_end = addr;
        }
        Ok(())
    }

    /// Drops the users `[addr, next)` of a huge leaf; releases it when none remain.
    #[allow(clippy::too_many_arguments)]
    fn free_huge_slot<M: PhysMem + FrameSource>(
        &mut self,
        mem: &mut M,
        altmap: &mut Option<&mut VmemAltmap>,
        entry: PhysAddr,
        frame: PhysAddr,
        addr: u64,
        next: u64,
        pass: Pass,
    ) -> Result<(), MmError> {
        let span = F::LEVELS[self.huge_level].entry_span();
        let leaf_va = align_down(addr, span);
        let leaving = PageBits::range((addr - leaf_va) >> PAGE_SHIFT, (next - addr) >> PAGE_SHIFT);
        let users = self.book.users(leaf_va).unwrap_or_default();
        if !users.minus(leaving).is_empty() {
            if pass == Pass::Apply {
                self.book.unmark(leaf_va, leaving);
            }
            return Ok(());
        }
        self.free_leaf(mem, altmap, entry, frame, span, pass)?;
        if pass == Pass::Apply {
            self.book.forget(leaf_va);
        }
        Ok(())
    }

    fn free_leaf<M: PhysMem + FrameSource>(
        &mut self,
        mem: &mut M,
        altmap: &mut Option<&mut VmemAltmap>,
        entry: PhysAddr,
        frame: PhysAddr,
        bytes: u64,
        pass: Pass,
    ) -> Result<(), MmError> {
        let source = self.classify_leaf(altmap.as_deref(), frame, bytes)?;
        if pass == Pass::Apply {
            let level = if bytes == PAGE_SIZE {
                F::last_level()
            } else {
                self.huge_level
            };
            mem.write_u64(entry, F::empty_entry(level));
            let altmap = if source == LeafSource::Altmap {
                altmap.as_deref_mut()
            } else {
                None
            };
            self.release_leaf(mem, altmap, frame, bytes, source)?;
        }
        Ok(())
    }
}
