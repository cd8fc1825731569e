//! `VmemAltmap` arithmetic (§6.4 items 1, 10, 11) and a differential test against a
//! plain model of Linux's formulas.

use proptest::prelude::*;

use crate::mm::altmap::{Hazard, VmemAltmap};
use crate::mm::error::MmError;
use crate::mm::semantics::Semantics::{Hotmem, Linux};
use crate::mm::{PAGE_SIZE, Pfn};

fn nvdimm_like() -> VmemAltmap {
    VmemAltmap::new(0x100000, 0x100000 + 32768 - 1, 2, 1022)
}

#[test]
fn pmd_alloc_after_reserve_2_pads_510_and_is_512_aligned() {
    let mut altmap = nvdimm_like();
    let pfn = altmap.alloc_bytes(2 << 20).expect("fits");
    assert_eq!(pfn, Pfn(0x100000 + 512));
    assert_eq!(
        (altmap.align, altmap.alloc, altmap.nr_free()),
        (510, 512, 0)
    );
}

#[test]
fn page_allocations_never_pad() {
    let mut altmap = nvdimm_like();
    for i in 0..10 {
        assert_eq!(altmap.alloc_bytes(PAGE_SIZE), Ok(Pfn(0x100000 + 2 + i)));
    }
    assert_eq!(altmap.align, 0);
}

#[test]
fn odd_sizes_align_to_their_lowest_set_bit() {
    let mut altmap = VmemAltmap::new(0x1001, 0x2000, 0, 4000);
    assert_eq!(altmap.alloc_block(3), Ok(Pfn(0x1001)));
    assert_eq!(altmap.align, 0);
    assert_eq!(altmap.alloc_block(6), Ok(Pfn(0x1004)));
    assert_eq!(altmap.align, 0, "0x1004 is already 2-aligned");
    assert_eq!(altmap.alloc_block(1), Ok(Pfn(0x100a)));
    assert_eq!(altmap.alloc_block(6), Ok(Pfn(0x100c)));
    assert_eq!(altmap.align, 1);
    assert_eq!(altmap.alloc_block(1536), Ok(Pfn(0x1200)));
    assert_eq!(altmap.align, 1 + (0x1200 - 0x1012));
}

#[test]
fn non_page_multiple_is_refused_without_change() {
    let mut altmap = nvdimm_like();
    let before = altmap.clone();
    assert_eq!(
        altmap.alloc_bytes(PAGE_SIZE + 8),
        Err(MmError::NotPageMultiple {
            size: PAGE_SIZE + 8
        })
    );
    assert_eq!(
        altmap.alloc_bytes(0),
        Err(MmError::NotPageMultiple { size: 0 })
    );
    assert_eq!(altmap, before);
}

#[test]
fn exhaustion_changes_nothing() {
    let mut altmap = VmemAltmap::new(0x100000, 0x110000, 2, 1000);
    let before = altmap.clone();
    assert_eq!(
        altmap.alloc_block(512),
        Err(MmError::AltmapExhausted {
            requested: 512,
            padding: 510,
            nr_free: 1000
        })
    );
    assert_eq!(altmap, before);
}

#[test]
fn offset_is_the_first_data_pfn() {
    let altmap = nvdimm_like();
    assert_eq!(altmap.offset(), 1024);
    assert_eq!(altmap.first_data_pfn(), Pfn(0x100000 + 1024));
    assert!(altmap.in_storage(Pfn(0x100002)) && !altmap.in_storage(Pfn(0x100001)));
}

#[test]
fn non_lifo_free_cannot_hand_out_live_pages_linux_hazard() {
    let mut altmap = VmemAltmap::new(0, 0xffff, 0, 4096);
    let a = altmap.alloc_block(512).expect("A");
    let b = altmap.alloc_block(512).expect("B");
    altmap.free_block(a, 512).expect("free A below B");
    // Linux: alloc -= 512, so next_pfn == A and then C == B while B is mapped.
    let c = altmap.alloc_block(512).expect("C");
    assert_ne!(c, b, "C must not overlap the live B");
    assert!(c.0 >= b.0 + 512);
    assert_eq!(altmap.live_pages(), 1024);
    altmap.free_block(c, 512).expect("C");
    altmap
        .free_block(b, 512)
        .expect("B, cascading over the freed A");
    assert_eq!((altmap.alloc, altmap.align, altmap.live_pages()), (0, 0, 0));
}

#[test]
fn freeing_outside_the_handed_out_span_or_twice_is_refused() {
    let mut altmap = VmemAltmap::new(0, 0xffff, 2, 4096);
    let a = altmap.alloc_block(8).expect("A");
    let b = altmap.alloc_block(8).expect("B");
    let unknown = |pfn: u64, nr_pages| {
        Err(MmError::AltmapBlockUnknown {
            pfn: Pfn(pfn),
            nr_pages,
        })
    };
    assert_eq!(
        altmap.free_block(Pfn(b.0 + 8), 8),
        unknown(b.0 + 8, 8),
        "past next_pfn"
    );
    assert_eq!(altmap.free_block(Pfn(0), 2), unknown(0, 2), "the reserve");
    assert_eq!(altmap.free_block(a, 0), unknown(a.0, 0));
    altmap.free_block(a, 8).expect("A, buried below B");
    assert_eq!(altmap.free_block(a, 8), unknown(a.0, 8), "twice");
    assert_eq!(
        altmap.free_block(Pfn(a.0 + 4), 8),
        unknown(a.0 + 4, 8),
        "into the hole"
    );
    assert_eq!((altmap.live_pages(), altmap.buried_pages()), (8, 8));
    altmap.free_block(b, 8).expect("B, then A's hole with it");
    assert_eq!(altmap.free_block(b, 8), unknown(b.0, 8), "twice");
    assert_eq!(
        (altmap.alloc, altmap.align, altmap.buried_pages()),
        (0, 0, 0)
    );
}

#[test]
fn a_buried_padded_block_comes_back_when_the_blocks_above_go() {
    // 1 page, a 512-page block padded to 512, then 1 page: free them in every order.
    for order in [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ] {
        let mut altmap = VmemAltmap::new(0x1000, 0x2fff, 0, 2048);
        let blocks = [
            (altmap.alloc_block(1).expect("a"), 1),
            (altmap.alloc_block(512).expect("b"), 512),
            (altmap.alloc_block(1).expect("c"), 1),
        ];
        assert_eq!(blocks[1].0, Pfn(0x1200));
        assert_eq!((altmap.alloc, altmap.align), (514, 511));
        let mut freed = [false; 3];
        for i in order {
            let (pfn, nr) = blocks[i];
            altmap.free_block(pfn, nr).expect("outstanding");
            freed[i] = true;
            let live: Vec<_> = (0..3).filter(|&j| !freed[j]).map(|j| blocks[j]).collect();
            let live_pages: u64 = live.iter().map(|&(_, n)| n).sum();
            assert_eq!(altmap.live_pages(), live_pages, "order {order:?}");
            // Whatever stays buried, the next allocation misses every live block.
            let at = altmap.clone().alloc_block(1).expect("room");
            for (other, n) in live {
                assert!(at.0 >= other.0 + n || at.0 < other.0, "order {order:?}");
            }
        }
        assert_eq!((altmap.alloc, altmap.align), (0, 0), "order {order:?}");
    }
}

#[test]
fn lifo_frees_roll_back_each_block_and_its_padding() {
    let mut altmap = VmemAltmap::new(0x1000, 0x2fff, 0, 2048);
    let a = altmap.alloc_block(1).expect("a");
    let b = altmap.alloc_block(512).expect("b");
    altmap.free_block(b, 512).expect("top");
    assert_eq!(
        (altmap.alloc, altmap.align),
        (1, 0),
        "b and its 511 pages of padding"
    );
    assert_eq!(altmap.next_pfn(), a.0 + 1);
}

#[test]
fn linux_rules_hand_the_live_block_out_again_and_the_checker_names_it() {
    let mut altmap = VmemAltmap::new(0, 0xffff, 0, 4096);
    let (a, none) = altmap.alloc_block_under(512, Linux).expect("A");
    let (b, _) = altmap.alloc_block_under(512, Linux).expect("B");
    assert_eq!((a, b, none), (Pfn(0), Pfn(512), None));
    altmap
        .free_block_under(a, 512, Linux)
        .expect("free A below B");
    assert_eq!(
        (altmap.alloc, altmap.next_pfn()),
        (512, 512),
        "alloc -= 512"
    );
    let (c, hazard) = altmap.alloc_block_under(512, Linux).expect("C");
    assert_eq!(c, b, "C is B's pages while B is mapped");
    let hazard = hazard.expect("named");
    assert_eq!(
        hazard,
        Hazard::NonLifoFree {
            base_pfn: 0,
            pfn: b,
            nr_pages: 512,
            live: b,
            live_pages: 512
        }
    );
    assert_eq!(hazard.kind(), "non-lifo-free");
    assert!(
        hazard
            .to_string()
            .starts_with("hazard: kind=non-lifo-free ")
    );
    altmap.free_block_under(c, 512, Linux).expect("C");
    altmap.free_block_under(b, 512, Linux).expect("B");
    assert_eq!((altmap.alloc, altmap.align, altmap.live_pages()), (0, 0, 0));
}

#[test]
fn linux_rules_keep_align_and_the_checker_names_it_when_it_bites() {
    let mut altmap = nvdimm_like();
    let (pmd, _) = altmap.alloc_bytes_under(2 << 20, Linux).expect("pmd");
    altmap.free_block_under(pmd, 512, Linux).expect("free");
    assert_eq!(
        (altmap.alloc, altmap.align),
        (0, 510),
        "align is never returned"
    );
    let (again, hazard) = altmap.alloc_bytes_under(2 << 20, Linux).expect("pmd again");
    assert_eq!(
        (again, hazard),
        (pmd, None),
        "the same padding again: nothing bites"
    );
    altmap.free_block_under(again, 512, Linux).expect("free");
    let (page, hazard) = altmap.alloc_bytes_under(PAGE_SIZE, Linux).expect("a page");
    assert_eq!(page, Pfn(0x100000 + 512), "past the 510 stale pages");
    assert_eq!(
        hazard,
        Some(Hazard::AlignNeverReturned {
            base_pfn: 0x100000,
            pfn: page,
            nr_pages: 1,
            wanted: Pfn(0x100002),
            stale: 510
        })
    );
    let mut hotmem = nvdimm_like();
    let pmd = hotmem.alloc_bytes(2 << 20).expect("pmd");
    hotmem.free_block(pmd, 512).expect("free");
    assert_eq!(
        hotmem.alloc_bytes_under(PAGE_SIZE, Hotmem),
        Ok((Pfn(0x100002), None))
    );
}

#[test]
fn lifo_teardown_returns_align_too() {
    let mut altmap = nvdimm_like();
    let first = altmap.alloc_block(512).expect("pmd");
    altmap.free_block(first, 512).expect("free");
    assert_eq!(
        (altmap.alloc, altmap.align),
        (0, 0),
        "Linux would keep align = 510"
    );
    assert_eq!(
        altmap.alloc_block(512),
        Ok(first),
        "a reused altmap lays out identically"
    );
}

/// Linux's arithmetic, verbatim in spirit: a bump pointer with `alloc` and `align`.
#[derive(Debug, Default)]
struct LinuxAltmap {
    base_pfn: u64,
    reserve: u64,
    free: u64,
    align: u64,
    alloc: u64,
}

impl LinuxAltmap {
    fn alloc(&mut self, nr: u64) -> Option<u64> {
        let pfn = self.base_pfn + self.reserve + self.alloc + self.align;
        let nr_align = (1u64 << nr.trailing_zeros()).wrapping_sub(1);
        let nr_align = ((pfn + nr_align) & !nr_align) - pfn;
        let nr_free = self.free.saturating_sub(self.alloc + self.align);
        if nr + nr_align > nr_free {
            return None;
        }
        self.alloc += nr;
        self.align += nr_align;
        Some(pfn + nr_align)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn allocations_match_linux_arithmetic(
        base in 0u64..1 << 20, reserve in 0u64..8, free in 0u64..8192,
        requests in proptest::collection::vec(1u64..1100, 1..24),
    ) {
        let mut ours = VmemAltmap::new(base, (base + 1) << 20, reserve, free);
        let mut linux = LinuxAltmap { base_pfn: base, reserve, free, ..Default::default() };
        let mut stack = Vec::new();
        for nr in requests {
            let expected = linux.alloc(nr);
            let got = ours.alloc_block(nr).ok().map(|p| p.0);
            prop_assert_eq!(got, expected);
            prop_assert_eq!((ours.alloc, ours.align), (linux.alloc, linux.align));
            if let Some(pfn) = got {
                stack.push((pfn, nr));
            }
        }
        while let Some((pfn, nr)) = stack.pop() {
            ours.free_block(Pfn(pfn), nr).expect("LIFO");
        }
        prop_assert_eq!((ours.alloc, ours.align), (0, 0));
    }

    #[test]
    fn linux_rules_match_linux_arithmetic_under_any_free_order(
        ops in proptest::collection::vec((1u64..600, any::<bool>(), any::<usize>()), 1..40),
    ) {
        let mut ours = VmemAltmap::new(3, 1 << 20, 1, 1 << 14);
        let mut linux = LinuxAltmap { base_pfn: 3, reserve: 1, free: 1 << 14, ..Default::default() };
        let mut live: Vec<(u64, u64)> = Vec::new();
        for (nr, free, pick) in ops {
            if free && !live.is_empty() {
                let (pfn, n) = live.swap_remove(pick % live.len());
                ours.free_block_under(Pfn(pfn), n, Linux).expect("live block");
                linux.alloc -= n;
            } else {
                let expected = linux.alloc(nr);
                let got = ours.alloc_block_under(nr, Linux).ok();
                prop_assert_eq!(got.map(|(p, _)| p.0), expected);
                if let Some((pfn, hazard)) = got {
                    let overlaps = live.iter().any(|&(o, n)| pfn.0 < o + n && o < pfn.0 + nr);
                    let named = matches!(hazard, Some(Hazard::NonLifoFree { .. }));
                    prop_assert_eq!(overlaps, named, "the checker names exactly the overlaps");
                    live.push((pfn.0, nr));
                }
            }
            prop_assert_eq!((ours.alloc, ours.align), (linux.alloc, linux.align));
        }
    }

    #[test]
    fn live_blocks_never_overlap_under_any_free_order(
        ops in proptest::collection::vec((1u64..600, any::<bool>(), any::<usize>()), 1..40),
    ) {
        let mut altmap = VmemAltmap::new(3, 1 << 20, 1, 1 << 14);
        let mut live: Vec<(u64, u64)> = Vec::new();
        for (nr, free, pick) in ops {
            if free && !live.is_empty() {
                let (pfn, n) = live.swap_remove(pick % live.len());
                altmap.free_block(Pfn(pfn), n).expect("live block");
            } else if let Ok(pfn) = altmap.alloc_block(nr) {
                for (other, n) in &live {
                    prop_assert!(pfn.0 + nr <= *other || other + n <= pfn.0, "overlap with a live block");
                }
                prop_assert!(pfn.0 % (1 << nr.trailing_zeros()) == 0);
                live.push((pfn.0, nr));
            }
            prop_assert_eq!(altmap.live_pages(), live.iter().map(|(_, n)| n).sum::<u64>());
            prop_assert!(altmap.alloc + altmap.align <= altmap.free);
        }
    }
}
