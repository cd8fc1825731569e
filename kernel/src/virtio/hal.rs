//! [`PoolHal`]: virtio-drivers' hardware abstraction over the kernel's DMA pool.
//!
//! Rings and other `Dma` allocations come from [`crate::dma`]; `share` translates the
//! driver's buffers (pool memory, or direct-mapped memory when the arch declared a direct
//! map) without copying, and refuses anything else; `unshare` has nothing to undo.

use core::ptr::NonNull;

use virtio_drivers::{BufferDirection, Hal, PhysAddr};

use crate::dma;

/// The kernel's `Hal`.
pub struct PoolHal;

// SAFETY: `dma_alloc` hands out zeroed, page-aligned pool pages that nothing else owns
// until `dma_dealloc`; `mmio_phys_to_virt` returns the direct-map address of device
// memory; `share` returns the physical address of exactly the given buffer.
unsafe impl Hal for PoolHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        dma::alloc(pages).unwrap_or_else(|| {
            log::error!("virtio: DMA pool exhausted ({pages} pages wanted)");
            (0, NonNull::dangling())
        })
    }

    unsafe fn dma_dealloc(paddr: PhysAddr, _vaddr: NonNull<u8>, pages: usize) -> i32 {
        match dma::free(paddr, pages) {
            Ok(()) => 0,
            Err(e) => {
                log::error!("virtio: DMA free {paddr:#x}: {e:?}");
                -1
            }
        }
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, _size: usize) -> NonNull<u8> {
        dma::map_phys(paddr).expect("virtio: MMIO needs the DMA pool's direct map")
    }

    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
        let ptr = buffer.as_ptr() as *const u8;
        dma::virt_to_phys(ptr, buffer.len()).unwrap_or_else(|| {
            panic!("virtio: buffer {ptr:p} is neither DMA-pool nor direct-mapped memory")
        })
    }

    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _direction: BufferDirection) {}
}
