//! One `vmemmap_populate` call in progress ([`Populate`]): the primitives an arch walker
//! composes, each traced. No log of the changes is kept: the range was unmapped before
//! the call (its subsections were not present), so a failed call is rolled back by
//! freeing the range — the walk of `vmemmap_free`, high to low, so altmap frees are LIFO
//! — which removes exactly what the call mapped (a huge leaf it shares with a present
//! neighbour stays, as [`InUse`] says).

use super::free::{Pass, Remove};
use super::trace::{AltmapFigures, CallCounts, NoTrace, Op, Trace, TraceEvent};
use super::{Block, InUse, Source, Vmemmap, VmemmapArch};
use crate::mm::addr::{PhysAddr, VirtAddr, align_down};
use crate::mm::altmap::VmemAltmap;
use crate::mm::error::MmError;
use crate::mm::pgtable::{Entry, EntryAttrs, Features};
use crate::mm::phys::{FrameSource, PhysMem};
use crate::mm::semantics::Semantics;

/// A populate call: the walker state, the memory and the call's altmap.
pub struct Populate<'a, F: VmemmapArch, M: PhysMem + FrameSource, T: Trace> {
    vm: &'a mut Vmemmap<F>,
    mem: &'a mut M,
    altmap: Option<&'a mut VmemAltmap>,
    /// The altmap is set aside for part of the call (`populate_basepages_without_altmap`).
    altmap_hidden: bool,
    trace: &'a mut T,
    counts: CallCounts,
}

impl<'a, F: VmemmapArch, M: PhysMem + FrameSource, T: Trace> Populate<'a, F, M, T> {
    /// Runs the arch's `vmemmap_populate` for `[start, end)`; rolls back on failure
    /// (`in_use` tells which frames besides the range's keep their memmap).
    pub(super) fn run(
        vm: &'a mut Vmemmap<F>,
        mem: &'a mut M,
        altmap: Option<&'a mut VmemAltmap>,
        trace: &'a mut T,
        start: u64,
        end: u64,
        in_use: InUse<'_>,
    ) -> Result<(), MmError> {
        let mut call = Populate {
            vm,
            mem,
            altmap,
            altmap_hidden: false,
            trace,
            counts: CallCounts::default(),
        };
        let result = F::vmemmap_populate(&mut call, start, end);
        if let Err(error) = &result {
            log::warn!(
                "vmemmap: populate {start:#x}-{end:#x} failed ({error}); unmapping what it mapped"
            );
            call.roll_back(start, end, in_use);
        }
        if T::ON {
            let event = TraceEvent::Summary {
                op: Op::Populate,
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

    /// The root table.
    pub fn root(&self) -> PhysAddr {
        self.vm.root
    }

    /// The CPU features the walker may use.
    pub fn features(&self) -> Features {
        self.vm.features
    }

    /// The rules in force.
    pub fn semantics(&self) -> Semantics {
        self.vm.semantics
    }

    /// Whether the call has an altmap (`vmemmap_populate`'s `altmap != NULL`).
    pub fn has_altmap(&self) -> bool {
        self.altmap.is_some()
    }

    /// The level of the huge vmemmap leaves (the one above the last).
    pub fn huge_level(&self) -> usize {
        self.vm.huge_level
    }

    /// Whether the CPU allows leaves at the huge level.
    pub fn huge_available(&self) -> bool {
        self.vm.huge_available
    }

    /// Whether `[start, end)` is less than one section's memmap (a sub-section add).
    pub fn sub_section(&self, start: u64, end: u64) -> bool {
        end - start < F::MM.section_memmap_bytes()
    }

    /// The entry of `table` (of `level`) that translates `va`: its address and value.
    pub fn entry(&self, level: usize, table: PhysAddr, va: u64) -> (PhysAddr, Entry) {
        let at = Vmemmap::<F>::entry_addr(table, level, va);
        (at, self.decode(level, at))
    }

    /// The entry at `at`, of `level`, decoded.
    pub fn decode(&self, level: usize, at: PhysAddr) -> Entry {
        F::decode(level, self.mem.read_u64(at))
    }

    /// Linux's `vmemmap_{pgd,p4d,pud,pmd}_populate`: the table of `level + 1` that the
    /// entry at `at` (of `level`, translating `va`) points to, created from RAM if the
    /// entry is empty. A leaf or a malformed entry there is a conflict.
    pub fn table(&mut self, level: usize, at: PhysAddr, va: u64) -> Result<PhysAddr, MmError> {
        match self.decode(level, at) {
            Entry::Table(child) => Ok(child),
            Entry::Empty => {
                let child = self.vm.new_table(self.mem, level + 1)?;
                self.mem.write_u64(at, F::table_entry(level, child));
                self.counts.tables += 1;
                if T::ON {
                    let geometry = &F::LEVELS[level + 1];
                    let event = TraceEvent::Table {
                        op: Op::Populate,
                        level: level + 1,
                        name: geometry.name,
                        va: F::canonical(align_down(va, F::LEVELS[level].entry_span())),
                        frame: child,
                        bytes: geometry.table_bytes,
                    };
                    self.trace.event(&event);
                }
                Ok(child)
            }
            Entry::Leaf { .. } | Entry::Malformed => Err(conflict(va, level)),
        }
    }

    /// Linux's `vmemmap_alloc_block_buf(size, altmap)`: from the call's altmap when it
    /// has one (no fallback to RAM), otherwise from RAM.
    pub fn alloc_block_buf(&mut self, bytes: u64) -> Result<Block, MmError> {
        let block = self
            .vm
            .alloc_leaf(self.mem, self.altmap.as_deref_mut(), bytes)?;
        if self.altmap_hidden {
            self.vm.tally.ram_leaves_by_policy += 1;
        }
        Ok(block)
    }

    /// Linux's `vmemmap_alloc_block(size)`: from RAM even when the call has an altmap
    /// (the 2017 RFC's base-page path, `mm.semantics=rfc-2017`).
    pub fn alloc_block(&mut self, bytes: u64) -> Result<Block, MmError> {
        let block = self.vm.alloc_leaf(self.mem, None, bytes)?;
        if self.altmap.is_some() {
            self.vm.tally.ram_leaves_by_semantics += 1;
        }
        Ok(block)
    }

    /// Maps `block` with a leaf at `at` (of `level`) for the struct pages from `va`; a
    /// block from the altmap carries [`EntryAttrs::ALTMAP`].
    pub fn set_leaf(&mut self, level: usize, at: PhysAddr, va: u64, block: Block) {
        let mut attrs = self.vm.attrs;
        attrs.set(EntryAttrs::ALTMAP, block.source == Source::Altmap);
        self.mem
            .write_u64(at, F::leaf_entry(level, block.frame, attrs));
        self.counts.leaf(block.source);
        if T::ON {
            let event = TraceEvent::Leaf {
                op: Op::Populate,
                level,
                name: F::LEVELS[level].name,
                va,
                frame: block.frame,
                bytes: block.bytes,
                source: block.source,
                altmap: self.altmap_figures(),
            };
            self.trace.event(&event);
        }
    }

    /// An existing huge leaf at `frame` (mapped with `attrs`) also backs the struct pages
    /// `[addr, next)` (Linux's `vmemmap_use_sub_pmd`: here nothing is written, the present
    /// subsections are the leaf's users). Refused when it came from an altmap other than
    /// the call's (its last user could not return it).
    pub fn reuse_huge_leaf(
        &mut self,
        frame: PhysAddr,
        attrs: EntryAttrs,
        addr: u64,
        next: u64,
    ) -> Result<(), MmError> {
        let _ = (addr, next);
        self.vm
            .check_leaf_reuse(self.altmap.as_deref(), frame, attrs)
    }

    /// If the huge-level entry at `pmd` is a leaf, it also backs `[addr, next)`
    /// ([`Populate::reuse_huge_leaf`]) and the answer is `true`; otherwise `false`.
    pub fn reuse_pmd_leaf(&mut self, pmd: PhysAddr, addr: u64, next: u64) -> Result<bool, MmError> {
        match self.decode(self.vm.huge_level, pmd) {
            Entry::Leaf { frame, attrs } => self
                .reuse_huge_leaf(frame, attrs, addr, next)
                .map(|()| true),
            _ => Ok(false),
        }
    }

    /// A new huge leaf at `at` for the huge slot that holds `addr` (`vmemmap_set_pmd`);
    /// the struct pages `[addr, next)` use it, the rest of it waits for the neighbours.
    pub fn set_huge_leaf(&mut self, at: PhysAddr, block: Block, addr: u64, next: u64) {
        let level = self.vm.huge_level;
        let leaf_va = align_down(addr, F::LEVELS[level].entry_span());
        let _ = next;
        self.set_leaf(level, at, leaf_va, block);
    }

    /// Whether an altmap leaf for the huge slot holding `[addr, next)` would also back
    /// struct pages outside the range: hotmem then takes base pages instead (as powerpc's
    /// `altmap_cross_boundary`); Linux's rules take the whole leaf.
    pub fn altmap_crosses_boundary(&self, addr: u64, next: u64) -> bool {
        let span = F::LEVELS[self.vm.huge_level].entry_span();
        let whole = addr.is_multiple_of(span) && next - addr == span;
        self.altmap.is_some() && !whole && !self.vm.semantics.linux_rules()
    }

    /// Runs `f` with the call's altmap set aside (Linux passing `NULL` for part of a
    /// range): leaves then come from RAM and count as [`super::Tally::ram_leaves_by_policy`].
    pub fn without_altmap<R>(&mut self, f: impl FnOnce(&mut Self) -> R) -> R {
        let altmap = self.altmap.take();
        self.altmap_hidden = altmap.is_some();
        let result = f(self);
        self.altmap = altmap;
        self.altmap_hidden = false;
        result
    }

    fn altmap_figures(&self) -> Option<AltmapFigures> {
        self.altmap.as_deref().map(|a| AltmapFigures {
            alloc: a.alloc,
            align: a.align,
        })
    }

    /// Unmaps what the failed call mapped: the free walk over `[start, end)` (untraced:
    /// the call's summary reports the failure).
    fn roll_back(&mut self, start: u64, end: u64, in_use: InUse<'_>) {
        let altmap = self.altmap.as_deref_mut();
        let undone = Remove::run(
            self.vm,
            self.mem,
            altmap,
            Pass::Apply,
            &mut NoTrace,
            start,
            end,
            in_use,
        );
        if let Err(error) = undone {
            log::error!("vmemmap: rolling back {start:#x}-{end:#x} failed: {error}");
        }
    }
}

/// The error for an entry a walker did not expect at `va`, `level`.
pub fn conflict(va: u64, level: usize) -> MmError {
    MmError::PageTableConflict {
        va: VirtAddr(va),
        level,
    }
}
