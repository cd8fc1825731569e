//! Host tests of the region list: the rules, the altmap figures against Linux's formula
//! computed here independently, carving the RAM map, the records and the ASCII map.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::ops::Range;

use proptest::prelude::*;

use super::*;
use crate::boot_info::{MemKind, MemRegion};
use crate::firmware::memmap_param::parse_item;
use crate::firmware::nfit::{self, fixture as nfit_fixture};
use crate::firmware::srat::{self, fixture as srat_fixture};
use crate::mm::sim::models;

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

fn map(spans: &[(u64, u64, MemKind)]) -> MemoryMap {
    let mut m = MemoryMap::new();
    for &(start, end, kind) in spans {
        m.push(MemRegion { start, end, kind });
    }
    m
}

/// QEMU q35 with 512 MiB: low RAM, the kernel at 1 MiB, ACPI tables at the top.
fn q35_512m() -> MemoryMap {
    map(&[
        (0, 0x9_f000, MemKind::Usable),
        (0x9_f000, 0x10_0000, MemKind::Reserved),
        (0x10_0000, 0x40_0000, MemKind::Kernel),
        (0x40_0000, 0x1ff0_0000, MemKind::Usable),
        (0x1ff0_0000, 0x2000_0000, MemKind::AcpiReclaimable),
    ])
}

/// 2 GiB low and 16 GiB from 4 GiB, in two touching usable spans above 4 GiB.
fn big_ram() -> MemoryMap {
    map(&[
        (0, 0x10_0000, MemKind::Reserved),
        (0x10_0000, 0x8000_0000, MemKind::Usable),
        (0x1_0000_0000, 0x3_0000_0000, MemKind::Usable),
        (0x3_0000_0000, 0x5_0000_0000, MemKind::Usable),
    ])
}

fn memmap(text: &str) -> RegionRequest {
    RegionRequest::memmap(&parse_item(text).unwrap_or_else(|e| panic!("{e}")))
}

fn reject(set: &mut RegionSet, req: RegionRequest) -> RegionError {
    set.add_checked(req).expect_err("should be refused")
}

/// Linux, independently: `nd_pfn_init` (PMEM mode) + `__nvdimm_setup_pfn` for a
/// subsection-aligned start: (base_pfn, end_pfn, reserve, free, offset).
fn linux_altmap(start: u64, size: u64, align: u64) -> (u64, u64, u64, u64, u64) {
    let npfns = (size - 8 * KIB) / (4 * KIB);
    let dataoff = (start + 8 * KIB + 64 * npfns).next_multiple_of(align) - start;
    let end_trunc = (start + size) % align;
    let reserve = 2;
    let free = dataoff / (4 * KIB) - reserve;
    (
        start / (4 * KIB),
        (start + size - end_trunc - 1) / (4 * KIB),
        reserve,
        free,
        dataoff / (4 * KIB),
    )
}

fn figures(a: &VmemAltmap) -> (u64, u64, u64, u64, u64) {
    (a.base_pfn, a.end_pfn, a.reserve, a.free, a.offset())
}

// ---- altmap carving ----

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

// ---- memmap= rules ----

#[test]
fn bad_memmap_lines_are_refused_one_line_each_and_the_rest_come_up() {
    let mut set = RegionSet::new(models::SECTIONS_128M_LEAF_2M, &q35_512m());
    let first = set.add_checked(memmap("64M!256M")).expect("inside RAM");
    let lines: Vec<String> = [
        "64M!288M",     // overlaps the first
        "0!128M",       // zero-sized
        "2M!0x8100000", // start not 2 MiB aligned
        "3M!128M",      // size not 2 MiB aligned
        "64M!1G",       // no RAM there
        "8M!508M",      // runs past the top of usable RAM into ACPI tables
        "4M!2M",        // covers the kernel image
    ]
    .iter()
    .map(|t| reject(&mut set, memmap(t)).to_string())
    .collect();
    assert_eq!(
        lines,
        [
            "region 0x12000000-0x16000000: overlaps region 0 0x10000000-0x14000000",
            "region 0x8000000-0x8000000: zero-sized",
            "region 0x8100000-0x8300000: start 0x8100000 is not 0x200000 (subsection) aligned",
            "region 0x8000000-0x8300000: size 0x300000 is not 0x200000 (subsection) aligned",
            "region 0x40000000-0x44000000: not wholly inside usable RAM (first non-usable byte 0x40000000)",
            "region 0x1fc00000-0x20400000: not wholly inside usable RAM (first non-usable byte 0x1ff00000)",
            "region 0x200000-0x600000: not wholly inside usable RAM (first non-usable byte 0x200000)",
        ]
    );
    let codes: Vec<_> = set.rejected().map(|e| e.reason.code()).collect();
    assert_eq!(
        codes,
        [
            "overlap",
            "zero-size",
            "unaligned",
            "unaligned",
            "outside-ram",
            "outside-ram",
            "outside-ram"
        ]
    );
    let second = set
        .add_checked(memmap("64M!320M"))
        .expect("touching is fine");
    assert_eq!((first, second), (0, 1));
    assert_eq!(set.devices().count(), 2);
}

#[test]
fn memmap_may_span_touching_usable_spans() {
    let mut set = RegionSet::new(models::SECTIONS_128M_LEAF_2M_47BIT, &big_ram());
    assert!(set.add_checked(memmap("4G!10G")).is_ok());
    // 2 GiB..4 GiB is a hole.
    let e = reject(&mut set, memmap("2G!1G"));
    assert_eq!(e.reason, Reason::OutsideRam { first_bad: 2 * GIB });
}

#[test]
fn ranges_past_the_memory_model_are_refused() {
    let mut set = RegionSet::new(models::SECTIONS_128M_LEAF_2M, &big_ram());
    let e = reject(&mut set, memmap("2G!0x3fffc0000000"));
    assert_eq!(e.reason, Reason::OutOfRange { limit: 1 << 46 });
    assert_eq!(e.reason.code(), "out-of-range");
    let spa = nfit_spa(2, 1 << 46, 2 * GIB);
    assert_eq!(
        reject(&mut set, RegionRequest::nfit(&spa)).reason.code(),
        "out-of-range"
    );
}

// ---- NFIT, windows ----

fn nfit_spa(index: u16, base: u64, length: u64) -> nfit::SpaRange {
    nfit::SpaRange {
        index,
        flags: nfit::SPA_FLAG_PROXIMITY_VALID,
        proximity_domain: 0,
        guid: nfit::PMEM_GUID,
        base,
        length,
        mapping_attributes: 0x8008,
    }
}

fn window_set(ram: &MemoryMap) -> RegionSet {
    let mut set = RegionSet::new(models::SECTIONS_128M_LEAF_2M, ram);
    let srat = srat::parse_table(&srat_fixture::qemu_x86(&[])).expect("valid");
    for w in srat.hotplug_windows() {
        set.add_checked(RegionRequest::srat_window(w))
            .expect("window");
    }
    set
}

#[test]
fn qemu_default_label_sizes_truncate_the_first_and_misalign_the_second() {
    // Backends of 256M and 512M minus a 128K label: the first is accepted with its
    // 0x1e0000 tail cut (Linux's end_trunc); the second starts 128K short of 2 MiB.
    let table =
        nfit_fixture::nfit_table(&nfit_fixture::qemu_fit(&nfit_fixture::QEMU_X86_TWO_NVDIMMS));
    let parsed = nfit::parse_table(&table).expect("valid");
    let mut set = window_set(&q35_512m());
    let ids: Vec<_> = parsed
        .pmem()
        .map(|s| set.add_checked(RegionRequest::nfit(s)))
        .collect();
    let first = set.get(*ids[0].as_ref().expect("first accepted")).unwrap();
    assert_eq!((first.start, first.size), (0x1_0000_0000, 0x0ffe_0000));
    assert_eq!(first.end_trunc(), 0x1e_0000);
    assert_eq!(first.map_range(), 0x1_0000_0000..0x1_0fe0_0000);
    assert_eq!(
        figures(&first.altmap(&models::SECTIONS_128M_LEAF_2M).unwrap()),
        linux_altmap(0x1_0000_0000, 0x0ffe_0000, 2 * MIB)
    );
    assert_eq!(
        first.record().to_string(),
        "region: add id=1 start=0x100000000 end=0x10ffe0000 size=0xffe0000 kind=pmem source=nfit range=2 node=0 trunc=0x1e0000"
    );
    let second = ids[1].as_ref().expect_err("misaligned");
    assert_eq!(
        second.record().to_string(),
        "region: reject range=0x10ffe0000-0x12ffc0000 reason=unaligned source=nfit range=4 what=start value=0x10ffe0000 align=0x200000"
    );
}

#[test]
fn nfit_ranges_outside_the_window_or_on_ram_are_refused() {
    let mut set = window_set(&q35_512m());
    let e = reject(
        &mut set,
        RegionRequest::nfit(&nfit_spa(2, 0x3_e000_0000, GIB)),
    );
    assert_eq!(
        e.record().to_string(),
        "region: reject range=0x3e0000000-0x420000000 reason=outside-hotplug-window source=nfit range=2 windows=1"
    );
    let e = reject(
        &mut set,
        RegionRequest::nfit(&nfit_spa(4, 0x1000_0000, 64 * MIB)),
    );
    assert_eq!(
        e.to_string(),
        "region 0x10000000-0x14000000: overlaps RAM 0x400000-0x1ff00000"
    );
    // Without a window, only RAM and the other regions constrain it.
    let mut bare = RegionSet::new(models::SECTIONS_128M_LEAF_2M_47BIT, &q35_512m());
    assert!(
        bare.add_checked(RegionRequest::nfit(&nfit_spa(2, 0x3_e000_0000, GIB)))
            .is_ok()
    );
    let e = reject(
        &mut bare,
        RegionRequest::nfit(&nfit_spa(4, 0x3_f000_0000, GIB)),
    );
    assert_eq!(
        e.record().to_string(),
        "region: reject range=0x3f0000000-0x430000000 reason=overlap source=nfit range=4 other=region other_id=0 other_range=0x3e0000000-0x420000000"
    );
}

#[test]
fn windows_contain_devices_but_not_each_other() {
    let mut set = window_set(&q35_512m());
    assert!(
        set.add_checked(RegionRequest::nfit(&nfit_spa(2, 4 * GIB, GIB)))
            .is_ok()
    );
    let e = reject(
        &mut set,
        RegionRequest::boot_window(HotplugWindow {
            start: 8 * GIB,
            end: 20 * GIB,
        }),
    );
    assert_eq!(e.reason.code(), "overlap");
    assert!(
        e.record()
            .to_string()
            .contains("source=boot other=region other_id=0")
    );
    assert_eq!(set.windows().count(), 1);
    assert_eq!(set.devices().count(), 1);
    assert_eq!(set.altmap(0), None, "windows have no altmap");
}

// ---- discovery, records, map ----

fn x86_sources_set() -> RegionSet {
    let fit = nfit_fixture::qemu_fit(&nfit_fixture::QEMU_X86_TWO_NVDIMMS_ALIGNED);
    let nfit = nfit::parse_table(&nfit_fixture::nfit_table(&fit)).expect("valid");
    let nv: Vec<_> = nfit.pmem().map(|s| (s.base, s.length)).collect();
    let srat = srat::parse_table(&srat_fixture::qemu_x86(&nv)).expect("valid");
    let sources = Sources {
        cmdline: "console=ttyS0 memmap=64M!256M,64M!288M memmap=2M!0x18000000 memmap=3M!384M memmap=1G$4G",
        srat: Some(&srat),
        nfit: Some(&nfit),
        window: Some(HotplugWindow {
            start: 4 * GIB,
            end: 0x3_e000_0000,
        }),
    };
    discover(models::SECTIONS_128M_LEAF_2M, &q35_512m(), &sources)
}

#[test]
fn discovery_prints_one_stable_record_per_outcome() {
    let set = x86_sources_set();
    let lines: Vec<String> = set.records().map(|r| r.to_string()).collect();
    assert_eq!(
        lines,
        [
            "region: add id=0 start=0x100000000 end=0x3e0000000 size=0x2e0000000 kind=hotplug-window source=srat node=0",
            "region: add id=1 start=0x100000000 end=0x110000000 size=0x10000000 kind=pmem source=nfit range=2 node=0",
            "region: add id=2 start=0x110000000 end=0x130000000 size=0x20000000 kind=pmem source=nfit range=4 node=0",
            "region: add id=3 start=0x10000000 end=0x14000000 size=0x4000000 kind=pmem source=memmap text=64M!256M",
            "region: reject range=0x12000000-0x16000000 reason=overlap source=memmap text=64M!288M other=region other_id=3 other_range=0x10000000-0x14000000",
            "region: reject range=0x18000000-0x18200000 reason=too-small source=memmap text=2M!0x18000000 minimum=0x1000000",
            "region: reject range=0x18000000-0x18300000 reason=unaligned source=memmap text=3M!384M what=size value=0x300000 align=0x200000",
            "region: ignore source=memmap text=1G$4G reason=unsupported form=$",
        ]
    );
    let altmaps: Vec<String> = set
        .devices()
        .map(|r| altmap_record(r.id, &r.altmap(set.arch()).unwrap()).to_string())
        .collect();
    assert_eq!(
        altmaps,
        [
            "altmap: id=1 base_pfn=0x100000 end_pfn=0x10ffff reserve=2 free=1534 align=0 alloc=0 offset=1536",
            "altmap: id=2 base_pfn=0x110000 end_pfn=0x12ffff reserve=2 free=2558 align=0 alloc=0 offset=2560",
            "altmap: id=3 base_pfn=0x10000 end_pfn=0x13fff reserve=2 free=510 align=0 alloc=0 offset=512",
        ]
    );
}

#[test]
fn the_boot_window_stands_in_when_the_srat_has_none() {
    let sources = Sources {
        cmdline: "memmap=512M!1G",
        window: Some(HotplugWindow {
            start: 0x8000_0000,
            end: 8 * GIB,
        }),
        ..Sources::default()
    };
    let ram = map(&[(0, 0x8000_0000, MemKind::Usable)]);
    let set = discover(models::SECTIONS_256M_LEAF_1M, &ram, &sources);
    let lines: Vec<String> = set.records().map(|r| r.to_string()).collect();
    assert_eq!(
        lines,
        [
            "region: add id=0 start=0x80000000 end=0x200000000 size=0x180000000 kind=hotplug-window source=boot",
            "region: add id=1 start=0x40000000 end=0x60000000 size=0x20000000 kind=pmem source=memmap text=512M!1G",
        ]
    );
    assert_eq!(
        altmap_record(1, &set.altmap(1).unwrap()).to_string(),
        "altmap: id=1 base_pfn=0x40000 end_pfn=0x5ffff reserve=2 free=2558 align=0 alloc=0 offset=2560"
    );
}

#[test]
fn ascii_map_marks_ram_pmem_windows_and_holes() {
    let set = x86_sources_set();
    let m = ascii_map(&q35_512m(), set.regions(), MAP_COLUMNS);
    let expected = alloc::format!("RP{}PPP{}..", ".".repeat(14), "H".repeat(43));
    assert_eq!(m.cells(), expected);
    assert_eq!(m.column_bytes(), 0x1000_0000);
    assert_eq!(
        m.to_string(),
        alloc::format!("regions: map={expected} start=0x0 end=0x400000000 col=0x10000000")
    );
    let empty = ascii_map(&MemoryMap::new(), &[], 8);
    assert_eq!(
        empty.to_string(),
        "regions: map=........ start=0x0 end=0x8000 col=0x1000"
    );
}

#[test]
fn table_and_sizes_read_well() {
    assert_eq!(human_size(512 * MIB).to_string(), "512M");
    assert_eq!(human_size(0x0ffe_0000).to_string(), "262016K");
    assert_eq!(human_size(0x2_e000_0000).to_string(), "11776M");
    assert_eq!(human_size(3 << 40).to_string(), "3T");
    assert_eq!(human_size(12345).to_string(), "12345");
    assert_eq!(human_size(0).to_string(), "0");
    let set = x86_sources_set();
    let table = regions_table(&set).to_string();
    let rows: Vec<&str> = table.lines().collect();
    assert_eq!(rows.len(), 5);
    assert!(rows[0].starts_with("ID  START"));
    assert!(rows[4].contains("0x10000000") && rows[4].contains("memmap=64M!256M"));
    assert!(rows[1].contains("hotplug-window") && rows[1].ends_with("   0"));
}

// ---- carving the RAM map ----

fn spans(m: &MemoryMap) -> Vec<(u64, u64, &'static str)> {
    m.regions()
        .iter()
        .map(|r| (r.start, r.end, r.kind.name()))
        .collect()
}

#[test]
fn memmap_ranges_are_carved_out_of_usable_ram() {
    let set = x86_sources_set();
    let before = q35_512m();
    let after = set.carve(&before);
    assert_eq!(
        spans(&after),
        [
            (0, 0x9_f000, "usable"),
            (0x9_f000, 0x10_0000, "reserved"),
            (0x10_0000, 0x40_0000, "kernel"),
            (0x40_0000, 0x1000_0000, "usable"),
            (0x1000_0000, 0x1400_0000, "reserved"),
            (0x1400_0000, 0x1ff0_0000, "usable"),
            (0x1ff0_0000, 0x2000_0000, "acpi-reclaimable"),
        ]
    );
    assert_eq!(
        after.bytes_of(MemKind::Usable),
        before.bytes_of(MemKind::Usable) - 64 * MIB
    );
}

#[test]
fn carving_handles_edges_and_ranges_across_spans() {
    let ram = big_ram();
    let cut = [
        0x3_0000_0000 - 2 * MIB..0x3_0000_0000 + 2 * MIB, // across two spans
        0x10_0000..0x20_0000,                             // a span's start
        0x7fe0_0000..0x8000_0000,                         // a span's end
        0x5_0000_0000..0x6_0000_0000,                     // no RAM: ignored
        0x4000_0000..0x4000_0000,                         // empty: ignored
    ];
    let after = carve_ram(&ram, &cut);
    assert_eq!(
        spans(&after),
        [
            (0, 0x10_0000, "reserved"),
            (0x10_0000, 0x20_0000, "reserved"),
            (0x20_0000, 0x7fe0_0000, "usable"),
            (0x7fe0_0000, 0x8000_0000, "reserved"),
            (0x1_0000_0000, 0x2_ffe0_0000, "usable"),
            (0x2_ffe0_0000, 0x3_0000_0000, "reserved"),
            (0x3_0000_0000, 0x3_0020_0000, "reserved"),
            (0x3_0020_0000, 0x5_0000_0000, "usable"),
        ]
    );
    assert_eq!(
        usable_spans(&after),
        [
            0x20_0000..0x7fe0_0000,
            0x1_0000_0000..0x2_ffe0_0000,
            0x3_0020_0000..0x5_0000_0000
        ]
    );
    assert_eq!(spans(&carve_ram(&ram, &[])), spans(&ram));
}

// ---- fuzz ----

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
