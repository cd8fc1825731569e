//! One `vmemmap_free` call ([`Remove`]): a read-only validation pass, then the same walk
//! applying the changes. Slots are visited from high to low addresses so altmap blocks
//! go back in LIFO order when a whole range is torn down.
//!
//! A huge leaf the range covers only in part goes when no other frame it describes is
//! still in use ([`InUse`]: the sparse model's present subsections) — Linux's sub-PMD
//! tracking, kept in the model instead of a 0xFD fill of the leaf or a bitmap beside it.

use super::call::conflict;
use super::trace::{AltmapFigures, CallCounts, Op, Trace, TraceEvent};
use super::{InUse, Source, Vmemmap, VmemmapArch};
use crate::mm::addr::{PAGE_SIZE, PhysAddr, VirtAddr, align_down};
use crate::mm::altmap::VmemAltmap;
use crate::mm::error::MmError;
use crate::mm::page::STRUCT_PAGE_SIZE;
use crate::mm::pgtable::{Entry, EntryAttrs};
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
    in_use: InUse<'a>,
}

impl<'a, F: VmemmapArch, M: PhysMem + FrameSource, T: Trace> Remove<'a, F, M, T> {
    /// Runs the arch's `vmemmap_free` for `[start, end)` in `pass`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn run(
        vm: &'a mut Vmemmap<F>,
        mem: &'a mut M,
        altmap: Option<&'a mut VmemAltmap>,
        pass: Pass,
        trace: &'a mut T,
        start: u64,
        end: u64,
        in_use: InUse<'a>,
    ) -> Result<(), MmError> {
        let mut call = Remove {
            vm,
            mem,
            altmap,
            pass,
            trace,
            counts: CallCounts::default(),
            in_use,
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
                Entry::Leaf { frame, attrs } if level == F::last_level() => {
                    self.free_leaf(level, entry, addr, frame, PAGE_SIZE, attrs)?;
                }
                Entry::Leaf { frame, attrs } if level == self.vm.huge_level => {
                    self.free_huge_slot(entry, frame, attrs, addr, slot_end)?;
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

    /// The struct pages `[addr, next)` stop using a huge leaf; it goes when no other
    /// frame it describes is in use.
    fn free_huge_slot(
        &mut self,
        entry: PhysAddr,
        frame: PhysAddr,
        attrs: EntryAttrs,
        addr: u64,
        next: u64,
    ) -> Result<(), MmError> {
        let level = self.vm.huge_level;
        let span = F::LEVELS[level].entry_span();
        let leaf_va = align_down(addr, span);
        let others = self.others_in_use(leaf_va, leaf_va + span, addr, next);
        if others > 0 {
            if self.pass == Pass::Apply && T::ON {
                let used = (others * STRUCT_PAGE_SIZE).div_ceil(PAGE_SIZE);
                let event = TraceEvent::Kept {
                    level,
                    name: F::LEVELS[level].name,
                    va: leaf_va,
                    frame,
                    users: u32::try_from(used).unwrap_or(u32::MAX),
                };
                self.trace.event(&event);
            }
            return Ok(());
        }
        self.free_leaf(level, entry, leaf_va, frame, span, attrs)
    }

    /// Frames described by struct pages `[leaf_start, leaf_end)`, outside the call's
    /// `[addr, next)`, whose memmap is still in use.
    fn others_in_use(&self, leaf_start: u64, leaf_end: u64, addr: u64, next: u64) -> u64 {
        let pfn = |va: u64| F::MM.page_to_pfn(VirtAddr(va));
        let below = (leaf_start < addr).then(|| (self.in_use)(pfn(leaf_start)..pfn(addr)));
        let above = (next < leaf_end).then(|| (self.in_use)(pfn(next)..pfn(leaf_end)));
        below.unwrap_or(0) + above.unwrap_or(0)
    }

    fn free_leaf(
        &mut self,
        level: usize,
        entry: PhysAddr,
        va: u64,
        frame: PhysAddr,
        bytes: u64,
        attrs: EntryAttrs,
    ) -> Result<(), MmError> {
        let source = self
            .vm
            .classify_leaf(self.altmap.as_deref(), frame, bytes, attrs)?;
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
