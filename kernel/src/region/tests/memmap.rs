//! The `memmap=` rules: bad lines refused one line each, spans, the memory model's end.

use super::*;

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
