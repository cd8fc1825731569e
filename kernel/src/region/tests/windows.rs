//! NFIT ranges and hotplug windows: QEMU's label sizes, ranges outside a window or on
//! RAM, windows that contain devices.

use super::*;

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
