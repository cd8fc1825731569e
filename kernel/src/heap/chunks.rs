//! The kernel heap's allocator: a first-fit free list (the `linked_list_allocator`
//! crate) over up to [`MAX_CHUNKS`] separate chunks of memory. The first chunk is carved
//! from boot RAM before anything else runs; later chunks are buddy blocks handed over by
//! the memory manager when the heap runs low, and handed back once they are empty again.
//!
//! Nothing here touches the memory manager: the heap only says what it wants
//! ([`ChunkedHeap::wants`]) and what it can give back ([`ChunkedHeap::take_empty`]); the
//! memory manager does both at points where it holds no other borrow (see
//! `LiveMm::tend_heap`). An allocation the chunks cannot serve fails (a null pointer for
//! the global allocator, an `Err` for `try_reserve`), and the size is remembered so the
//! next growth is at least that big.

use core::alloc::Layout;
use core::ptr::NonNull;

use linked_list_allocator::Heap;

use super::faults::HeapFaults;

/// Most chunks the heap holds.
pub const MAX_CHUNKS: usize = 64;

/// Smallest chunk taken (one page).
pub const MIN_CHUNK: usize = 4096;

/// Largest chunk asked for (the buddy allocator's largest block, 4 MiB). A request too
/// big for a chunk of this size fails without asking the heap to grow.
pub const MAX_GROWTH: usize = 4 << 20;

/// Figures for `mem.heap`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeapStats {
    /// Bytes handed out and not yet freed.
    pub used: usize,
    /// Bytes of all chunks.
    pub bytes: usize,
    /// Chunks held.
    pub chunks: usize,
    /// Chunks added after the first (growths).
    pub grows: u64,
    /// Chunks handed back.
    pub shrinks: u64,
    /// Allocations refused for lack of room (injected failures not counted).
    pub failures: u64,
    /// Allocations refused by fault injection.
    pub injected: u64,
}

/// Chunks of heap memory with one free list each.
pub struct ChunkedHeap {
    chunks: [Heap; MAX_CHUNKS],
    count: usize,
    grows: u64,
    shrinks: u64,
    failures: u64,
    /// Largest request refused since the heap last grew.
    deficit: usize,
    faults: HeapFaults,
}

// SAFETY: the chunks' pointers name memory the heap owns exclusively; the kernel keeps
// the heap behind a lock, so moving it between CPUs (there is one) is sound.
unsafe impl Send for ChunkedHeap {}

impl Default for ChunkedHeap {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedHeap {
    /// A heap with no memory.
    pub const fn new() -> Self {
        ChunkedHeap {
            chunks: [const { Heap::empty() }; MAX_CHUNKS],
            count: 0,
            grows: 0,
            shrinks: 0,
            failures: 0,
            deficit: 0,
            faults: HeapFaults::new(),
        }
    }

    /// Adds `[bottom, bottom + bytes)` as a new chunk. Returns `false` (and takes nothing)
    /// when all chunk slots are in use or the chunk is smaller than [`MIN_CHUNK`].
    ///
    /// # Safety
    /// The memory must be valid for reads and writes, unused by anything else, and stay
    /// so until [`ChunkedHeap::take_empty`] hands it back.
    pub unsafe fn add_chunk(&mut self, bottom: *mut u8, bytes: usize) -> bool {
        if self.count == MAX_CHUNKS || bytes < MIN_CHUNK {
            return false;
        }
        // SAFETY: the caller hands over exclusive, valid memory of `bytes` bytes.
        unsafe { self.chunks[self.count].init(bottom, bytes) };
        if self.count > 0 {
            self.grows += 1;
        }
        self.count += 1;
        self.deficit = 0;
        true
    }

    /// Allocates `layout` from the oldest chunk that has room (so later chunks drain and
    /// can be given back). `None` when fault injection refuses or no chunk has room.
    pub fn alloc(&mut self, layout: Layout) -> Option<NonNull<u8>> {
        if self.faults.check() {
            return None;
        }
        let found = self.chunks[..self.count]
            .iter_mut()
            .find_map(|chunk| chunk.allocate_first_fit(layout).ok());
        let need = layout.size() + layout.align() + 64;
        if found.is_none() {
            self.failures += 1;
            if need <= MAX_GROWTH {
                self.deficit = self.deficit.max(need);
            }
        }
        found
    }

    /// Frees an allocation made by [`ChunkedHeap::alloc`].
    ///
    /// # Safety
    /// `ptr` must come from [`ChunkedHeap::alloc`] on this heap with the same `layout`,
    /// and not have been freed yet.
    pub unsafe fn dealloc(&mut self, ptr: NonNull<u8>, layout: Layout) {
        let at = ptr.as_ptr() as usize;
        if let Some(chunk) = self.chunks[..self.count]
            .iter_mut()
            .find(|c| (c.bottom() as usize..c.top() as usize).contains(&at))
        {
            // SAFETY: `ptr` lies in this chunk, and the caller guarantees it is a live
            // allocation of `layout` from this heap.
            unsafe { chunk.deallocate(ptr, layout) };
        }
    }

    /// Bytes the heap wants added when free space fell below `low_water` or a request was
    /// refused: at least `grow_min`, half the heap (so the chunk slots last: growth is
    /// geometric up to [`MAX_GROWTH`]) and the largest request refused since the last
    /// growth. `None` when it has enough, or no chunk slot is left.
    pub fn wants(&self, low_water: usize, grow_min: usize) -> Option<usize> {
        if self.count == MAX_CHUNKS {
            return None;
        }
        let chunks = &self.chunks[..self.count];
        let free: usize = chunks.iter().map(Heap::free).sum();
        if free >= low_water && self.deficit == 0 {
            return None;
        }
        let half = chunks.iter().map(Heap::size).sum::<usize>() / 2;
        let want = grow_min.max(half).max(self.deficit).next_power_of_two();
        Some(want.min(MAX_GROWTH))
    }

    /// Removes a grown chunk (never the first) that holds no allocation, if the heap keeps
    /// at least `keep_free` free bytes without it, and returns its memory.
    pub fn take_empty(&mut self, keep_free: usize) -> Option<(*mut u8, usize)> {
        let free: usize = self.chunks[..self.count].iter().map(Heap::free).sum();
        let index = (1..self.count).rev().find(|&i| {
            let chunk = &self.chunks[i];
            chunk.used() == 0 && free - chunk.size() >= keep_free
        })?;
        let chunk = core::mem::replace(&mut self.chunks[index], Heap::empty());
        self.chunks[index..self.count].rotate_left(1);
        self.count -= 1;
        self.shrinks += 1;
        Some((chunk.bottom(), chunk.size()))
    }

    /// The figures for `mem.heap`.
    pub fn stats(&self) -> HeapStats {
        let chunks = &self.chunks[..self.count];
        HeapStats {
            used: chunks.iter().map(Heap::used).sum(),
            bytes: chunks.iter().map(Heap::size).sum(),
            chunks: self.count,
            grows: self.grows,
            shrinks: self.shrinks,
            failures: self.failures,
            injected: self.faults.injected(),
        }
    }

    /// The fault-injection rule set.
    pub fn faults(&mut self) -> &mut HeapFaults {
        &mut self.faults
    }
}
