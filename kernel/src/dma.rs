//! Device-visible memory: one pool of physically contiguous pages that devices may read
//! and write (virtqueue rings, virtio requests, channel-program data).
//!
//! The arch hands the pool over once with [`init`]: a physical range and the function that
//! maps it (the direct map). s390x gives a page-aligned static of its image (RAM is
//! identity-mapped and the image is below 2 GiB, as CCW data must be); x86_64 and aarch64
//! take pages from the buddy allocator and pass `Arch::phys_to_virt`. Allocation is
//! page-granular and first-fit, pages come back zeroed, and [`DmaPages`] frees on drop.
//!
//! [`set_direct_map`] tells [`virt_to_phys`] how to translate buffers outside the pool
//! (a virtio `Hal::share` of a direct-mapped buffer); everything else is refused.

use alloc::vec;
use alloc::vec::Vec;
use core::ops::Range;
use core::ptr::NonNull;

use spin::Mutex;

/// Pool pages are this big.
pub const PAGE: usize = 4096;

/// Why a pool operation was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DmaError {
    /// [`init`] was never called.
    NoPool,
    /// A free of pages that are not an allocation of the pool.
    NotAllocated {
        /// Physical address passed in.
        phys: u64,
    },
}

static POOL: Mutex<Option<Pool>> = Mutex::new(None);
static DIRECT_MAP: Mutex<Option<(u64, u64)>> = Mutex::new(None);

struct Pool {
    phys: Range<u64>,
    virt: *mut u8,
    map: fn(u64) -> *mut u8,
    pages: PageBitmap,
}

// SAFETY: the pool's pointer only names memory the pool owns; every access goes through
// the `POOL` mutex, so moving the pool between CPUs (there is one) is sound.
unsafe impl Send for Pool {}

/// Hands `phys` (page-aligned, contiguous, mapped at `phys_to_virt(phys.start)` onwards)
/// to the pool. A second call is ignored with a warning: the first pool stays.
pub fn init(phys: Range<u64>, phys_to_virt: fn(u64) -> *mut u8) {
    let start = phys.start.next_multiple_of(PAGE as u64);
    let end = phys.end / PAGE as u64 * PAGE as u64;
    let mut pool = POOL.lock();
    if pool.is_some() {
        log::warn!(
            "dma: pool already set up; ignoring {:#x}-{:#x}",
            phys.start,
            phys.end
        );
        return;
    }
    if start >= end {
        log::error!("dma: empty pool {:#x}-{:#x}", phys.start, phys.end);
        return;
    }
    let pages = ((end - start) / PAGE as u64) as usize;
    log::info!("dma: pool range={start:#x}-{end:#x} pages={pages}");
    *pool = Some(Pool {
        phys: start..end,
        virt: phys_to_virt(start),
        map: phys_to_virt,
        pages: PageBitmap::new(pages),
    });
}

/// Whether [`init`] ran.
pub fn ready() -> bool {
    POOL.lock().is_some()
}

/// Pool pages in total and free, or `None` without a pool.
pub fn stats() -> Option<(usize, usize)> {
    POOL.lock()
        .as_ref()
        .map(|p| (p.pages.len(), p.pages.free()))
}

/// Declares that virtual `[virt_base, virt_base + len)` maps physical `[0, len)`
/// linearly (the direct map), for [`virt_to_phys`] of buffers outside the pool.
pub fn set_direct_map(virt_base: u64, len: u64) {
    *DIRECT_MAP.lock() = Some((virt_base, len));
}

/// Where the kernel reaches physical `pa` (the map given to [`init`]): device memory
/// such as PCI BARs. `None` without a pool.
pub fn map_phys(pa: u64) -> Option<NonNull<u8>> {
    let map = POOL.lock().as_ref()?.map;
    NonNull::new(map(pa))
}

/// Allocates `pages` contiguous zeroed pages: `(physical address, pointer)`.
pub fn alloc(pages: usize) -> Option<(u64, NonNull<u8>)> {
    let mut guard = POOL.lock();
    let pool = guard.as_mut()?;
    let first = pool.pages.take(pages)?;
    let offset = first * PAGE;
    let phys = pool.phys.start + offset as u64;
    // SAFETY: `offset` is inside the pool (the bitmap covers exactly its pages), whose
    // memory is mapped contiguously from `virt`.
    let ptr = unsafe { pool.virt.add(offset) };
    // SAFETY: the bitmap just gave these pages to this caller alone; they are mapped
    // and writable.
    unsafe { core::ptr::write_bytes(ptr, 0, pages * PAGE) };
    Some((phys, NonNull::new(ptr)?))
}

/// Gives back `pages` pages at `phys` that [`alloc()`] returned.
pub fn free(phys: u64, pages: usize) -> Result<(), DmaError> {
    let mut guard = POOL.lock();
    let pool = guard.as_mut().ok_or(DmaError::NoPool)?;
    let aligned = phys.is_multiple_of(PAGE as u64);
    if !pool.phys.contains(&phys) || !aligned {
        return Err(DmaError::NotAllocated { phys });
    }
    let first = ((phys - pool.phys.start) / PAGE as u64) as usize;
    if pool.pages.give_back(first, pages) {
        Ok(())
    } else {
        Err(DmaError::NotAllocated { phys })
    }
}

/// The physical address of `[ptr, ptr + len)`: pool memory, or direct-mapped memory
/// after [`set_direct_map`]. `None` for anything else (a stack or image buffer on an
/// arch whose image is not direct-mapped).
pub fn virt_to_phys(ptr: *const u8, len: usize) -> Option<u64> {
    let va = ptr as u64;
    let end = va.checked_add(len as u64)?;
    if let Some(pool) = POOL.lock().as_ref() {
        let base = pool.virt as u64;
        let size = pool.phys.end - pool.phys.start;
        if va >= base && end <= base + size {
            return Some(pool.phys.start + (va - base));
        }
    }
    let (base, size) = (*DIRECT_MAP.lock())?;
    (va >= base && end <= base.checked_add(size)?).then(|| va - base)
}

/// Pages of the pool owned by one user, freed on drop. Holds the only pointer to them.
#[derive(Debug)]
pub struct DmaPages {
    phys: u64,
    ptr: NonNull<u8>,
    pages: usize,
}

// SAFETY: the pages belong to this value alone (see `alloc`), like a `Box<[u8]>`.
unsafe impl Send for DmaPages {}

impl DmaPages {
    /// `pages` zeroed pages from the pool.
    pub fn new(pages: usize) -> Option<Self> {
        let (phys, ptr) = alloc(pages)?;
        Some(DmaPages { phys, ptr, pages })
    }

    /// Physical address of the first byte.
    pub fn phys(&self) -> u64 {
        self.phys
    }

    /// The first byte, for volatile access to memory a device writes behind our back.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Bytes owned.
    pub fn len(&self) -> usize {
        self.pages * PAGE
    }

    /// Always false: allocations are at least one page.
    pub fn is_empty(&self) -> bool {
        self.pages == 0
    }

    /// The memory, for reading.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: the pages are mapped, initialised (zeroed at allocation) and owned by
        // `self`, so the shared borrow of `self` covers them.
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.len()) }
    }

    /// The memory, for writing.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`, and the unique borrow of `self` makes this the only view.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len()) }
    }

    /// Lets the pages go without freeing them (a device may still write them).
    pub fn leak(self) {
        core::mem::forget(self);
    }
}

impl Drop for DmaPages {
    fn drop(&mut self) {
        if let Err(e) = free(self.phys, self.pages) {
            log::error!("dma: free of {:#x}: {e:?}", self.phys);
        }
    }
}

/// Which pool pages are in use, and where each allocation starts and ends.
#[derive(Clone, Debug)]
struct PageBitmap {
    used: Vec<bool>,
    /// Length of the allocation starting at each page (0 elsewhere).
    runs: Vec<usize>,
}

impl PageBitmap {
    fn new(pages: usize) -> Self {
        PageBitmap {
            used: vec![false; pages],
            runs: vec![0; pages],
        }
    }

    fn len(&self) -> usize {
        self.used.len()
    }

    fn free(&self) -> usize {
        self.used.iter().filter(|u| !**u).count()
    }

    /// First fit: the first page of `n` free pages in a row, now taken.
    fn take(&mut self, n: usize) -> Option<usize> {
        if n == 0 {
            return None;
        }
        let mut run = 0;
        for i in 0..self.used.len() {
            run = if self.used[i] { 0 } else { run + 1 };
            if run == n {
                let first = i + 1 - n;
                self.used[first..=i].fill(true);
                self.runs[first] = n;
                return Some(first);
            }
        }
        None
    }

    /// Frees the allocation of `n` pages at `first`; false if there is none such.
    fn give_back(&mut self, first: usize, n: usize) -> bool {
        if first >= self.runs.len() || self.runs[first] != n || n == 0 {
            return false;
        }
        self.runs[first] = 0;
        self.used[first..first + n].fill(false);
        true
    }
}

/// Pages of the pool host tests share.
#[cfg(test)]
pub(crate) const TEST_POOL_PAGES: usize = 64;

/// Sets up the pool once for host tests (an identity-"mapped" heap arena, as on s390x)
/// and serialises its users: the guard keeps other tests out while one counts pages.
#[cfg(test)]
pub(crate) fn test_pool() -> std::sync::MutexGuard<'static, ()> {
    static ONCE: std::sync::Once = std::sync::Once::new();
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    ONCE.call_once(|| {
        let layout =
            std::alloc::Layout::from_size_align(TEST_POOL_PAGES * PAGE, PAGE).expect("layout");
        // SAFETY: a non-zero-sized layout; the arena is leaked to the pool for good.
        let arena = unsafe { std::alloc::alloc(layout) };
        assert!(!arena.is_null());
        let base = arena as u64;
        init(base..base + (TEST_POOL_PAGES * PAGE) as u64, |pa| {
            pa as *mut u8
        });
        set_direct_map(0x1000_0000, 0x1000);
    });
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_map_translates_inside_its_window_only() {
        let _serial = test_pool();
        assert_eq!(virt_to_phys(0x1000_0800 as *const u8, 16), Some(0x800));
        assert_eq!(virt_to_phys(0x1000_0ff8 as *const u8, 16), None);
    }

    #[test]
    fn first_fit_and_exact_frees() {
        let mut b = PageBitmap::new(8);
        assert_eq!(b.take(3), Some(0));
        assert_eq!(b.take(2), Some(3));
        assert_eq!(b.take(4), None);
        assert!(!b.give_back(0, 2), "size must match the allocation");
        assert!(!b.give_back(1, 1), "not the start of an allocation");
        assert!(b.give_back(0, 3));
        assert_eq!(b.free(), 6);
        assert_eq!(b.take(3), Some(0));
        assert_eq!(b.take(3), Some(5));
        assert_eq!(b.take(0), None);
        assert_eq!(b.free(), 0);
    }

    #[test]
    fn global_pool_allocates_zeroed_pages_and_translates() {
        let _serial = test_pool();
        let (total, free_before) = stats().expect("pool");
        assert_eq!(total, TEST_POOL_PAGES);
        let mut a = DmaPages::new(2).expect("two pages");
        assert!(a.bytes().iter().all(|&b| b == 0), "zeroed");
        a.bytes_mut()[5] = 7;
        let ptr = a.bytes()[5..].as_ptr();
        assert_eq!(virt_to_phys(ptr, 1), Some(a.phys() + 5));
        assert_eq!(
            virt_to_phys(ptr, TEST_POOL_PAGES * PAGE),
            None,
            "runs past the pool"
        );
        let b = DmaPages::new(2).expect("two more");
        assert_eq!(stats(), Some((total, free_before - 4)));
        assert_eq!(
            free(b.phys(), 1),
            Err(DmaError::NotAllocated { phys: b.phys() })
        );
        drop(a);
        drop(b);
        assert_eq!(stats(), Some((total, free_before)));
        assert!(DmaPages::new(TEST_POOL_PAGES + 1).is_none(), "too big");
    }
}
