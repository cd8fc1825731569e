//! Exact rollback under fault injection: the nth allocation of one kind fails, for
//! every n an add makes, and the world must be as it was before the add.

use std::vec::Vec;

use crate::mm::addr::PAGE_SIZE;
use crate::mm::altmap::VmemAltmap;
use crate::mm::error::{AllocKind, MmError};
use crate::mm::pgtable::Features;
use crate::mm::sim::World;
use crate::mm::vmemmap::VmemmapArch;

/// Fails the nth allocation of `kind` for every n an add of `sections` sections makes
/// (from empty tables, or next to one section already present when `neighbour`), and
/// checks each failure rolls back exactly: counters, tables, altmap `alloc` and `align`,
/// and the simulated RAM. Up to 64 allocations every position is tried, beyond that the
/// first and last 8 and every 1/32nd. Returns (positions where the failure fired, adds
/// that failed; the others were absorbed by a fallback).
pub fn failure_at_each_allocation<F: VmemmapArch>(
    features: Features,
    kind: AllocKind,
    altmap: bool,
    sections: u64,
    neighbour: bool,
) -> (u64, u64) {
    let arch = F::MM;
    let mut world = World::<F>::new(features);
    if neighbour {
        world
            .add(world.sections(0, 1), None)
            .expect("first section");
    }
    let range = world.sections(1, sections);
    let fresh = || {
        VmemAltmap::new(
            range.start.0,
            range.end.0 - 1,
            2,
            arch.memmap_bytes(range.end.0 - range.start.0) / PAGE_SIZE + 512,
        )
    };
    let before = world.snapshot();
    let mut probe = altmap.then(fresh);
    let attempts_before = attempts(&mut world, kind);
    world.add(range.clone(), probe.as_mut()).expect("clean add");
    let attempts = attempts(&mut world, kind) - attempts_before;
    // Removal never allocates: it succeeds with every heap allocation failing.
    crate::heap::with_faults(|f| f.arm(1, crate::mm::inject::FaultMode::Always));
    let removed = world.remove(range.clone(), probe.as_mut());
    crate::heap::with_faults(|f| f.clear());
    removed.expect("clean remove with the heap refusing everything");
    assert_eq!(world.snapshot(), before);
    let mut failures = 0;
    let stride = (attempts / 32).max(1);
    let tried: Vec<u64> = (1..=attempts)
        .filter(|n| attempts <= 64 || *n <= 8 || *n > attempts - 8 || n % stride == 0)
        .collect();
    let mut fired = 0;
    for &nth in &tried {
        let mut map = altmap.then(fresh);
        let handed_out = world.mem.handed_out() - world.mem.returned();
        let injected_before = injected(&mut world, kind);
        arm(&mut world, kind, nth);
        let result = world.add(range.clone(), map.as_mut());
        disarm(&mut world);
        // A heap allocation made once (a vector growing for good) is not made again, so
        // later adds can make fewer allocations than the first: count what really fired.
        fired += u64::from(injected(&mut world, kind) > injected_before);
        match result {
            Err(error) => {
                assert_eq!(error, MmError::NoMemory(kind), "allocation {nth}");
                failures += 1;
            }
            Ok(()) => world
                .remove(range.clone(), map.as_mut())
                .expect("remove after absorbed failure"),
        }
        assert_eq!(
            world.snapshot(),
            before,
            "rollback after failing {kind:?} #{nth}"
        );
        assert_eq!(world.mem.handed_out() - world.mem.returned(), handed_out);
        if let Some(map) = map {
            assert_eq!(
                (map.alloc, map.align, map.live_pages()),
                (0, 0, 0),
                "altmap after failing #{nth}"
            );
        }
    }
    (fired, failures)
}

/// Allocations of `kind` so far (heap: on this thread; needs [`HostFaultAlloc`] as the
/// test binary's global allocator).
///
/// [`HostFaultAlloc`]: crate::heap::HostFaultAlloc
fn attempts<F: VmemmapArch>(world: &mut World<F>, kind: AllocKind) -> u64 {
    match kind {
        AllocKind::Heap => crate::heap::with_faults(|f| f.attempts()),
        _ => world.sparse.vmemmap_mut().faults().attempts(kind),
    }
}

fn injected<F: VmemmapArch>(world: &mut World<F>, kind: AllocKind) -> u64 {
    match kind {
        AllocKind::Heap => crate::heap::with_faults(|f| f.injected()),
        _ => world.sparse.vmemmap_mut().faults().injected(kind),
    }
}

fn arm<F: VmemmapArch>(world: &mut World<F>, kind: AllocKind, nth: u64) {
    match kind {
        AllocKind::Heap => {
            crate::heap::with_faults(|f| f.arm(nth, crate::mm::inject::FaultMode::Once))
        }
        _ => world.sparse.vmemmap_mut().faults().fail_nth(kind, nth),
    }
}

fn disarm<F: VmemmapArch>(world: &mut World<F>) {
    crate::heap::with_faults(|f| f.clear());
    world.sparse.vmemmap_mut().faults().clear();
}
