//! nvdimm pfn layout (§1.4, §6.4 item 3).

use crate::mm::nvdimm::{NvdimmError, nd_pfn_init, nvdimm_setup};
use crate::mm::sim::models;

const MIB: u64 = 1 << 20;
const SECTION: u64 = 128 * MIB;

#[test]
fn worked_example_for_n_sections() {
    for n in 1..=16 {
        let (layout, altmap) = nvdimm_setup(
            &models::SECTIONS_128M_LEAF_2M,
            4 * SECTION,
            n * SECTION,
            2 * MIB,
        )
        .expect("fits");
        assert_eq!(layout.dataoff, (2 * n + 2) * MIB);
        assert_eq!(layout.end_trunc, 0);
        assert_eq!(layout.npfns, (n * SECTION - layout.dataoff) / 4096);
        assert_eq!((altmap.base_pfn, altmap.reserve), (4 * SECTION / 4096, 2));
        assert_eq!(altmap.free, 512 * (n + 1) - 2);
        assert_eq!(
            altmap.offset() * 4096,
            layout.dataoff,
            "first data pfn at dataoff"
        );
        assert_eq!(altmap.end_pfn, (4 * SECTION + n * SECTION - 1) / 4096);
    }
}

#[test]
fn start_not_2mib_aligned_fails() {
    assert_eq!(
        nd_pfn_init(SECTION + MIB, SECTION, 2 * MIB),
        Err(NvdimmError::StartMisaligned {
            start: SECTION + MIB,
            align: 2 * MIB
        })
    );
}

#[test]
fn region_too_small_for_its_own_memmap() {
    assert_eq!(
        nd_pfn_init(SECTION, 2 * MIB, 2 * MIB),
        Err(NvdimmError::TooSmall {
            dataoff: 2 * MIB,
            usable: 2 * MIB
        })
    );
    let smallest = nd_pfn_init(SECTION, 4 * MIB, 2 * MIB).expect("one 2 MiB data extent");
    assert_eq!((smallest.dataoff, smallest.npfns), (2 * MIB, 512));
}

#[test]
fn unaligned_end_is_truncated_and_large_align_respected() {
    let layout = nd_pfn_init(SECTION, SECTION + 8192, 2 * MIB).expect("fits");
    assert_eq!(layout.end_trunc, 8192);
    let layout = nd_pfn_init(0, 4 << 30, 1 << 30).expect("1G align");
    assert_eq!(layout.dataoff, 1 << 30);
    assert_eq!(
        nd_pfn_init(0, SECTION, 3000),
        Err(NvdimmError::BadAlign(3000))
    );
}

/// Found by the `region_carve` fuzz target: with a 1 GiB alignment, a 2 MiB range that
/// ends 2 MiB below a 1 GiB boundary has an `end_trunc` (1 GiB - 4 MiB) larger than its
/// size; `size - end_trunc` overflowed instead of refusing the range.
#[test]
fn end_trunc_past_the_start_is_too_small_not_an_overflow() {
    let start = (1 << 30) - 4 * MIB;
    assert_eq!(
        nd_pfn_init(start, 2 * MIB, 1 << 30),
        Err(NvdimmError::TooSmall {
            dataoff: 4 * MIB,
            usable: 0
        })
    );
}
