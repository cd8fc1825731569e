//! Onlining and offlining in blocks against the page-by-page reference: on random ranges,
//! with online neighbours to merge with and busy pages beside them, the allocator and
//! every struct page end up exactly as when each page is onlined (or offlined) on its own.

use std::collections::BTreeSet;
use std::ops::Range;

use proptest::prelude::*;

use crate::mm::Pfn;
use crate::mm::arch::MmArch;
use crate::mm::buddy::{Buddy, MAX_ORDER, blocks};
use crate::mm::error::MmError;
use crate::mm::memmap::{MemmapAccess, init_online, init_range};
use crate::mm::page::{NO_PFN, PageFlags, Zone};
use crate::mm::sim::{SimMemmap, models};

static ARCH: MmArch = models::SECTIONS_128M_LEAF_2M;
/// Section-aligned, so spans cross a section boundary at `BASE + 32768`.
const BASE: u64 = 0x40000;
/// Frames with struct pages in every world: two sections.
const SPAN: u64 = 65536;

/// How a world's allocator got its pages.
#[derive(Clone, Copy, PartialEq, Eq)]
enum How {
    /// `init_online` + `online_initialised`.
    Blocks,
    /// `init_range` + `online` of one frame at a time.
    PageByPage,
}

/// Two sections of struct pages, initialised for the movable zone, nothing online.
fn memmap() -> SimMemmap {
    let mut memmap = SimMemmap::new(&ARCH);
    memmap.add(Pfn(BASE)..Pfn(BASE + SPAN));
    init_range(&mut memmap, &ARCH, Pfn(BASE), SPAN, Zone::Movable, 0);
    memmap
}

fn online(memmap: &mut SimMemmap, buddy: &mut Buddy, range: Range<u64>, how: How) {
    match how {
        How::Blocks => {
            let fresh = init_online(
                memmap,
                &ARCH,
                Pfn(range.start)..Pfn(range.end),
                Zone::Movable,
                0,
            );
            buddy
                .online_initialised(memmap, fresh)
                .expect("online in blocks");
        }
        How::PageByPage => {
            init_range(
                memmap,
                &ARCH,
                Pfn(range.start),
                range.end - range.start,
                Zone::Movable,
                0,
            );
            for pfn in range {
                buddy
                    .online(memmap, Pfn(pfn)..Pfn(pfn + 1))
                    .expect("online one page");
            }
        }
    }
}

fn offline(memmap: &mut SimMemmap, buddy: &mut Buddy, range: Range<u64>, how: How) {
    match how {
        How::Blocks => buddy
            .offline(memmap, Pfn(range.start)..Pfn(range.end))
            .expect("offline in blocks"),
        How::PageByPage => {
            for pfn in range {
                buddy
                    .offline(memmap, Pfn(pfn)..Pfn(pfn + 1))
                    .expect("offline one page");
            }
        }
    }
}

/// Everything observable: counters, the set of free blocks, and each struct page's
/// flags, refcount, links and (for a free block's head) order. The order of blocks
/// within one free list is not part of the state.
type State = (
    u64,
    u64,
    Vec<u64>,
    BTreeSet<(u64, u32)>,
    Vec<(u64, u32, u64, u64, u8)>,
);

fn state(memmap: &SimMemmap, buddy: &Buddy) -> State {
    let free: BTreeSet<(u64, u32)> = buddy.free_list_blocks(memmap).into_iter().collect();
    let pages = (BASE..BASE + SPAN)
        .map(|pfn| {
            let p = memmap.page(Pfn(pfn));
            if p.has(PageFlags::BUDDY) {
                (p.flags, p.refcount, 0, 0, p.order)
            } else {
                (p.flags, p.refcount, p.buddy_next, p.buddy_prev, 0)
            }
        })
        .collect();
    (
        buddy.managed_pages(),
        buddy.free_pages(),
        (0..=MAX_ORDER).map(|o| buddy.free_blocks(o)).collect(),
        free,
        pages,
    )
}

/// A world: `neighbours` onlined page by page, `busy` frames claimed from them, then
/// `target` onlined `how`.
fn world(
    neighbours: &[Range<u64>],
    busy: &[u64],
    target: Range<u64>,
    how: How,
) -> (SimMemmap, Buddy) {
    let mut memmap = memmap();
    let mut buddy = Buddy::new();
    for n in neighbours {
        buddy
            .online(&mut memmap, Pfn(n.start)..Pfn(n.end))
            .expect("neighbour");
    }
    for &pfn in busy {
        buddy.claim(&mut memmap, Pfn(pfn)).expect("claim");
    }
    online(&mut memmap, &mut buddy, target, how);
    (memmap, buddy)
}

/// `[a, b)` inside the span plus neighbours `[l, a)` and `[b, r)` (possibly empty) and
/// up to two busy frames in them.
fn scenario() -> impl Strategy<Value = (Range<u64>, Vec<Range<u64>>, Vec<u64>)> {
    (
        0..SPAN,
        1..SPAN,
        0..SPAN,
        0..SPAN,
        proptest::collection::vec(any::<u64>(), 0..3),
    )
        .prop_map(|(a, len, left, right, picks)| {
            let a = BASE + a;
            let b = (a + len).min(BASE + SPAN);
            let a = a.min(b - 1);
            let l = a - left.min(a - BASE);
            let r = b + right.min(BASE + SPAN - b);
            let neighbours: Vec<Range<u64>> = [l..a, b..r]
                .into_iter()
                .filter(|n| n.start < n.end)
                .collect();
            let pool: Vec<u64> = neighbours
                .iter()
                .flat_map(|n| [n.start, n.end - 1, (n.start + n.end) / 2])
                .collect();
            let mut busy: Vec<u64> = picks
                .iter()
                .filter(|_| !pool.is_empty())
                .map(|p| pool[(*p % pool.len() as u64) as usize])
                .collect();
            busy.sort_unstable();
            busy.dedup();
            (a..b, neighbours, busy)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn online_in_blocks_equals_page_by_page((target, neighbours, busy) in scenario()) {
        let (m1, b1) = world(&neighbours, &busy, target.clone(), How::Blocks);
        let (m2, b2) = world(&neighbours, &busy, target.clone(), How::PageByPage);
        prop_assert!(state(&m1, &b1) == state(&m2, &b2), "target {:?} neighbours {:?} busy {:?}", target, neighbours, busy);
    }

    #[test]
    fn offline_in_blocks_equals_page_by_page(
        (target, neighbours, busy) in scenario(),
        cut in (0u64..SPAN, 1u64..SPAN),
    ) {
        // The cut lies inside the target, whose pages are all free.
        let from = target.start + cut.0 % (target.end - target.start);
        let to = (from + cut.1).min(target.end);
        let mut worlds = [How::Blocks, How::PageByPage].map(|how| {
            let (mut memmap, mut buddy) = world(&neighbours, &busy, target.clone(), How::Blocks);
            offline(&mut memmap, &mut buddy, from..to, how);
            (memmap, buddy)
        });
        let [(m1, b1), (m2, b2)] = &mut worlds;
        prop_assert!(state(m1, b1) == state(m2, b2), "cut {}..{} of {:?}", from, to, target);
        for pfn in from..to {
            prop_assert!(!b1.is_free(m1, Pfn(pfn)));
            prop_assert!(!m1.page(Pfn(pfn)).has(PageFlags::ONLINE));
        }
    }

    #[test]
    fn blocks_are_the_largest_aligned_cover(from in 0u64..1 << 20, len in 1u64..1 << 14) {
        let to = from + len;
        let mut next = from;
        for (head, order) in blocks(from, to) {
            prop_assert_eq!(head, next);
            prop_assert!(order <= MAX_ORDER);
            prop_assert_eq!(head % (1 << order), 0);
            next = head + (1 << order);
            prop_assert!(next <= to);
            // Maximal: the next order up is misaligned, too long, or past MAX_ORDER.
            let up = order + 1;
            prop_assert!(up > MAX_ORDER || head % (1 << up) != 0 || head + (1 << up) > to);
        }
        prop_assert_eq!(next, to);
    }
}

#[test]
fn a_large_range_is_onlined_as_max_order_blocks() {
    let mut memmap = memmap();
    let mut buddy = Buddy::new();
    online(&mut memmap, &mut buddy, BASE..BASE + SPAN, How::Blocks);
    assert_eq!(buddy.free_blocks(MAX_ORDER), SPAN >> MAX_ORDER);
    assert_eq!((buddy.managed_pages(), buddy.free_pages()), (SPAN, SPAN));
    let heads = buddy.free_list_blocks(&memmap);
    assert!(
        heads
            .iter()
            .all(|&(pfn, order)| order == MAX_ORDER && pfn % (1 << MAX_ORDER) == 0)
    );
    let page = memmap.page(Pfn(BASE + 5));
    assert!(page.has(PageFlags::ONLINE | PageFlags::INITIALIZED) && !page.has(PageFlags::BUDDY));
    assert_eq!(
        (page.buddy_next, page.buddy_prev, page.refcount),
        (NO_PFN, NO_PFN, 0)
    );
}

#[test]
fn online_initialised_refuses_a_block_in_use_and_changes_nothing() {
    let mut memmap = memmap();
    let mut buddy = Buddy::new();
    online(&mut memmap, &mut buddy, BASE..BASE + 2048, How::Blocks);
    let taken = buddy
        .alloc(&mut memmap, MAX_ORDER)
        .expect("a max-order block");
    let before = state(&memmap, &buddy);
    // A stale proof for pages that are already online and allocated.
    let stale = init_online(
        &mut memmap,
        &ARCH,
        Pfn(BASE + 4096)..Pfn(BASE + 4096),
        Zone::Movable,
        0,
    );
    buddy
        .online_initialised(&mut memmap, stale)
        .expect("empty range");
    memmap.page_mut(taken).refcount = 1;
    let fresh = init_online(
        &mut memmap,
        &ARCH,
        Pfn(BASE + 4096)..Pfn(BASE + 8192),
        Zone::Movable,
        0,
    );
    memmap.page_mut(Pfn(BASE + 5120)).refcount = 1;
    let refused = buddy.online_initialised(&mut memmap, fresh);
    assert_eq!(
        refused,
        Err(MmError::BadPageState {
            pfn: Pfn(BASE + 5120),
            why: "not initialised for onlining"
        })
    );
    assert_eq!(
        (buddy.managed_pages(), buddy.free_pages()),
        (before.0, before.1)
    );
    assert_eq!(buddy.free_list_blocks(&memmap).len(), before.3.len());
}

#[test]
fn online_refuses_a_page_already_online_anywhere_in_the_range() {
    let mut memmap = memmap();
    let mut buddy = Buddy::new();
    online(
        &mut memmap,
        &mut buddy,
        BASE + 3000..BASE + 3001,
        How::PageByPage,
    );
    let before = state(&memmap, &buddy);
    assert_eq!(
        buddy.online(&mut memmap, Pfn(BASE)..Pfn(BASE + 40000)),
        Err(MmError::BadPageState {
            pfn: Pfn(BASE + 3000),
            why: "already online"
        })
    );
    assert!(state(&memmap, &buddy) == before, "nothing changed");
    let mut sparse = SimMemmap::new(&ARCH);
    sparse.add(Pfn(BASE)..Pfn(BASE + 512));
    assert_eq!(
        buddy.online(&mut sparse, Pfn(BASE)..Pfn(BASE + 1024)),
        Err(MmError::BadPageState {
            pfn: Pfn(BASE + 512),
            why: "no struct page"
        })
    );
}
