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

/// Frees a gather keeps room for from the start (more are recorded as the heap allows).
const ROOM: usize = 256;

/// A [`PhysMem`] + [`FrameSource`] whose frees wait for the flush.
///
/// The list of waiting frees lives on the heap. When the heap refuses room for one more,
/// the gather flushes early and frees what waits, then the new frame: the order (entry
/// cleared, flush, free) holds for every frame, so a change never fails and never ends
/// in `handle_alloc_error` because of this list.
pub struct Gather<M, Fl: FnMut()> {
    inner: M,
    flush: Fl,
    pending: Vec<(PhysAddr, u64, FramePurpose)>,
    early_flushes: u32,
}

impl<M: PhysMem + FrameSource, Fl: FnMut()> Gather<M, Fl> {
    /// Defers the frees of `inner` until `flush` ran.
    pub fn new(inner: M, flush: Fl) -> Self {
        let mut pending = Vec::new();
        // Best effort: without room the gather flushes early instead.
        let _ = pending.try_reserve(ROOM);
        Gather {
            inner,
            flush,
            pending,
            early_flushes: 0,
        }
    }

    /// Frees waiting for the flush.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Flushes the heap refused room for the list forced before the end.
    pub fn early_flushes(&self) -> u32 {
        self.early_flushes
    }

    /// Flushes, then frees every pending frame; returns the inner memory.
    pub fn finish(mut self) -> M {
        self.flush_and_free();
        self.inner
    }

    fn flush_and_free(&mut self) {
        (self.flush)();
        for (addr, size, purpose) in self.pending.drain(..) {
            self.inner.free_frames(addr, size, purpose);
        }
    }
}

/// Runs `change` over `mem` with frees deferred, then flushes and frees: the order of
/// every live-table change (add, its rollback, remove).
pub fn run<M: PhysMem + FrameSource, R>(
    mem: M,
    flush: impl FnMut(),
    change: impl FnOnce(&mut Gather<M, &mut dyn FnMut()>) -> R,
) -> (R, M) {
    let mut flush = flush;
    let mut gather = Gather::new(mem, &mut flush as &mut dyn FnMut());
    let result = change(&mut gather);
    (result, gather.finish())
}

impl<M: PhysMem, Fl: FnMut()> PhysMem for Gather<M, Fl> {
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

impl<M: PhysMem + FrameSource, Fl: FnMut()> FrameSource for Gather<M, Fl> {
    fn alloc_frames(&mut self, size: u64, align: u64, purpose: FramePurpose) -> Option<PhysAddr> {
        self.inner.alloc_frames(size, align, purpose)
    }

    fn free_frames(&mut self, addr: PhysAddr, size: u64, purpose: FramePurpose) {
        if self.pending.try_reserve(1).is_err() {
            // The caller cleared the entry already: flushing now keeps the order.
            self.early_flushes += 1;
            self.flush_and_free();
            self.inner.free_frames(addr, size, purpose);
            return;
        }
        self.pending.push((addr, size, purpose));
    }
}
