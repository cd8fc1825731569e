//! The kernel heap for `alloc`: chunks of RAM under a first-fit allocator (`chunks`),
//! with no arena in the image. The first chunk ([`BOOT_CHUNK`] bytes) is carved from
//! boot RAM by `init` before anything allocates, and shows in the memory map as
//! `kind=heap`. Once the buddy allocator is up, the memory manager grows the heap with
//! buddy blocks whenever fewer than [`LOW_WATER`] bytes are free or an allocation was
//! refused (`LiveMm::tend_heap`), and gives a grown chunk back once nothing lives in it.
//! Memmaps and page tables never come from here.
//!
//! An allocation the heap cannot serve fails: `try_reserve` and friends see an error, and
//! only an infallible allocation would end in `handle_alloc_error`. Every path an outside
//! event drives (hotplug, regions, virtio, the shell) allocates fallibly, which the fault
//! sweep proves with [`faults`] (`inject heap N`): the Nth heap allocation fails.
//!
//! Host builds use the system allocator; host test binaries wrap it in
//! [`HostFaultAlloc`], which applies the heap fault rule of the calling thread, so the
//! same sweeps run there.

mod chunks;
pub mod fallible;
pub mod faults;

pub use chunks::{ChunkedHeap, HeapStats, MAX_CHUNKS, MAX_GROWTH, MIN_CHUNK};
use faults::HeapFaults;

/// Bytes of the first chunk, carved from boot RAM.
pub const BOOT_CHUNK: u64 = 1 << 20;
/// The heap grows when fewer bytes than this are free.
pub const LOW_WATER: usize = 256 << 10;
/// The smallest growth.
pub const GROW_MIN: usize = 2 * LOW_WATER;
/// An empty grown chunk is given back only if at least this much stays free without it
/// (more than [`LOW_WATER`] plus any chunk the heap just grew by, so it never thrashes).
pub const KEEP_FREE: usize = 4 * LOW_WATER;

#[cfg(target_os = "none")]
mod kernel_heap {
    use core::alloc::{GlobalAlloc, Layout};
    use core::ptr::{NonNull, null_mut};

    use super::ChunkedHeap;

    /// The heap; every allocation and free takes this lock (never from an interrupt).
    pub(super) static HEAP: spin::Mutex<ChunkedHeap> = spin::Mutex::new(ChunkedHeap::new());

    struct KernelHeap;

    // SAFETY: allocations come from chunks the heap owns exclusively; `dealloc` hands a
    // pointer back to the chunk it came from, under the lock.
    unsafe impl GlobalAlloc for KernelHeap {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            HEAP.lock()
                .alloc(layout)
                .map_or(null_mut(), NonNull::as_ptr)
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            if let Some(ptr) = NonNull::new(ptr) {
                // SAFETY: the caller passes a live allocation of this allocator with its
                // layout (the `GlobalAlloc` contract).
                unsafe { HEAP.lock().dealloc(ptr, layout) };
            }
        }
    }

    #[global_allocator]
    static GLOBAL: KernelHeap = KernelHeap;
}

#[cfg(not(target_os = "none"))]
mod host_faults {
    use core::cell::Cell;

    use super::HeapFaults;

    std::thread_local! {
        /// The calling thread's heap fault rule (host tests).
        pub(super) static FAULTS: Cell<HeapFaults> = const { Cell::new(HeapFaults::new()) };
    }
}

/// The system allocator, failing where the calling thread's heap fault rule says so: the
/// global allocator of host test binaries (the kernel's and the arch crates'), so the
/// heap fault sweeps run on the host too.
#[cfg(not(target_os = "none"))]
pub struct HostFaultAlloc;

#[cfg(not(target_os = "none"))]
mod host_alloc {
    use std::alloc::{GlobalAlloc, Layout, System};

    use super::HostFaultAlloc;
    use super::host_faults::FAULTS;

    fn injected() -> bool {
        FAULTS
            .try_with(|cell| {
                let mut faults = cell.get();
                let fire = faults.check();
                cell.set(faults);
                fire
            })
            .unwrap_or(false)
    }

    // SAFETY: forwards to the system allocator, or returns null (a refused allocation).
    unsafe impl GlobalAlloc for HostFaultAlloc {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            if injected() {
                return core::ptr::null_mut();
            }
            // SAFETY: same contract as ours.
            unsafe { System.alloc(layout) }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: `ptr` came from `System.alloc` (through `alloc` or `realloc`).
            unsafe { System.dealloc(ptr, layout) }
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            if injected() {
                return core::ptr::null_mut();
            }
            // SAFETY: same contract as ours.
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }
}

#[cfg(all(test, not(target_os = "none")))]
#[global_allocator]
static TEST_ALLOC: HostFaultAlloc = HostFaultAlloc;

/// Runs `f` on the heap fault rule (the kernel's; on the host, the calling thread's).
pub fn with_faults<R>(f: impl FnOnce(&mut HeapFaults) -> R) -> R {
    #[cfg(target_os = "none")]
    {
        f(kernel_heap::HEAP.lock().faults())
    }
    #[cfg(not(target_os = "none"))]
    {
        host_faults::FAULTS.with(|cell| {
            let mut faults = cell.get();
            let result = f(&mut faults);
            cell.set(faults);
            result
        })
    }
}

/// While the returned guard lives, the calling thread's heap fault rule is set aside
/// (host simulators' own storage is not the code under test). Host only.
#[cfg(not(target_os = "none"))]
pub fn exempt_from_faults() -> FaultExemption {
    let saved = with_faults(core::mem::take);
    FaultExemption { saved }
}

/// See [`exempt_from_faults`]: restores the rule (with this thread's counts) on drop.
#[cfg(not(target_os = "none"))]
pub struct FaultExemption {
    saved: HeapFaults,
}

#[cfg(not(target_os = "none"))]
impl Drop for FaultExemption {
    fn drop(&mut self) {
        with_faults(|f| *f = self.saved);
    }
}

/// Carves the first chunk from the largest usable span of `memory` (marked `kind=heap`
/// there, so nothing else uses it) and hands it to the heap. Returns the chunk, or `None`
/// when no usable span is big enough (every allocation then fails).
#[cfg(target_os = "none")]
pub fn init(
    memory: &mut crate::boot_info::MemoryMap,
    phys_to_virt: fn(u64) -> *mut u8,
) -> Option<core::ops::Range<u64>> {
    let chunk = memory.take(crate::boot_info::MemKind::Heap, BOOT_CHUNK)?;
    let bytes = (chunk.end - chunk.start) as usize;
    // SAFETY: the chunk was usable RAM, covered by the direct map, and is now marked as
    // the heap's in the memory map, so nothing else will use it.
    let added = unsafe {
        kernel_heap::HEAP
            .lock()
            .add_chunk(phys_to_virt(chunk.start), bytes)
    };
    added.then_some(chunk)
}

/// The heap's figures (all zero on the host, apart from the injected count).
pub fn stats() -> HeapStats {
    #[cfg(target_os = "none")]
    {
        kernel_heap::HEAP.lock().stats()
    }
    #[cfg(not(target_os = "none"))]
    {
        HeapStats {
            injected: with_faults(|f| f.injected()),
            ..HeapStats::default()
        }
    }
}

/// Bytes the heap wants added now (see [`ChunkedHeap::wants`]); never on the host.
pub fn wants() -> Option<usize> {
    #[cfg(target_os = "none")]
    {
        kernel_heap::HEAP.lock().wants(LOW_WATER, GROW_MIN)
    }
    #[cfg(not(target_os = "none"))]
    {
        None
    }
}

/// Adds a chunk; `false` if the heap did not take it (no slot left).
///
/// # Safety
/// As [`ChunkedHeap::add_chunk`]: the memory is valid, unused, and the heap's until
/// [`take_empty`] returns it.
pub unsafe fn add_chunk(bottom: *mut u8, bytes: usize) -> bool {
    #[cfg(target_os = "none")]
    {
        // SAFETY: the caller's guarantee.
        unsafe { kernel_heap::HEAP.lock().add_chunk(bottom, bytes) }
    }
    #[cfg(not(target_os = "none"))]
    {
        let _ = (bottom, bytes);
        false
    }
}

/// A grown chunk that is empty and not needed to keep [`KEEP_FREE`] bytes free, taken
/// out of the heap: its memory is the caller's again.
pub fn take_empty() -> Option<(*mut u8, usize)> {
    #[cfg(target_os = "none")]
    {
        kernel_heap::HEAP.lock().take_empty(KEEP_FREE)
    }
    #[cfg(not(target_os = "none"))]
    {
        None
    }
}

#[cfg(test)]
mod tests;
