//! The kernel heap for `alloc`: a fixed arena in the image, managed by a free-list
//! allocator (the `linked_list_allocator` crate). Sized for kernel bookkeeping (section
//! records, region lists); memmaps and page tables never come from here.

use core::sync::atomic::{AtomicBool, Ordering};

use linked_list_allocator::LockedHeap;

/// Bytes of the boot heap arena.
pub const HEAP_BYTES: usize = 4 << 20;

#[repr(C, align(4096))]
struct Arena([u8; HEAP_BYTES]);

static mut ARENA: Arena = Arena([0; HEAP_BYTES]);

#[global_allocator]
static HEAP: LockedHeap = LockedHeap::empty();

/// Hands the arena to the allocator. Called once, early in [`crate::main`].
pub fn init() {
    static DONE: AtomicBool = AtomicBool::new(false);
    if DONE.swap(true, Ordering::AcqRel) {
        return;
    }
    let arena = &raw mut ARENA;
    // SAFETY: `ARENA` is used nowhere else, and the `DONE` flag makes this line run
    // once, so the allocator becomes the arena's only owner.
    unsafe { HEAP.lock().init(arena.cast::<u8>(), HEAP_BYTES) };
}

/// Bytes currently allocated from the heap.
pub fn used() -> usize {
    HEAP.lock().used()
}
