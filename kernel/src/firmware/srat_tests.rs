//! Host tests of the SRAT parser: QEMU's table, hostile shapes refused one error each,
//! revision-1 domain masking, window overlaps, and property tests.

use super::fixture::*;
use super::*;
use alloc::string::ToString;
use proptest::prelude::*;

const GIB: u64 = 1 << 30;

#[test]
fn qemu_table_reports_the_window_and_the_nvdimms() {
    let t = qemu_x86(&[(0x1_0000_0000, 0x1000_0000)]);
    let srat = parse_table(&t).expect("valid");
    assert_eq!(srat.revision, Some(1));
    assert_eq!((srat.memory.len(), srat.other), (5, 1));
    assert_eq!(
        srat.window_ranges(),
        alloc::vec![0x1_0000_0000..0x3_e000_0000]
    );
    let nv: Vec<_> = srat.non_volatile().map(MemAffinity::range).collect();
    assert_eq!(nv, alloc::vec![0x1_0000_0000..0x1_1000_0000]);
}

#[test]
fn revision_one_masks_the_domain_to_eight_bits() {
    let mut s = Vec::new();
    memory(&mut s, 0x1_02, 4 * GIB, GIB, MEM_ENABLED | MEM_HOTPLUGGABLE);
    let srat = parse_table(&srat_table(&s)).expect("valid");
    assert_eq!(srat.memory[0].domain, 2);
    assert_eq!(parse_structures(&s).expect("valid").memory[0].domain, 0x102);
}

#[test]
fn disabled_and_empty_entries_are_not_windows() {
    let mut s = Vec::new();
    memory(&mut s, 0, 4 * GIB, GIB, MEM_HOTPLUGGABLE);
    memory(&mut s, 0, 8 * GIB, 0, MEM_ENABLED | MEM_HOTPLUGGABLE);
    memory(&mut s, 0, u64::MAX, 2, 0); // disabled: its wrap is not looked at
    let srat = parse_structures(&s).expect("valid");
    assert_eq!(srat.hotplug_windows().count(), 0);
}

#[test]
fn hostile_input_gets_one_error_each() {
    let good = qemu_x86(&[]);
    assert!(matches!(
        parse_table(&good[..40]),
        Err(SratError::Table(TableError::Short { len: 40, need: 48 }))
    ));
    let mut bad = good.clone();
    bad[60] ^= 1;
    assert_eq!(
        parse_table(&bad).unwrap_err().to_string(),
        "srat: checksum mismatch: the bytes sum to 0x01, not 0"
    );

    let mut s = Vec::new();
    cpu(&mut s, 0, 0);
    s.push(1);
    assert_eq!(
        parse_structures(&s).unwrap_err().to_string(),
        "srat: truncated structure at offset 0x10: 1 byte left, a header needs 2"
    );
    assert_eq!(
        parse_structures(&[1, 0, 0, 0]).unwrap_err(),
        SratError::ZeroLength { offset: 0, ty: 1 }
    );
    let mut s = Vec::new();
    memory(&mut s, 0, 0, GIB, MEM_ENABLED);
    s[1] = 24;
    assert_eq!(
        parse_table(&srat_table(&s)).unwrap_err().to_string(),
        "srat: structure type 1 at offset 0x30 has length 24, shorter than its minimum 40"
    );
    let mut s = Vec::new();
    memory(&mut s, 0, 0, GIB, MEM_ENABLED);
    assert_eq!(
        parse_structures(&s[..39]).unwrap_err(),
        SratError::PastEnd {
            offset: 0,
            ty: 1,
            length: 40,
            remaining: 39
        }
    );
    let mut s = Vec::new();
    memory(&mut s, 0, u64::MAX - 5, 5, MEM_ENABLED);
    assert!(parse_structures(&s).is_ok(), "ends at u64::MAX");
    let mut s = Vec::new();
    memory(&mut s, 0, u64::MAX - 5, 6, MEM_ENABLED);
    assert!(matches!(
        parse_structures(&s),
        Err(SratError::Wraps { offset: 0, .. })
    ));
}

#[test]
fn overlapping_windows_name_both() {
    let mut s = Vec::new();
    let hot = MEM_ENABLED | MEM_HOTPLUGGABLE;
    memory(&mut s, 1, 6 * GIB, 4 * GIB, hot);
    memory(&mut s, 0, 4 * GIB, 4 * GIB, hot);
    assert_eq!(
        parse_structures(&s).unwrap_err().to_string(),
        "srat: hot-pluggable window 0x100000000-0x200000000 overlaps window 0x180000000-0x280000000"
    );
    let mut s = Vec::new();
    memory(&mut s, 0, 4 * GIB, 4 * GIB, hot);
    memory(&mut s, 1, 8 * GIB, 4 * GIB, hot);
    assert_eq!(
        parse_structures(&s)
            .expect("adjacent")
            .window_ranges()
            .len(),
        2
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = parse_structures(&bytes);
        let _ = parse_table(&bytes);
        let _ = parse_table(&srat_table(&bytes));
    }

    #[test]
    fn random_memory_entries_never_panic(
        entries in proptest::collection::vec((any::<u32>(), any::<u64>(), any::<u64>(), 0u32..8), 0..8)
    ) {
        let mut s = Vec::new();
        for (d, b, l, f) in entries {
            memory(&mut s, d, b, l, f);
        }
        if let Ok(srat) = parse_table(&srat_table(&s)) {
            for w in srat.hotplug_windows() {
                prop_assert!(w.base.checked_add(w.length).is_some());
            }
        }
    }
}
