//! The walker's public calls: [`Vmemmap::populate`] and [`Vmemmap::free`] (by address
//! or by pfn), the side-effect-free [`Vmemmap::check_free`], and releasing the root. Each
//! checks its range, then runs the arch's walk with the installed tracer or with none.

use super::free::{self, Remove};
use super::trace::{NoTrace, Sink};
use super::{InUse, Populate, Vmemmap, VmemmapArch};
use crate::mm::addr::{PAGE_SIZE, Pfn, VirtAddr};
use crate::mm::altmap::VmemAltmap;
use crate::mm::error::MmError;
use crate::mm::phys::{FramePurpose, FrameSource, PhysMem};

impl<F: VmemmapArch> Vmemmap<F> {
    /// Maps struct pages `[start, end)` (page-aligned, inside the vmemmap window) through
    /// the arch's `vmemmap_populate`. Already mapped parts are left alone. On failure
    /// nothing has changed (`in_use`: see [`InUse`]).
    pub fn populate<M: PhysMem + FrameSource>(
        &mut self,
        mem: &mut M,
        start: VirtAddr,
        end: VirtAddr,
        altmap: Option<&mut VmemAltmap>,
        in_use: InUse<'_>,
    ) -> Result<(), MmError> {
        self.check_range(start, end)?;
        let (start, end) = (start.0, end.0);
        match self.tracer.take() {
            None => Populate::run(self, mem, altmap, &mut NoTrace, start, end, in_use),
            Some(mut tracer) => {
                let sink = &mut Sink(&mut *tracer);
                let result = Populate::run(self, mem, altmap, sink, start, end, in_use);
                self.tracer = Some(tracer);
                result
            }
        }
    }

    /// Maps the struct pages of frames `[first, first + nr_pages)`.
    pub fn populate_pfns<M: PhysMem + FrameSource>(
        &mut self,
        mem: &mut M,
        first: Pfn,
        nr_pages: u64,
        altmap: Option<&mut VmemAltmap>,
        in_use: InUse<'_>,
    ) -> Result<(), MmError> {
        let (start, end) = self.memmap_range(first, nr_pages);
        self.populate(mem, start, end, altmap, in_use)
    }

    /// Unmaps struct pages `[start, end)` through the arch's `vmemmap_free`: base leaves
    /// in the range, huge leaves no other frame in use needs (`in_use`), and tables left
    /// empty. Leaves from an altmap go back to it (`altmap` must be the one they came
    /// from). Validates first: on error nothing has changed.
    pub fn free<M: PhysMem + FrameSource>(
        &mut self,
        mem: &mut M,
        start: VirtAddr,
        end: VirtAddr,
        mut altmap: Option<&mut VmemAltmap>,
        in_use: InUse<'_>,
    ) -> Result<(), MmError> {
        self.check_free(mem, start, end, altmap.as_deref_mut(), in_use)?;
        let (pass, start, end) = (free::Pass::Apply, start.0, end.0);
        match self.tracer.take() {
            None => Remove::run(self, mem, altmap, pass, &mut NoTrace, start, end, in_use),
            Some(mut tracer) => {
                let sink = &mut Sink(&mut *tracer);
                let result = Remove::run(self, mem, altmap, pass, sink, start, end, in_use);
                self.tracer = Some(tracer);
                result
            }
        }
    }

    /// Unmaps the struct pages of frames `[first, first + nr_pages)`.
    pub fn free_pfns<M: PhysMem + FrameSource>(
        &mut self,
        mem: &mut M,
        first: Pfn,
        nr_pages: u64,
        altmap: Option<&mut VmemAltmap>,
        in_use: InUse<'_>,
    ) -> Result<(), MmError> {
        let (start, end) = self.memmap_range(first, nr_pages);
        self.free(mem, start, end, altmap, in_use)
    }

    /// Checks that [`Vmemmap::free`] would succeed, changing nothing.
    pub fn check_free<M: PhysMem + FrameSource>(
        &mut self,
        mem: &mut M,
        start: VirtAddr,
        end: VirtAddr,
        altmap: Option<&mut VmemAltmap>,
        in_use: InUse<'_>,
    ) -> Result<(), MmError> {
        self.check_range(start, end)?;
        let pass = free::Pass::Check;
        Remove::run(
            self,
            mem,
            altmap,
            pass,
            &mut NoTrace,
            start.0,
            end.0,
            in_use,
        )
    }

    /// Frees the root table if this walker allocated it. Everything must be unmapped.
    pub fn release_root<M: PhysMem + FrameSource>(self, mem: &mut M) -> Result<(), MmError> {
        if !self.table_is_empty(mem, 0, self.root) {
            return Err(MmError::PageTableConflict {
                va: VirtAddr(F::MM.vmemmap_base),
                level: 0,
            });
        }
        if self.owns_root {
            let geometry = &F::LEVELS[0];
            mem.free_frames(self.root, geometry.table_bytes, FramePurpose::PageTable);
        }
        Ok(())
    }

    /// The memmap addresses of frames `[first, first + nr_pages)`.
    pub fn memmap_range(&self, first: Pfn, nr_pages: u64) -> (VirtAddr, VirtAddr) {
        (
            F::MM.pfn_to_page(first),
            F::MM.pfn_to_page(first.add(nr_pages)),
        )
    }

    fn check_range(&self, start: VirtAddr, end: VirtAddr) -> Result<(), MmError> {
        if start >= end {
            return Err(MmError::Empty);
        }
        for va in [start, end] {
            if !va.is_aligned(PAGE_SIZE) {
                return Err(MmError::Misaligned {
                    what: "vmemmap address",
                    value: va.0,
                    align: PAGE_SIZE,
                });
            }
        }
        let (base, limit) = (F::MM.vmemmap_base, F::MM.vmemmap_end());
        if start.0 < base || end.0 > limit {
            return Err(MmError::OutOfRange {
                what: "vmemmap address",
                value: if start.0 < base { start.0 } else { end.0 },
                limit,
            });
        }
        Ok(())
    }
}
