//! The chunked heap on host memory, and the heap fault rule through the test allocator.

use alloc::vec::Vec;
use core::alloc::Layout;

use super::faults::HeapFaults;
use super::*;
use crate::mm::inject::FaultMode;

/// A page-aligned host buffer standing in for a chunk of RAM (leaked: the heap keeps it).
fn chunk(bytes: usize) -> *mut u8 {
    let layout = Layout::from_size_align(bytes, 4096).unwrap();
    // SAFETY: a non-zero layout.
    let ptr = unsafe { std::alloc::alloc(layout) };
    assert!(!ptr.is_null());
    ptr
}

#[test]
fn grows_by_chunks_and_gives_empty_ones_back() {
    let mut heap = ChunkedHeap::new();
    // SAFETY: fresh, exclusively owned buffers.
    assert!(unsafe { heap.add_chunk(chunk(64 << 10), 64 << 10) });
    assert_eq!(
        heap.wants(16 << 10, 32 << 10),
        None,
        "64 KiB free, low water 16 KiB"
    );
    let big = Layout::from_size_align(40 << 10, 8).unwrap();
    let first = heap.alloc(big).expect("fits the first chunk");
    assert!(heap.alloc(big).is_none(), "24 KiB left");
    let stats = heap.stats();
    assert_eq!((stats.failures, stats.chunks, stats.grows), (1, 1, 0));
    let want = heap
        .wants(16 << 10, 32 << 10)
        .expect("a refusal asks for growth");
    assert!(
        want >= (40 << 10) + 8,
        "at least the refused request: {want}"
    );
    // SAFETY: as above.
    assert!(unsafe { heap.add_chunk(chunk(want), want) });
    let second = heap.alloc(big).expect("the new chunk serves it");
    assert_eq!(heap.wants(16 << 10, 32 << 10), None);
    let stats = heap.stats();
    assert_eq!(
        (stats.chunks, stats.grows, stats.bytes),
        (2, 1, (64 << 10) + want)
    );
    assert!(stats.used >= 80 << 10);
    assert_eq!(heap.take_empty(0), None, "the grown chunk is in use");
    // SAFETY: `second` came from this heap with `big`.
    unsafe { heap.dealloc(second, big) };
    assert_eq!(heap.take_empty(1 << 20), None, "too little would stay free");
    let (_, bytes) = heap.take_empty(16 << 10).expect("empty grown chunk");
    assert_eq!(bytes, want);
    assert_eq!(heap.stats().shrinks, 1);
    // SAFETY: `first` came from this heap with `big`.
    unsafe { heap.dealloc(first, big) };
    assert_eq!(heap.take_empty(0), None, "the first chunk stays");
    assert_eq!(heap.stats().used, 0);
}

#[test]
fn requests_larger_than_any_chunk_do_not_ask_for_growth() {
    let mut heap = ChunkedHeap::new();
    // SAFETY: a fresh buffer.
    assert!(unsafe { heap.add_chunk(chunk(64 << 10), 64 << 10) });
    let huge = Layout::from_size_align(MAX_GROWTH * 2, 8).unwrap();
    assert!(heap.alloc(huge).is_none());
    assert_eq!(heap.wants(16 << 10, 32 << 10), None);
}

#[test]
fn chunk_slots_run_out_cleanly() {
    let mut heap = ChunkedHeap::new();
    for _ in 0..MAX_CHUNKS {
        // SAFETY: fresh buffers.
        assert!(unsafe { heap.add_chunk(chunk(MIN_CHUNK), MIN_CHUNK) });
    }
    // SAFETY: as above (refused, so never used).
    assert!(!unsafe { heap.add_chunk(chunk(MIN_CHUNK), MIN_CHUNK) });
    assert_eq!(heap.wants(usize::MAX, 1), None, "no slot left to grow into");
}

#[test]
fn injected_failures_fire_on_the_nth_allocation() {
    let mut heap = ChunkedHeap::new();
    // SAFETY: a fresh buffer.
    assert!(unsafe { heap.add_chunk(chunk(64 << 10), 64 << 10) });
    let small = Layout::from_size_align(32, 8).unwrap();
    heap.faults().arm(2, FaultMode::Once);
    assert!(heap.alloc(small).is_some());
    assert!(heap.alloc(small).is_none(), "the 2nd fails");
    assert!(heap.alloc(small).is_some(), "once");
    heap.faults().arm(1, FaultMode::Always);
    assert!(heap.alloc(small).is_none());
    assert!(heap.alloc(small).is_none());
    heap.faults().clear();
    assert!(heap.alloc(small).is_some());
    let stats = heap.stats();
    assert_eq!(
        (stats.injected, stats.failures),
        (3, 0),
        "injected, not real"
    );
    assert_eq!(heap.wants(1, 1), None, "injection never asks for growth");
}

#[test]
fn fault_rule_counts_attempts() {
    let mut faults = HeapFaults::new();
    assert!(!faults.check());
    faults.arm(3, FaultMode::Always);
    assert_eq!(
        [
            faults.check(),
            faults.check(),
            faults.check(),
            faults.check()
        ],
        [false, false, true, true]
    );
    assert_eq!((faults.attempts(), faults.injected()), (5, 2));
    assert!(faults.armed());
    faults.clear();
    assert!(!faults.check() && !faults.armed());
}

#[test]
fn the_test_allocator_applies_the_thread_rule() {
    with_faults(|f| f.arm(1, FaultMode::Always));
    let mut v: Vec<u64> = Vec::new();
    let refused = v.try_reserve(100).is_err();
    with_faults(|f| f.clear());
    assert!(refused, "try_reserve sees the injected failure");
    assert!(v.try_reserve(100).is_ok());
    assert!(stats().injected >= 1);
}
