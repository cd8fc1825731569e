//! Frames freed while the live tables change wait for the TLB flush: a change of the
//! vmemmap ([`run`]) clears entries, then flushes, then hands the unmapped leaves and
//! tables back to their allocator, so no CPU can still translate through a table or
//! into a leaf that is already someone else's memory (Linux's `mmu_gather` rule; arm64's
//! `unmap_hotplug_range` flushes each leaf before `free_hotplug_page_range` and the walk
//! cache before `free_hotplug_pgtable_page`).
//!
//! Frames are allocated straight from the inner source; only frees are deferred.

use alloc::vec::Vec;

use super::addr::PhysAddr;
use super::phys::{FramePurpose, FrameSource, PhysMem};

/// A [`PhysMem`] + [`FrameSource`] whose frees wait for [`Gather::finish`].
pub struct Gather<M> {
    inner: M,
    pending: Vec<(PhysAddr, u64, FramePurpose)>,
}

impl<M: PhysMem + FrameSource> Gather<M> {
    /// Defers the frees of `inner`.
    pub fn new(inner: M) -> Self {
        Gather {
            inner,
            pending: Vec::new(),
        }
    }

    /// Frees waiting for the flush.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Flushes with `flush`, then frees every pending frame; returns the inner memory.
    pub fn finish(mut self, flush: impl FnOnce()) -> M {
        flush();
        for (addr, size, purpose) in self.pending.drain(..) {
            self.inner.free_frames(addr, size, purpose);
        }
        self.inner
    }
}

/// Runs `change` over `mem` with frees deferred, then flushes and frees: the order of
/// every live-table change (add, its rollback, remove).
pub fn run<M: PhysMem + FrameSource, R>(
    mem: M,
    flush: impl FnOnce(),
    change: impl FnOnce(&mut Gather<M>) -> R,
) -> (R, M) {
    let mut gather = Gather::new(mem);
    let result = change(&mut gather);
    (result, gather.finish(flush))
}

impl<M: PhysMem> PhysMem for Gather<M> {
    fn read_u64(&self, addr: PhysAddr) -> u64 {
        self.inner.read_u64(addr)
    }

    fn write_u64(&mut self, addr: PhysAddr, value: u64) {
        self.inner.write_u64(addr, value);
    }

    fn fill_u64(&mut self, addr: PhysAddr, count: usize, value: u64) {
        self.inner.fill_u64(addr, count, value);
    }

    fn fill_bytes(&mut self, addr: PhysAddr, len: u64, byte: u8) {
        self.inner.fill_bytes(addr, len, byte);
    }

    fn zero(&mut self, addr: PhysAddr, len: u64) {
        self.inner.zero(addr, len);
    }
}

impl<M: FrameSource> FrameSource for Gather<M> {
    fn alloc_frames(&mut self, size: u64, align: u64, purpose: FramePurpose) -> Option<PhysAddr> {
        self.inner.alloc_frames(size, align, purpose)
    }

    fn free_frames(&mut self, addr: PhysAddr, size: u64, purpose: FramePurpose) {
        self.pending.push((addr, size, purpose));
    }
}
