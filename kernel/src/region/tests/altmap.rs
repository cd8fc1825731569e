//! The altmaps carved for pmem regions against Linux's `nd_pfn_init` figures, and the
//! sizes Linux refuses.

use super::*;

#[test]
fn carved_altmaps_match_linux_for_several_sizes_on_every_arch() {
    let cases = [
        (0x1_0000_0000, 128 * MIB),
        (0x1_0000_0000, GIB),
        (0x1_0000_0000, 16 * GIB),
        (0x1_0000_0000, 130 * MIB), // not a section multiple
        (0x4000_0000, 16 * MIB),    // a few subsections, Linux's namespace floor
        (0x1_0020_0000, 250 * MIB), // start mid-section
    ];
    for arch in models::ALL {
        for (start, size) in cases {
            let mut set = RegionSet::new(arch, &big_ram());
            let text = alloc::format!("{}M!{start:#x}", size / MIB);
            let id = set
                .add_checked(memmap(&text))
                .unwrap_or_else(|e| panic!("{e}"));
            let altmap = set.altmap(id).expect("device region");
            assert_eq!(
                figures(&altmap),
                linux_altmap(start, size, 2 * MIB),
                "{} {text}",
                arch.name
            );
            assert_eq!((altmap.align, altmap.alloc), (0, 0));
            assert_eq!(set.get(id).unwrap().map_range(), start..start + size);
        }
    }
}

#[test]
fn known_figures_anchor_the_formula() {
    // 1 GiB at 4 GiB: dataoff (2N + 2) MiB with N = 8 sections.
    assert_eq!(
        linux_altmap(4 * GIB, GIB, 2 * MIB),
        (0x10_0000, 0x13_ffff, 2, 4606, 4608)
    );
    // 128 MiB: 4 MiB dataoff; 64 MiB: the memmap fits the first 2 MiB.
    assert_eq!(linux_altmap(4 * GIB, 128 * MIB, 2 * MIB).3, 1022);
    assert_eq!(linux_altmap(256 * MIB, 64 * MIB, 2 * MIB).3, 510);
}

#[test]
fn a_larger_alignment_pushes_dataoff_to_it() {
    let mut set = RegionSet::new(models::SECTIONS_128M_LEAF_2M, &big_ram());
    let mut req = memmap("4G!4G");
    req.align = GIB;
    let id = set.add_checked(req).expect("fits");
    let a = set.altmap(id).unwrap();
    assert_eq!(figures(&a), linux_altmap(4 * GIB, 4 * GIB, GIB));
    assert_eq!(a.offset() * 4 * KIB, GIB);

    let mut req = memmap("64M!1G");
    req.align = 3 * MIB;
    let e = reject(&mut set, req);
    assert_eq!(e.reason.code(), "unaligned");
    assert_eq!(
        e.to_string(),
        "region 0x40000000-0x44000000: alignment 0x300000 is not a power of two in 0x1000..=0x40000000"
    );
}

#[test]
fn a_region_under_16m_is_refused_as_linux_refuses_the_namespace() {
    let mut set = RegionSet::new(models::SECTIONS_256M_LEAF_1M, &big_ram());
    let e = reject(&mut set, memmap("2M!1G"));
    assert_eq!(e.reason, Reason::UnderMinimum { minimum: 16 * MIB });
    assert_eq!(e.reason.code(), "too-small");
    assert_eq!(
        e.to_string(),
        "region 0x40000000-0x40200000: size 0x200000 is under the 0x1000000 a namespace needs (Linux: ENXIO)"
    );
    assert_eq!(
        e.record().to_string(),
        "region: reject range=0x40000000-0x40200000 reason=too-small source=memmap text=2M!1G minimum=0x1000000"
    );
    let e = reject(&mut set, memmap("14M!1G"));
    assert_eq!(e.reason, Reason::UnderMinimum { minimum: 16 * MIB });
    let id = set.add_checked(memmap("16M!1G")).expect("16 MiB is enough");
    assert_eq!(set.altmap(id).unwrap().free, 510);
}

#[test]
fn an_nfit_range_under_16m_is_refused_by_its_full_size() {
    let mut set = RegionSet::new(models::SECTIONS_128M_LEAF_2M, &q35_512m());
    let mut req = RegionRequest {
        start: 4 * GIB,
        size: 16 * MIB - 128 * KIB,
        kind: RegionKind::Pmem,
        source: Source::Nfit { range_index: 2 },
        node: None,
        align: DEFAULT_ALIGN,
    };
    assert_eq!(
        reject(&mut set, req.clone()).reason,
        Reason::UnderMinimum { minimum: 16 * MIB }
    );
    req.size = 16 * MIB;
    set.add_checked(req).expect("16 MiB is enough");
}

#[test]
fn a_region_too_small_for_its_memmap_is_refused_with_the_numbers() {
    // With a 32 MiB alignment a 32 MiB region cannot hold its memmap and data.
    let mut set = RegionSet::new(models::SECTIONS_256M_LEAF_1M, &big_ram());
    let mut req = memmap("32M!1G");
    req.align = 32 * MIB;
    let e = reject(&mut set, req);
    assert_eq!(
        e.reason,
        Reason::TooSmall {
            dataoff: 0x200_0000,
            usable: 0x200_0000
        }
    );
    assert_eq!(
        e.to_string(),
        "region 0x40000000-0x42000000: too small for its memmap: needs dataoff 0x2000000 >= usable size 0x2000000"
    );
    assert_eq!(
        e.record().to_string(),
        "region: reject range=0x40000000-0x42000000 reason=too-small source=memmap text=32M!1G dataoff=0x2000000 usable=0x2000000"
    );
    let id = set.add_checked(memmap("32M!1G")).expect("fits");
    assert_eq!(set.altmap(id).unwrap().free, 510);
}
