//! RAM frames and physical access for the live walker: page-table pages and RAM leaves
//! come from a boot bump allocator until the buddy allocator is online, then from the
//! buddy. Tables are read and written through the arch's direct map.

use core::marker::PhantomData;

use crate::mm::addr::{PAGE_SHIFT, PAGE_SIZE, Pfn, PhysAddr};
use crate::mm::buddy::Buddy;
use crate::mm::phys::{FramePurpose, FrameSource, PhysMem};

use super::memmap::LiveMemmap;

/// How the kernel reaches physical memory: a pointer for a physical address (identity on
/// s390x, the HHDM on x86_64 and aarch64).
pub type PhysToVirt = fn(u64) -> *mut u8;

/// Read-only word access to physical memory through the direct map (software walks).
#[derive(Clone, Copy)]
pub struct DirectMap(pub PhysToVirt);

impl PhysMem for DirectMap {
    fn read_u64(&self, addr: PhysAddr) -> u64 {
        assert!(
            addr.0.is_multiple_of(8),
            "unaligned table word {:#x}",
            addr.0
        );
        // SAFETY: walks read entries of live tables, which are RAM covered by the direct
        // map, at 8-byte aligned addresses (checked above).
        unsafe { core::ptr::read_volatile((self.0)(addr.0).cast::<u64>()) }
    }

    fn write_u64(&mut self, addr: PhysAddr, _value: u64) {
        panic!("DirectMap is read-only (write at {:#x})", addr.0);
    }
}

/// A bump allocator over one RAM range, used before the buddy allocator exists.
#[derive(Clone, Copy, Debug)]
pub struct Bump {
    /// First byte of the range.
    pub start: u64,
    /// Next free byte.
    pub next: u64,
    /// One past the last byte.
    pub end: u64,
    /// Bytes given back during a rollback (not reusable by a bump allocator).
    pub leaked: u64,
}

impl Bump {
    /// An allocator over `[start, end)`.
    pub fn new(start: u64, end: u64) -> Self {
        Bump {
            start,
            next: start,
            end,
            leaked: 0,
        }
    }

    fn alloc(&mut self, size: u64, align: u64) -> Option<PhysAddr> {
        let at = self.next.next_multiple_of(align.max(8));
        let end = at.checked_add(size).filter(|&e| e <= self.end)?;
        self.next = end;
        Some(PhysAddr(at))
    }
}

/// Where frames come from right now.
pub enum Source<'a> {
    /// Boot: the bump allocator.
    Bump(&'a mut Bump),
    /// After boot: the buddy allocator over the memmap.
    Buddy(&'a mut Buddy, &'a mut LiveMemmap),
}

/// `PhysMem + FrameSource` for the live machine.
pub struct LiveFrames<'a> {
    phys_to_virt: PhysToVirt,
    source: Source<'a>,
    _not_send: PhantomData<*mut u8>,
}

impl<'a> LiveFrames<'a> {
    /// Frames from `source`, tables accessed through `phys_to_virt`.
    pub fn new(phys_to_virt: PhysToVirt, source: Source<'a>) -> Self {
        LiveFrames {
            phys_to_virt,
            source,
            _not_send: PhantomData,
        }
    }

    fn word(&self, addr: PhysAddr) -> *mut u64 {
        assert!(
            addr.0.is_multiple_of(8),
            "unaligned table word {:#x}",
            addr.0
        );
        (self.phys_to_virt)(addr.0).cast::<u64>()
    }
}

/// Buddy order of a block of `size` bytes (at least one page).
fn order_of(size: u64) -> u32 {
    size.max(PAGE_SIZE)
        .div_ceil(PAGE_SIZE)
        .next_power_of_two()
        .trailing_zeros()
}

impl PhysMem for LiveFrames<'_> {
    fn read_u64(&self, addr: PhysAddr) -> u64 {
        // SAFETY: the walker only reads words of tables it owns or the live root, all in
        // RAM covered by the direct map, and 8-byte aligned (checked in `word`).
        unsafe { core::ptr::read_volatile(self.word(addr)) }
    }

    fn write_u64(&mut self, addr: PhysAddr, value: u64) {
        // SAFETY: as in `read_u64`; tables are written only by this single-CPU walker.
        unsafe { core::ptr::write_volatile(self.word(addr), value) }
    }
}

impl FrameSource for LiveFrames<'_> {
    fn alloc_frames(&mut self, size: u64, align: u64, _purpose: FramePurpose) -> Option<PhysAddr> {
        match &mut self.source {
            Source::Bump(bump) => bump.alloc(size, align),
            Source::Buddy(buddy, memmap) => {
                let order = order_of(size);
                // Buddy blocks are naturally aligned to their size; larger alignments
                // are never asked for by the formats (tables align to at most 16 KiB).
                if align > PAGE_SIZE << order {
                    return None;
                }
                let pfn = buddy.alloc(*memmap, order).ok()?;
                Some(pfn.addr())
            }
        }
    }

    fn free_frames(&mut self, addr: PhysAddr, size: u64, _purpose: FramePurpose) {
        match &mut self.source {
            Source::Bump(bump) => bump.leaked += size,
            Source::Buddy(buddy, memmap) => {
                let pfn = Pfn(addr.0 >> PAGE_SHIFT);
                if let Err(e) = buddy.free(*memmap, pfn, order_of(size)) {
                    log::error!("freeing frame {:#x} ({size} bytes): {e:?}", addr.0);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_round_up_to_whole_pages() {
        assert_eq!(order_of(2048), 0);
        assert_eq!(order_of(4096), 0);
        assert_eq!(order_of(16384), 2);
        assert_eq!(order_of(1 << 21), 9);
        assert_eq!(order_of(12288), 2);
    }

    #[test]
    fn bump_aligns_and_refuses_overflow() {
        let mut b = Bump::new(0x1000, 0x9000);
        assert_eq!(b.alloc(0x800, 0x800), Some(PhysAddr(0x1000)));
        assert_eq!(b.alloc(0x4000, 0x1000), Some(PhysAddr(0x2000)));
        assert_eq!(b.alloc(0x4000, 0x4000), None, "0x8000 + 0x4000 > end");
        assert_eq!(b.next, 0x6000);
    }
}
