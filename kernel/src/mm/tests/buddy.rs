//! The buddy allocator over a simulated memmap.

use proptest::prelude::*;

use crate::mm::Pfn;
use crate::mm::buddy::{Buddy, MAX_ORDER};
use crate::mm::error::{AllocKind, MmError};
use crate::mm::memmap::{MemmapAccess, init_range};
use crate::mm::page::Zone;
use crate::mm::sim::SimMemmap;
use crate::mm::sim::models;

use crate::mm::arch::MmArch;

static ARCH: MmArch = models::SECTIONS_128M_LEAF_2M;
const BASE: u64 = 0x40000;

fn setup(pages: u64) -> (SimMemmap, Buddy) {
    let mut memmap = SimMemmap::new(&ARCH);
    memmap.add(Pfn(BASE)..Pfn(BASE + pages));
    init_range(&mut memmap, &ARCH, Pfn(BASE), pages, Zone::Normal, 0);
    let mut buddy = Buddy::new();
    buddy
        .online(&mut memmap, Pfn(BASE)..Pfn(BASE + pages))
        .expect("online");
    (memmap, buddy)
}

#[test]
fn online_builds_max_order_blocks() {
    let (memmap, buddy) = setup(4096);
    assert_eq!((buddy.managed_pages(), buddy.free_pages()), (4096, 4096));
    assert_eq!(buddy.free_blocks(MAX_ORDER), 4);
    assert_eq!(memmap.page(Pfn(BASE)).section(), ARCH.section_nr(Pfn(BASE)));
}

#[test]
fn split_and_merge() {
    let (mut memmap, mut buddy) = setup(1024);
    let a = buddy.alloc(&mut memmap, 0).expect("order 0");
    assert_eq!(a, Pfn(BASE));
    assert_eq!(
        (0..MAX_ORDER).map(|o| buddy.free_blocks(o)).sum::<u64>(),
        10,
        "one block per order split off"
    );
    let b = buddy.alloc(&mut memmap, 3).expect("order 3");
    assert_eq!(b.0 % 8, 0);
    buddy.free(&mut memmap, a, 0).expect("free a");
    buddy.free(&mut memmap, b, 3).expect("free b");
    assert_eq!(
        (buddy.free_blocks(MAX_ORDER), buddy.free_pages()),
        (1, 1024),
        "all merged back"
    );
}

#[test]
fn bad_frees_are_refused() {
    let (mut memmap, mut buddy) = setup(1024);
    let a = buddy.alloc(&mut memmap, 2).expect("order 2");
    assert!(matches!(
        buddy.free(&mut memmap, a, 1),
        Err(MmError::BadPageState { .. })
    ));
    buddy.free(&mut memmap, a, 2).expect("free");
    assert!(matches!(
        buddy.free(&mut memmap, a, 2),
        Err(MmError::BadPageState {
            why: "double free",
            ..
        })
    ));
    assert!(matches!(
        buddy.free(&mut memmap, Pfn(BASE + 1), 1),
        Err(MmError::Misaligned { .. })
    ));
}

#[test]
fn offline_is_refused_while_a_page_is_in_use() {
    let (mut memmap, mut buddy) = setup(2048);
    let used = buddy.alloc(&mut memmap, 0).expect("alloc");
    let before = (
        buddy.managed_pages(),
        buddy.free_pages(),
        (0..=MAX_ORDER)
            .map(|o| buddy.free_blocks(o))
            .collect::<Vec<_>>(),
    );
    let busy_half = used.0 & !1023;
    let other_half = if busy_half == BASE { BASE + 1024 } else { BASE };
    assert_eq!(
        buddy.offline(&mut memmap, Pfn(busy_half)..Pfn(busy_half + 1024)),
        Err(MmError::Busy(used))
    );
    let after = (
        buddy.managed_pages(),
        buddy.free_pages(),
        (0..=MAX_ORDER)
            .map(|o| buddy.free_blocks(o))
            .collect::<Vec<_>>(),
    );
    assert_eq!(before, after, "nothing changed");
    buddy
        .offline(&mut memmap, Pfn(other_half)..Pfn(other_half + 1024))
        .expect("the other half is free");
}

#[test]
fn offline_leaves_nothing_of_the_range_in_free_lists() {
    let (mut memmap, mut buddy) = setup(2048);
    buddy
        .offline(&mut memmap, Pfn(BASE + 512)..Pfn(BASE + 1024))
        .expect("offline inside a max block");
    assert_eq!((buddy.managed_pages(), buddy.free_pages()), (1536, 1536));
    for pfn in BASE + 512..BASE + 1024 {
        assert!(!buddy.is_free(&memmap, Pfn(pfn)));
    }
    let mut got = Vec::new();
    while let Ok(pfn) = buddy.alloc(&mut memmap, 0) {
        got.push(pfn.0);
    }
    assert_eq!(got.len(), 1536);
    assert!(got.iter().all(|p| !(BASE + 512..BASE + 1024).contains(p)));
}

#[test]
fn online_offline_round_trip_counts() {
    let (mut memmap, mut buddy) = setup(4096);
    for _ in 0..3 {
        buddy
            .offline(&mut memmap, Pfn(BASE)..Pfn(BASE + 4096))
            .expect("offline");
        assert_eq!((buddy.managed_pages(), buddy.free_pages()), (0, 0));
        assert!((0..=MAX_ORDER).all(|o| buddy.free_blocks(o) == 0));
        buddy
            .online(&mut memmap, Pfn(BASE)..Pfn(BASE + 4096))
            .expect("online");
        assert_eq!(
            (
                buddy.managed_pages(),
                buddy.free_pages(),
                buddy.free_blocks(MAX_ORDER)
            ),
            (4096, 4096, 4)
        );
    }
    assert!(matches!(
        buddy.online(&mut memmap, Pfn(BASE)..Pfn(BASE + 1)),
        Err(MmError::BadPageState { .. })
    ));
}

#[test]
fn injected_buddy_failure() {
    let (mut memmap, mut buddy) = setup(1024);
    buddy.faults().fail_nth(AllocKind::Buddy, 2);
    assert!(buddy.alloc(&mut memmap, 0).is_ok());
    assert_eq!(
        buddy.alloc(&mut memmap, 0),
        Err(MmError::NoMemory(AllocKind::Buddy))
    );
    assert!(buddy.alloc(&mut memmap, 0).is_ok());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    #[test]
    fn random_alloc_free_conserves_pages(ops in proptest::collection::vec((0u32..5, any::<bool>(), any::<usize>()), 1..60)) {
        let (mut memmap, mut buddy) = setup(2048);
        let mut live: Vec<(Pfn, u32)> = Vec::new();
        for (order, free, pick) in ops {
            if free && !live.is_empty() {
                let (pfn, order) = live.swap_remove(pick % live.len());
                buddy.free(&mut memmap, pfn, order).expect("free");
            } else if let Ok(pfn) = buddy.alloc(&mut memmap, order) {
                prop_assert_eq!(pfn.0 % (1 << order), 0);
                live.push((pfn, order));
            }
            let used: u64 = live.iter().map(|(_, o)| 1u64 << o).sum();
            prop_assert_eq!(buddy.free_pages() + used, 2048);
        }
        for (pfn, order) in live.drain(..) {
            buddy.free(&mut memmap, pfn, order).expect("free");
        }
        prop_assert_eq!(buddy.free_blocks(MAX_ORDER), 2);
        buddy.offline(&mut memmap, Pfn(BASE)..Pfn(BASE + 2048)).expect("all free");
    }
}

#[test]
fn claim_takes_one_chosen_frame_and_makes_offline_busy() {
    let (mut memmap, mut buddy) = setup(1024);
    let target = Pfn(BASE + 700);
    buddy.claim(&mut memmap, target).expect("free frame");
    assert_eq!((buddy.managed_pages(), buddy.free_pages()), (1024, 1023));
    assert_eq!(
        buddy.claim(&mut memmap, target),
        Err(MmError::Busy(target)),
        "already taken"
    );
    assert_eq!(
        buddy.offline(&mut memmap, Pfn(BASE)..Pfn(BASE + 1024)),
        Err(MmError::Busy(target))
    );
    buddy.free(&mut memmap, target, 0).expect("give back");
    assert_eq!(
        (buddy.free_pages(), buddy.free_blocks(MAX_ORDER)),
        (1024, 1)
    );
    buddy
        .offline(&mut memmap, Pfn(BASE)..Pfn(BASE + 1024))
        .expect("all free again");
}
