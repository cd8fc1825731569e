//! Growing and shrinking the kernel heap with boot-RAM buddy blocks (see [`crate::heap`]).
//!
//! The heap never calls the buddy allocator itself (an allocation can happen while the
//! memory manager is in the middle of an operation); the memory manager tends it at the
//! points where it holds no other borrow: before every add and remove, before every
//! hotplug event and shell command.

use crate::heap;
use crate::mm::addr::{PAGE_SHIFT, PAGE_SIZE, Pfn};
use crate::mm::buddy::MAX_ORDER;
use crate::mm::vmemmap::VmemmapArch;

use super::LiveMm;

impl<F: VmemmapArch> LiveMm<F> {
    /// Grows the heap while it wants memory and the buddy has a block for it, then hands
    /// back grown chunks that are empty and not needed. A failed growth is not an error:
    /// the heap keeps refusing what it cannot serve. Returns whether the heap grew.
    pub fn tend_heap(&mut self) -> bool {
        let mut grew = false;
        while let Some(bytes) = heap::wants() {
            let pages = (bytes as u64).div_ceil(PAGE_SIZE).next_power_of_two();
            let order = pages.trailing_zeros().min(MAX_ORDER);
            let Ok(pfn) = self.buddy.alloc(&mut self.memmap, order) else {
                log::warn!("heap: cannot grow by {bytes} bytes: the buddy allocator has no block");
                break;
            };
            let chunk_bytes = PAGE_SIZE << order;
            let bottom = (self.config.phys_to_virt)(pfn.addr().0);
            // SAFETY: the block was just allocated from the buddy (boot RAM, in the direct
            // map), so nothing else uses it; the heap owns it until `take_empty` returns it.
            if !unsafe { heap::add_chunk(bottom, chunk_bytes as usize) } {
                self.give_back(pfn, order);
                break;
            }
            self.heap_pages += 1 << order;
            grew = true;
            log::debug!("heap: grown by {chunk_bytes} bytes at {:#x}", pfn.addr().0);
        }
        while let Some((bottom, bytes)) = heap::take_empty() {
            let phys = bottom as u64 - (self.config.phys_to_virt)(0) as u64;
            let order = (bytes as u64 >> PAGE_SHIFT).trailing_zeros();
            self.give_back(Pfn(phys >> PAGE_SHIFT), order);
            self.heap_pages -= 1 << order;
            log::debug!("heap: gave back {bytes} bytes at {phys:#x}");
        }
        grew
    }

    /// Pages the heap holds from the buddy allocator.
    pub fn heap_pages(&self) -> u64 {
        self.heap_pages
    }

    fn give_back(&mut self, pfn: Pfn, order: u32) {
        if let Err(e) = self.buddy.free(&mut self.memmap, pfn, order) {
            log::error!("heap: returning block {pfn} order {order} failed: {e}");
        }
    }
}
