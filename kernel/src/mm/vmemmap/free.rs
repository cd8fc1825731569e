//! One `vmemmap_free` call ([`Remove`]): a read-only validation pass, then the same walk
//! applying the changes. Slots are visited from high to low addresses so altmap blocks
//! go back in LIFO order when a whole range is torn down.

use super::call::conflict;
use super::leaves::PageBits;
use super::trace::{AltmapFigures, CallCounts, Op, Trace, TraceEvent};
use super::{Source, Vmemmap, VmemmapArch};
use crate::mm::addr::{PAGE_SHIFT, PAGE_SIZE, PhysAddr, align_down};
use crate::mm::altmap::VmemAltmap;
use crate::mm::error::MmError;
use crate::mm::pgtable::Entry;
use crate::mm::phys::{FrameSource, PhysMem};

/// Which pass of a free.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    /// Check that every leaf to release can go back where it came from; change nothing.
    Check,
    /// Release.
    Apply,
}

/// A free call (either pass): the walker state, the memory and the call's altmap.
pub struct Remove<'a, F: VmemmapArch, M: PhysMem + FrameSource, T: Trace> {
    vm: &'a mut Vmemmap<F>,
    mem: &'a mut M,
    altmap: Option<&'a mut VmemAltmap>,
    pass: Pass,
    trace: &'a mut T,
    counts: CallCounts,
}

impl<'a, F: VmemmapArch, M: PhysMem + FrameSource, T: Trace> Remove<'a, F, M, T> {
    /// Runs the arch's `vmemmap_free` for `[start, end)` in `pass`.
    pub(super) fn run(
        vm: &'a mut Vmemmap<F>,
        mem: &'a mut M,
        altmap: Option<&'a mut VmemAltmap>,
        pass: Pass,
        trace: &'a mut T,
        start: u64,
        end: u64,
    ) -> Result<(), MmError> {
        let mut call = Remove {
            vm,
            mem,
            altmap,
            pass,
            trace,
            counts: CallCounts::default(),
        };
        let result = F::vmemmap_free(&mut call, start, end);
        if T::ON && pass == Pass::Apply {
            let event = TraceEvent::Summary {
                op: Op::Free,
                start,
                end,
                tables: call.counts.tables,
                leaves_altmap: call.counts.leaves_altmap,
                leaves_ram: call.counts.leaves_ram,
                altmap: call.altmap_figures(),
                result: result.clone(),
            };
            call.trace.event(&event);
        }
        result
    }

    /// Whether this is the validation pass (nothing may change).
    pub fn checking(&self) -> bool {
        self.pass == Pass::Check
    }

    /// Linux's `remove_pagetable` for the vmemmap: unmaps base leaves in `[start, end)`,
    /// drops the users of huge leaves and releases those left unused, and frees tables
    /// left empty; every leaf goes back where it came from.
    pub fn remove_pagetable(&mut self, start: u64, end: u64) -> Result<(), MmError> {
        let root = self.vm.root;
        self.free_level(0, root, start, end)
    }

    fn free_level(
        &mut self,
        level: usize,
        table: PhysAddr,
        start: u64,
        end: u64,
    ) -> Result<(), MmError> {
        let span = F::LEVELS[level].entry_span();
        let mut slot_end = end;
        while slot_end > start {
            let addr = align_down(slot_end - 1, span).max(start);
            let entry = Vmemmap::<F>::entry_addr(table, level, addr);
            match F::decode(level, self.mem.read_u64(entry)) {
                Entry::Empty => {}
                Entry::Malformed => return Err(conflict(addr, level)),
                Entry::Leaf { frame, .. } if level == F::last_level() => {
                    self.free_leaf(level, entry, addr, frame, PAGE_SIZE)?;
                }
                Entry::Leaf { frame, .. } if level == self.vm.huge_level => {
                    self.free_huge_slot(entry, frame, addr, slot_end)?;
                }
                Entry::Leaf { .. } => return Err(conflict(addr, level)),
                Entry::Table(child) => {
                    self.free_level(level + 1, child, addr, slot_end)?;
                    let empty = self.vm.table_is_empty(self.mem, level + 1, child);
                    if self.pass == Pass::Apply && empty {
                        self.mem.write_u64(entry, F::empty_entry(level));
                        self.vm.drop_table(self.mem, level + 1, child);
                        self.counts.tables += 1;
                        if T::ON {
                            let geometry = &F::LEVELS[level + 1];
                            let event = TraceEvent::Table {
                                op: Op::Free,
                                level: level + 1,
                                name: geometry.name,
                                va: F::canonical(align_down(addr, span)),
                                frame: child,
                                bytes: geometry.table_bytes,
                            };
                            self.trace.event(&event);
                        }
                    }
                }
            }
            slot_end = addr;
        }
        Ok(())
    }

    /// Drops the users `[addr, next)` of a huge leaf; releases it when none remain.
    fn free_huge_slot(
        &mut self,
        entry: PhysAddr,
        frame: PhysAddr,
        addr: u64,
        next: u64,
    ) -> Result<(), MmError> {
        let level = self.vm.huge_level;
        let span = F::LEVELS[level].entry_span();
        let leaf_va = align_down(addr, span);
        let leaving = PageBits::range((addr - leaf_va) >> PAGE_SHIFT, (next - addr) >> PAGE_SHIFT);
        let users = self.vm.book.users(leaf_va).unwrap_or_default();
        let remaining = users.minus(leaving);
        if !remaining.is_empty() {
            if self.pass == Pass::Apply {
                self.vm.book.unmark(leaf_va, leaving);
                if T::ON {
                    let event = TraceEvent::Kept {
                        level,
                        name: F::LEVELS[level].name,
                        va: leaf_va,
                        frame,
                        users: remaining.count(),
                    };
                    self.trace.event(&event);
                }
            }
            return Ok(());
        }
        self.free_leaf(level, entry, leaf_va, frame, span)?;
        if self.pass == Pass::Apply {
            self.vm.book.forget(leaf_va);
        }
        Ok(())
    }

    fn free_leaf(
        &mut self,
        level: usize,
        entry: PhysAddr,
        va: u64,
        frame: PhysAddr,
        bytes: u64,
    ) -> Result<(), MmError> {
        let source = self
            .vm
            .classify_leaf(self.altmap.as_deref(), frame, bytes)?;
        if self.pass == Pass::Check {
            return Ok(());
        }
        self.mem.write_u64(entry, F::empty_entry(level));
        let altmap = match source {
            Source::Altmap => self.altmap.as_deref_mut(),
            Source::Ram => None,
        };
        self.vm
            .release_leaf(self.mem, altmap, frame, bytes, source)?;
        self.counts.leaf(source);
        if T::ON {
            let event = TraceEvent::Leaf {
                op: Op::Free,
                level,
                name: F::LEVELS[level].name,
                va,
                frame,
                bytes,
                source,
                altmap: self.altmap_figures(),
            };
            self.trace.event(&event);
        }
        Ok(())
    }

    fn altmap_figures(&self) -> Option<AltmapFigures> {
        self.altmap.as_deref().map(|a| AltmapFigures {
            alloc: a.alloc,
            align: a.align,
        })
    }
}
