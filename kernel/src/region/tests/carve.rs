//! Carving the RAM map: regions taken out of usable RAM, edges and ranges across spans.

use super::*;

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
