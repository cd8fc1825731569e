//! `populate`: one descent per table, a leaf per slot, an undo log for exact roll-back.
//! The log's room is reserved before each change, so a refused heap allocation stops the
//! walk with nothing unlogged.

use alloc::vec::Vec;

use super::leaves::PageBits;
use super::{LeafPlan, LeafSource, Vmemmap};
use crate::mm::addr::{PAGE_SIZE, PhysAddr, VirtAddr, align_down};
use crate::mm::altmap::VmemAltmap;
use crate::mm::error::{AllocKind, MmError};
use crate::mm::pgtable::{Entry, PageTableFormat};
use crate::mm::phys::{FrameSource, PhysMem};

/// One change made by a populate call, in the order made.
#[derive(Clone, Copy, Debug)]
enum Undo {
    /// A table of `level` was created and linked from `entry`.
    Table {
        entry: PhysAddr,
        level: usize,
        table: PhysAddr,
    },
    /// A leaf of `bytes` was mapped at `entry` (of `level`) for `va`.
    Leaf {
        entry: PhysAddr,
        level: usize,
        va: u64,
        frame: PhysAddr,
        bytes: u64,
        source: LeafSource,
    },
    /// Pages of an existing huge leaf were marked used.
    Users { leaf_va: u64, bits: PageBits },
}

/// State of one populate call.
struct Populate<'a> {
    altmap: Option<&'a mut VmemAltmap>,
    plan: LeafPlan,
    undo: Vec<Undo>,
}

impl<F: PageTableFormat> Vmemmap<F> {
    pub(super) fn populate_range<M: PhysMem + FrameSource>(
        &mut self,
        mem: &mut M,
        start: u64,
        end: u64,
        plan: LeafPlan,
        altmap: Option<&mut VmemAltmap>,
    ) -> Result<(), MmError> {
        let mut call = Populate {
            altmap,
            plan,
            undo: Vec::new(),
        };
        let root = self.root;
        let result = self.populate_level(mem, &mut call, 0, root, start, end);
        if let Err(error) = &result {
            log::warn!(
                "vmemmap: populate {:#x}-{:#x} failed ({error}); undoing {} changes",
                start,
                end,
                call.undo.len()
            );
            self.undo(mem, call);
        }
        result
    }

    fn populate_level<M: PhysMem + FrameSource>(
        &mut self,
        mem: &mut M,
        call: &mut Populate<'_>,
        level: usize,
        table: PhysAddr,
        start: u64,
        end: u64,
    ) -> Result<(), MmError> {
        let span = F::LEVELS[level].entry_span();
        let mut addr = start;
        while addr < end {
            let next = align_down(addr, span)
                .checked_add(span)
                .map_or(end, |n| n.min(end));
            let entry = Self::entry_addr(table, level, addr);
            if level == F::last_level() {
                self.populate_base(mem, call, entry, addr)?;
            } else if level == self.huge_level {
                self.populate_huge_slot(mem, call, entry, addr, next)?;
            } else {
                let child = self.child_table(mem, call, level, entry, addr)?;
                self.populate_level(mem, call, level + 1, child, addr, next)?;
            }
            addr = next;
        }
        Ok(())
    }

    /// The table below `entry`, created if empty.
    fn child_table<M: PhysMem + FrameSource>(
        &mut self,
        mem: &mut M,
        call: &mut Populate<'_>,
        level: usize,
        entry: PhysAddr,
        addr: u64,
    ) -> Result<PhysAddr, MmError> {
        match F::decode(level, mem.read_u64(entry)) {
            Entry::Table(child) => Ok(child),
            Entry::Empty => {
                call.undo.try_reserve(1)?;
                let child = self.new_table(mem, level + 1)?;
                mem.write_u64(entry, F::table_entry(level, child));
                call.undo.push(Undo::Table {
                    entry,
                    level: level + 1,
                    table: child,
                });
                Ok(child)
            }
            Entry::Leaf { .. } | Entry::Malformed => Err(MmError::PageTableConflict {
                va: VirtAddr(addr),
                level,
            }),
        }
    }

    /// One slot of the huge level covering `[addr, next)`.
    fn populate_huge_slot<M: PhysMem + FrameSource>(
        &mut self,
        mem: &mut M,
        call: &mut Populate<'_>,
        entry: PhysAddr,
        addr: u64,
        next: u64,
    ) -> Result<(), MmError> {
        let level = self.huge_level;
        let span = F::LEVELS[level].entry_span();
        let leaf_va = align_down(addr, span);
        match F::decode(level, mem.read_u64(entry)) {
            Entry::Leaf { frame, .. } => {
                self.check_leaf_reuse(call.altmap.as_deref(), frame)?;
                self.mark_users(call, leaf_va, addr, next)?;
                return Ok(());
            }
            Entry::Table(pte_table) => {
                return self.populate_level(mem, call, level + 1, pte_table, addr, next);
            }
            Entry::Malformed => {
                return Err(MmError::PageTableConflict {
                    va: VirtAddr(addr),
                    level,
                });
            }
            Entry::Empty => {}
        }
        // An altmap leaf must describe only this range's struct pages (as powerpc's
        // `altmap_cross_boundary`): a partly covered slot takes base pages instead.
        let covers_slot = addr == leaf_va && next - addr == span;
        let huge_allowed = covers_slot || call.altmap.is_none();
        if let (LeafPlan::Huge { fallback_to_base }, true) = (call.plan, huge_allowed) {
            call.undo.try_reserve(2)?;
            match self.alloc_leaf(mem, call.altmap.as_deref_mut(), span) {
                Ok((frame, source)) => {
                    mem.write_u64(entry, F::leaf_entry(level, frame, self.attrs));
                    call.undo.push(Undo::Leaf {
                        entry,
                        level,
                        va: leaf_va,
                        frame,
                        bytes: span,
                        source,
                    });
                    self.mark_users(call, leaf_va, addr, next)?;
                    return Ok(());
                }
                // A refused heap allocation is no reason to try smaller leaves.
                Err(error) if !fallback_to_base || error == MmError::NoMemory(AllocKind::Heap) => {
                    return Err(error);
                }
                Err(error) => log::debug!(
                    "vmemmap: huge leaf at {leaf_va:#x} failed ({error}); using base pages"
                ),
            }
        }
        let pte_table = self.child_table(mem, call, level, entry, addr)?;
        self.populate_level(mem, call, level + 1, pte_table, addr, next)
    }

    /// One base page at `addr`; an existing one is kept.
    fn populate_base<M: PhysMem + FrameSource>(
        &mut self,
        mem: &mut M,
        call: &mut Populate<'_>,
        entry: PhysAddr,
        addr: u64,
    ) -> Result<(), MmError> {
        let level = F::last_level();
        match F::decode(level, mem.read_u64(entry)) {
            Entry::Leaf { .. } => Ok(()),
            Entry::Empty => {
                call.undo.try_reserve(1)?;
                let (frame, source) =
                    self.alloc_leaf(mem, call.altmap.as_deref_mut(), PAGE_SIZE)?;
                mem.write_u64(entry, F::leaf_entry(level, frame, self.attrs));
                call.undo.push(Undo::Leaf {
                    entry,
                    level,
                    va: addr,
                    frame,
                    bytes: PAGE_SIZE,
                    source,
                });
                Ok(())
            }
            Entry::Table(_) | Entry::Malformed => Err(MmError::PageTableConflict {
                va: VirtAddr(addr),
                level,
            }),
        }
    }

    fn mark_users(
        &mut self,
        call: &mut Populate<'_>,
        leaf_va: u64,
        addr: u64,
        next: u64,
    ) -> Result<(), MmError> {
        call.undo.try_reserve(1)?;
        let bits = self.book.mark(leaf_va, addr, next)?;
        if !bits.is_empty() {
            call.undo.push(Undo::Users { leaf_va, bits });
        }
        Ok(())
    }

    /// Reverts every change of a failed call, newest first (so altmap frees are LIFO).
    fn undo<M: PhysMem + FrameSource>(&mut self, mem: &mut M, mut call: Populate<'_>) {
        while let Some(change) = call.undo.pop() {
            match change {
                Undo::Users { leaf_va, bits } => {
                    self.book.unmark(leaf_va, bits);
                }
                Undo::Leaf {
                    entry,
                    level,
                    va,
                    frame,
                    bytes,
                    source,
                } => {
                    mem.write_u64(entry, F::empty_entry(level));
                    if bytes > PAGE_SIZE {
                        self.book.forget(va);
                    }
                    if let Err(error) =
                        self.release_leaf(mem, call.altmap.as_deref_mut(), frame, bytes, source)
                    {
                        log::error!("vmemmap: undo could not release leaf {frame}: {error}");
                    }
                }
                Undo::Table {
                    entry,
                    level,
                    table,
                } => {
                    mem.write_u64(entry, F::empty_entry(level - 1));
                    self.drop_table(mem, level, table);
                }
            }
        }
    }
}
