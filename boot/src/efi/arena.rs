//! Memory the loader sets aside before ExitBootServices (LoaderData, so the kernel sees
//! it as BOOTLOADER_RECLAIMABLE): a bump arena for responses and strings, and the
//! frames for the page tables. UEFI identity-maps all of it while the loader runs.

use alloc::string::String;

use boot::paging::FrameSource;
use boot::protocol::MemmapEntry;
use uefi::boot::{self as bs, AllocateType, MemoryType};

use super::err;

/// Allocates `pages` zeroed LoaderData pages; returns the physical base.
fn pages(pages: usize) -> Result<u64, String> {
    let p = bs::allocate_pages(AllocateType::AnyPages, MemoryType::LOADER_DATA, pages)
        .map_err(|e| err("allocating loader memory", e))?;
    // SAFETY: freshly allocated, identity-mapped, `pages` pages long.
    unsafe { core::ptr::write_bytes(p.as_ptr(), 0, pages * 4096) };
    Ok(p.as_ptr() as u64)
}

/// A bump allocator over a block of LoaderData pages.
pub struct Arena {
    base: u64,
    len: u64,
    used: u64,
}

impl Arena {
    /// `n` zeroed pages.
    pub fn new(n: usize) -> Result<Self, String> {
        Ok(Self {
            base: pages(n)?,
            len: n as u64 * 4096,
            used: 0,
        })
    }

    /// One past the last byte (physical).
    pub fn end(&self) -> u64 {
        self.base + self.len
    }

    /// Places `v` (8-byte aligned at least); returns its physical address.
    pub fn put<T>(&mut self, v: T) -> u64 {
        let align = core::mem::align_of::<T>().max(16) as u64;
        let at = (self.base + self.used).next_multiple_of(align);
        let size = core::mem::size_of::<T>() as u64;
        assert!(at + size <= self.end(), "loader arena exhausted");
        // SAFETY: `at` is aligned for T, inside this arena, and not handed out before.
        unsafe { (at as *mut T).write(v) };
        self.used = at + size - self.base;
        at
    }

    /// Places a NUL-terminated copy of `s`; returns its physical address.
    pub fn cstr(&mut self, s: &str) -> u64 {
        let at = self.base + self.used;
        assert!(at + (s.len() as u64) < self.end(), "loader arena exhausted");
        // SAFETY: the bytes are inside this arena and not handed out before; the
        // arena was zeroed, so the terminator is already there.
        unsafe { core::ptr::copy_nonoverlapping(s.as_ptr(), at as *mut u8, s.len()) };
        self.used += s.len() as u64 + 1;
        at
    }

    /// Splits this arena into `n` memory-map entries and `n` pointers.
    pub fn split_memmap(&self, n: usize) -> (&'static mut [MemmapEntry], &'static mut [u64]) {
        assert!(n as u64 * 32 <= self.len);
        // SAFETY: the arena is `len` bytes of zeroed, 4 KiB-aligned memory owned by the
        // loader for the rest of its life; the two slices do not overlap.
        unsafe {
            (
                core::slice::from_raw_parts_mut(self.base as *mut MemmapEntry, n),
                core::slice::from_raw_parts_mut((self.base + n as u64 * 24) as *mut u64, n),
            )
        }
    }
}

/// Page-table frames, handed out in order.
pub struct Frames {
    base: u64,
    count: usize,
    used: usize,
}

impl Frames {
    /// `count` zeroed frames.
    pub fn new(count: usize) -> Result<Self, String> {
        Ok(Self {
            base: pages(count)?,
            count,
            used: 0,
        })
    }

    /// Frames handed out so far.
    pub fn used(&self) -> usize {
        self.used
    }
}

impl FrameSource for Frames {
    fn alloc(&mut self) -> Option<u64> {
        if self.used == self.count {
            return None;
        }
        self.used += 1;
        Some(self.base + 4096 * (self.used as u64 - 1))
    }

    fn table(&mut self, pa: u64) -> &mut [u64; 512] {
        assert!(pa >= self.base && pa < self.base + 4096 * self.count as u64);
        // SAFETY: `pa` is a frame of this (identity-mapped, zeroed) block, and the
        // returned borrow is tied to `self`, so no two tables alias mutably.
        unsafe { &mut *(pa as *mut [u64; 512]) }
    }
}
