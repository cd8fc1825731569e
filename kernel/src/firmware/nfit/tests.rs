//! Host tests of the NFIT parser: QEMU's own FIT, each hostile shape refused with its

//! one error, the hotplug-window check, and property tests over generated tables.
use super::fixture::*;
use super::*;
use alloc::string::ToString;
use alloc::vec;
use proptest::prelude::*;

const MIB: u64 = 1 << 20;

fn two_pmem(a: (u64, u64), b: (u64, u64)) -> Vec<u8> {
    let mut s = Vec::new();
    spa(&mut s, 1, 0x2, 0, PMEM_GUID, a.0, a.1);
    spa(&mut s, 2, 0x2, 1, PMEM_GUID, b.0, b.1);
    s
}

#[test]
fn pmem_guid_is_stored_mixed_endian() {
    let stored = [
        0x79, 0xd3, 0xf0, 0x66, 0xf3, 0xb4, 0x74, 0x40, 0xac, 0x43, 0x0d, 0x33, 0x18, 0xb7, 0x8c,
        0xdb,
    ];
    assert_eq!(PMEM_GUID.0, stored);
    assert_eq!(
        PMEM_GUID.to_string(),
        "66F0D379-B4F3-4074-AC43-0D3318B78CDB"
    );
    let mut swapped = stored;
    swapped[..4].reverse();
    assert_eq!(SpaKind::of(&Guid(swapped)), SpaKind::Other);
}

#[test]
fn qemu_two_nvdimm_table_parses_to_its_devices() {
    let fit = qemu_fit(&QEMU_X86_TWO_NVDIMMS);
    assert_eq!(fit.len(), 368, "QEMU: two NVDIMMs give 368 bytes of FIT");
    let table = nfit_table(&fit);
    let nfit = parse_table(&table).expect("valid");
    assert_eq!(nfit.revision, Some(1));
    let mut from_fit = parse_structures(&fit).expect("the same bytes as a FIT buffer");
    from_fit.revision = Some(1);
    assert_eq!(nfit, from_fit);
    let got: Vec<_> = nfit
        .pmem()
        .map(|s| (s.index, s.base, s.length, s.node(), s.mapping_attributes))
        .collect();
    assert_eq!(
        got,
        [
            (2, 0x1_0000_0000, 0x0ffe_0000, Some(0), 0x8008),
            (4, 0x1_0ffe_0000, 0x1ffe_0000, Some(0), 0x8008)
        ]
    );
    assert_eq!(nfit.control_regions, 2);
    assert_eq!(nfit.other, 0);
    let m: Vec<_> = nfit
        .mappings
        .iter()
        .map(|m| (m.handle, m.spa_index, m.control_region_index, m.region_size))
        .collect();
    assert_eq!(m, [(1, 2, 3, 0x0ffe_0000), (2, 4, 5, 0x1ffe_0000)]);
    let window = 0x1_0000_0000..0x3_e000_0000;
    assert_eq!(nfit.check_windows(&[window]), Ok(()));
}

#[test]
fn other_guids_and_structures_are_classified_and_counted() {
    let mut s = Vec::new();
    spa(&mut s, 1, 0, 7, VOLATILE_GUID, 0x1000_0000, MIB);
    spa(&mut s, 2, 0, 0, CONTROL_REGION_GUID, 0x2000_0000, MIB);
    spa(&mut s, 3, 0, 0, BLOCK_DATA_WINDOW_GUID, 0x3000_0000, MIB);
    spa(&mut s, 4, 0, 0, Guid([7; 16]), 0x4000_0000, MIB);
    s.extend_from_slice(&[7, 0, 16, 0]); // platform capabilities
    s.extend_from_slice(&[0; 12]);
    s.extend_from_slice(&[0x99, 0, 4, 0]); // unknown type, header only
    let nfit = parse_structures(&s).expect("valid");
    let kinds: Vec<_> = nfit.spa.iter().map(|s| s.kind()).collect();
    assert_eq!(
        kinds,
        [
            SpaKind::Volatile,
            SpaKind::ControlRegion,
            SpaKind::BlockDataWindow,
            SpaKind::Other
        ]
    );
    assert_eq!(nfit.spa[0].node(), None, "proximity not flagged valid");
    assert_eq!((nfit.pmem().count(), nfit.other), (0, 2));
    assert_eq!(parse_structures(&[]), Ok(Nfit::default()));
}

#[test]
fn header_problems_are_refused() {
    let good = nfit_table(&qemu_fit(&QEMU_X86_TWO_NVDIMMS_ALIGNED));
    let err = |b: &[u8]| parse_table(b).unwrap_err().to_string();

    assert_eq!(
        err(&good[..20]),
        "nfit: table of 20 bytes is shorter than its 40-byte fixed part"
    );
    let mut bad = good.clone();
    bad[0] = b'X';
    assert_eq!(err(&bad), "nfit: signature \"XFIT\" is not \"NFIT\"");
    assert_eq!(
        err(&good[..good.len() - 1]),
        "nfit: header length 408 is outside 40..=407 (fixed part..=bytes given)"
    );
    let mut bad = good.clone();
    bad[100] ^= 0x10;
    assert_eq!(
        err(&bad),
        "nfit: checksum mismatch: the bytes sum to 0x10, not 0"
    );
    let mut trailing = good.clone();
    trailing.extend_from_slice(&[0xff; 9]);
    assert!(
        parse_table(&trailing).is_ok(),
        "bytes past the length are ignored"
    );
}

#[test]
fn hostile_structures_get_one_error_each() {
    let fit = qemu_fit(&QEMU_X86_TWO_NVDIMMS_ALIGNED);
    let table_err = |s: &[u8]| parse_table(&nfit_table(s)).unwrap_err();

    // Truncated: 2 stray bytes after the last structure.
    let mut s = fit.clone();
    s.extend_from_slice(&[0, 0]);
    assert_eq!(
        table_err(&s),
        NfitError::Truncated {
            offset: 40 + 368,
            remaining: 2
        }
    );
    assert_eq!(
        table_err(&s).to_string(),
        "nfit: truncated structure at offset 0x198: 2 bytes left, a header needs 4"
    );

    // Length 0.
    let mut s = fit.clone();
    s[2..4].copy_from_slice(&0u16.to_le_bytes());
    assert_eq!(table_err(&s), NfitError::ZeroLength { offset: 40, ty: 0 });

    // Shorter than the type's minimum.
    let mut s = fit.clone();
    s[58..60].copy_from_slice(&40u16.to_le_bytes()); // the memdev after the first SPA
    assert_eq!(
        parse_structures(&s).unwrap_err().to_string(),
        "nfit: structure type 1 at offset 0x38 has length 40, shorter than its minimum 48"
    );

    // Past the end.
    let mut s = fit.clone();
    let last_dcr = 368 - 80;
    s[last_dcr + 2..last_dcr + 4].copy_from_slice(&200u16.to_le_bytes());
    assert_eq!(
        parse_structures(&s).unwrap_err(),
        NfitError::PastEnd {
            offset: last_dcr,
            ty: 4,
            length: 200,
            remaining: 80
        }
    );

    // A structure cut short by the table end.
    assert!(matches!(
        parse_structures(&fit[..100]),
        Err(NfitError::PastEnd { offset: 56, .. })
    ));
}

#[test]
fn overlapping_ranges_name_both() {
    let s = two_pmem((0x1_0000_0000, 256 * MIB), (0x1_0800_0000, 256 * MIB));
    let e = parse_table(&nfit_table(&s)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "nfit: spa 1 0x100000000-0x110000000 overlaps spa 2 0x108000000-0x118000000"
    );
    // Listed in the other order: still the lower base first.
    let s = two_pmem((0x1_0800_0000, 256 * MIB), (0x1_0000_0000, 256 * MIB));
    assert!(matches!(
        parse_structures(&s),
        Err(NfitError::Overlap {
            first: SpaSpan { index: 2, .. },
            second: SpaSpan { index: 1, .. }
        })
    ));
    // Touching is fine, and so is a contained empty range.
    let s = two_pmem((0x1_0000_0000, 256 * MIB), (0x1_1000_0000, 256 * MIB));
    assert!(parse_structures(&s).is_ok());
    let s = two_pmem((0x1_0000_0000, 256 * MIB), (0x1_0400_0000, 0));
    assert!(parse_structures(&s).is_ok());
}

#[test]
fn wrapping_range_is_refused() {
    let s = two_pmem((u64::MAX - MIB, 2 * MIB), (0, MIB));
    assert!(matches!(
        parse_structures(&s),
        Err(NfitError::Wraps { index: 1, .. })
    ));
}

#[test]
fn ranges_outside_the_window_are_named() {
    let nfit = parse_structures(&two_pmem(
        (0x1_0000_0000, 256 * MIB),
        (0x3_e000_0000, 256 * MIB),
    ))
    .expect("valid");
    let window = 0x1_0000_0000..0x3_e000_0000;
    let e = nfit
        .check_windows(core::slice::from_ref(&window))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "nfit: spa 2 0x3e0000000-0x3f0000000 lies outside the hotplug window"
    );
    assert_eq!(nfit.check_windows(&[]), Ok(()), "no window known");
    let two = [window, 0x3_e000_0000..0x4_0000_0000];
    assert_eq!(nfit.check_windows(&two), Ok(()));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = parse_structures(&bytes);
        let _ = parse_table(&bytes);
        let mut signed = bytes.clone();
        if signed.len() >= 10 {
            signed[..4].copy_from_slice(b"NFIT");
        }
        let _ = parse_table(&signed);
    }

    #[test]
    fn random_structures_in_a_valid_table_never_panic(
        structs in proptest::collection::vec(
            (0u16..9, 0u16..120, proptest::collection::vec(any::<u8>(), 0..120)),
            0..8,
        )
    ) {
        let mut s = Vec::new();
        for (ty, len, payload) in structs {
            s.extend_from_slice(&ty.to_le_bytes());
            s.extend_from_slice(&len.to_le_bytes());
            s.extend_from_slice(&payload);
        }
        if let Ok(nfit) = parse_table(&nfit_table(&s)) {
            for r in &nfit.spa {
                prop_assert!(r.base.checked_add(r.length).is_some());
            }
        }
    }

    #[test]
    fn qemu_layout_round_trips(sizes in proptest::collection::vec(1u64..64, 1..4)) {
        let mut base = 0x1_0000_0000;
        let mut dimms = vec![];
        for (slot, mib) in sizes.iter().enumerate() {
            dimms.push((slot as u32, base, mib * 2 * MIB, 0));
            base += mib * 2 * MIB;
        }
        let nfit = parse_table(&nfit_table(&qemu_fit(&dimms))).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(nfit.pmem().count(), dimms.len());
        prop_assert_eq!(nfit.control_regions, dimms.len());
    }
}
