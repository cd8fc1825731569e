//! Random request sets: every accepted region keeps every rule.

use super::*;

fn arb_request() -> impl Strategy<Value = RegionRequest> {
    (0u64..96, 0u64..24, 0u8..3, prop::bool::ANY).prop_map(|(start, size, src, odd)| {
        let unit = if odd { 128 * KIB } else { 2 * MIB };
        let (start, size) = (start * 64 * MIB, size * unit);
        match src {
            0 => RegionRequest::memmap(&crate::firmware::memmap_param::PmemRequest {
                start,
                size,
                text: "fuzz".to_string(),
            }),
            1 => RegionRequest::nfit(&nfit_spa(7, start, size)),
            _ => RegionRequest::boot_window(HotplugWindow {
                start,
                end: start + size,
            }),
        }
    })
}

fn disjoint(a: &Range<u64>, b: &Range<u64>) -> bool {
    a.end <= b.start || b.end <= a.start
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn accepted_regions_keep_every_rule(reqs in proptest::collection::vec(arb_request(), 0..24)) {
        let ram = map(&[
            (0, 0x10_0000, MemKind::Reserved),
            (0x10_0000, 2 * GIB, MemKind::Usable),
            (2 * GIB, 0x8400_0000, MemKind::Kernel),
            (0x8400_0000, 4 * GIB, MemKind::Usable),
        ]);
        let mut set = RegionSet::new(models::SECTIONS_128M_LEAF_2M, &ram);
        for req in reqs {
            let _ = set.add_checked(req);
        }
        let usable = usable_spans(&ram);
        let regions = set.regions();
        for (i, a) in regions.iter().enumerate() {
            prop_assert!(a.size > 0 && a.start % SUBSECTION == 0);
            prop_assert_eq!(a.map_range().end % SUBSECTION, 0);
            if let Some(alt) = a.altmap(set.arch()) {
                prop_assert!(alt.offset() * PAGE_SIZE < a.map_range().end - a.start);
            }
            if matches!(a.source, Source::MemmapParam { .. }) {
                prop_assert!(usable.iter().any(|u| u.start <= a.start && a.end() <= u.end));
            }
            for b in &regions[i + 1..] {
                if a.kind.is_device() == b.kind.is_device() {
                    prop_assert!(disjoint(&a.range(), &b.range()), "{:?} {:?}", a, b);
                }
            }
        }
        let carved = set.carve(&ram);
        let total = |m: &MemoryMap| m.regions().iter().map(|r| r.len()).sum::<u64>();
        prop_assert_eq!(total(&carved), total(&ram));
        let carved_bytes: u64 = set.carved_ranges().iter().map(|r| r.end - r.start).sum();
        prop_assert_eq!(
            carved.bytes_of(MemKind::Usable) + carved_bytes,
            ram.bytes_of(MemKind::Usable)
        );
        prop_assert_eq!(set.records().count(), set.outcomes().len());
        let _ = ascii_map(&ram, regions, MAP_COLUMNS).to_string();
    }
}
