//! Physical memory as the generic code sees it: word access to tables ([`PhysMem`]) and a
//! source of RAM frames for tables and RAM leaves ([`FrameSource`]).
//!
//! On the target the arch crate implements both over its direct map and the buddy
//! allocator; on the host [`super::sim::SimMemory`] implements both.

use super::addr::PhysAddr;

/// Word and byte access to physical memory (tables are read and written through this).
pub trait PhysMem {
    /// Reads the naturally aligned `u64` at `addr`.
    fn read_u64(&self, addr: PhysAddr) -> u64;
    /// Writes the naturally aligned `u64` at `addr`.
    fn write_u64(&mut self, addr: PhysAddr, value: u64);

    /// Writes `value` to `count` consecutive words starting at `addr`.
    fn fill_u64(&mut self, addr: PhysAddr, count: usize, value: u64) {
        for i in 0..count as u64 {
            self.write_u64(addr.add(i * 8), value);
        }
    }

    /// `memset`: sets `len` bytes at `addr` (both 8-byte aligned) to `byte`.
    fn fill_bytes(&mut self, addr: PhysAddr, len: u64, byte: u8) {
        self.fill_u64(addr, (len / 8) as usize, u64::from_ne_bytes([byte; 8]));
    }

    /// Zeroes `len` bytes at `addr`.
    fn zero(&mut self, addr: PhysAddr, len: u64) {
        self.fill_bytes(addr, len, 0);
    }
}

/// What RAM frames are for (lets sources account and fault-inject per purpose).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FramePurpose {
    /// A translation table.
    PageTable,
    /// A leaf backing memmap (or other mapped data).
    Leaf,
}

/// A source of RAM frames: sizes are powers of two from 2 KiB (s390x page tables) up to
/// the largest leaf; the returned block is aligned to `align`. Contents are undefined.
pub trait FrameSource {
    /// Allocates `size` bytes aligned to `align`, or `None`.
    fn alloc_frames(&mut self, size: u64, align: u64, purpose: FramePurpose) -> Option<PhysAddr>;
    /// Returns a block obtained from [`FrameSource::alloc_frames`] with the same size.
    fn free_frames(&mut self, addr: PhysAddr, size: u64, purpose: FramePurpose);
}
