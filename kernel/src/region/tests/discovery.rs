//! Discovery: one stable record per outcome, the boot window's stand-in, the ASCII map
//! and the table.

use super::*;

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
