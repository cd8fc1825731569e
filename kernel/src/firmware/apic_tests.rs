//! Host tests of the MADT reader: QEMU q35's table, and hostile framing.

use super::*;
use proptest::prelude::*;

/// QEMU q35's MADT: one CPU, the I/O APIC at 0xfec00000, overrides 0→2 and the SCI.
fn q35() -> Vec<u8> {
    let mut t = vec![0u8; 44];
    t[..4].copy_from_slice(b"APIC");
    t[36..40].copy_from_slice(&0xfee0_0000u32.to_le_bytes());
    t.extend_from_slice(&[0, 8, 0, 0, 1, 0, 0, 0]);
    t.extend_from_slice(&[1, 12, 0, 0, 0, 0, 0xc0, 0xfe, 0, 0, 0, 0]);
    t.extend_from_slice(&[2, 10, 0, 0, 2, 0, 0, 0, 0, 0]);
    t.extend_from_slice(&[2, 10, 0, 9, 9, 0, 0, 0, 0x0d, 0]);
    t.extend_from_slice(&[4, 6, 0xff, 0, 0, 1]);
    let len = t.len() as u32;
    t[4..8].copy_from_slice(&len.to_le_bytes());
    t
}

#[test]
fn sci_is_level_active_high_on_gsi_9() {
    let m = parse(&q35()).unwrap();
    assert_eq!(m.lapic, 0xfee0_0000);
    assert_eq!(m.ioapics.len(), 1);
    let sci = m.route(9);
    assert_eq!(
        sci,
        Route {
            gsi: 9,
            active_low: false,
            level: true
        }
    );
    assert_eq!(m.route(0).gsi, 2);
    assert_eq!(
        m.route(4),
        Route {
            gsi: 4,
            active_low: false,
            level: false
        }
    );
    assert_eq!(m.ioapic_for(9).unwrap().address, 0xfec0_0000);
}

#[test]
fn lapic_override_and_truncated_entries() {
    let mut t = q35();
    t.extend_from_slice(&[5, 12, 0, 0, 0, 0, 0xe0, 0xfe, 1, 0, 0, 0]);
    t.extend_from_slice(&[1, 12, 0]);
    let len = t.len() as u32;
    t[4..8].copy_from_slice(&len.to_le_bytes());
    let m = parse(&t).unwrap();
    assert_eq!(m.lapic, 0x1_fee0_0000);
    assert_eq!(m.ioapics.len(), 1, "the truncated I/O APIC is dropped");
    assert_eq!(parse(&t[..40]), Err(MadtError::BadTable));
}

#[test]
fn second_ioapic_serves_the_higher_gsis() {
    let mut m = parse(&q35()).unwrap();
    m.ioapics.push(IoApic {
        id: 1,
        address: 0xfec1_0000,
        gsi_base: 24,
    });
    assert_eq!(m.ioapic_for(30).unwrap().id, 1);
    assert_eq!(m.ioapic_for(23).unwrap().id, 0);
}

/// A MADT around `structures` (no checksum: the parser is handed bytes the crate
/// already checked).
fn madt(structures: &[u8]) -> Vec<u8> {
    let mut t = vec![0u8; 44];
    t[..4].copy_from_slice(b"APIC");
    t.extend_from_slice(structures);
    let len = t.len() as u32;
    t[4..8].copy_from_slice(&len.to_le_bytes());
    t
}

#[test]
fn a_zero_length_structure_ends_the_walk_instead_of_looping() {
    let ioapic = [1, 12, 0, 0, 0, 0, 0xc0, 0xfe, 0, 0, 0, 0];
    let mut s = ioapic.to_vec();
    s.extend_from_slice(&[0x7f, 0, 0, 0]); // reserved type, length 0
    s.extend_from_slice(&ioapic);
    let t = madt(&s);
    let (_, entries) = madt_entries(&t).unwrap();
    let stopped = entries.stopped;
    assert_eq!(entries.count(), 1, "the structure before it is kept");
    assert_eq!(
        stopped.unwrap().to_string(),
        "madt: structure type 127 at offset 0x38 has length 0 (2 needed, 16 bytes left); it and the rest are ignored"
    );
}

#[test]
fn short_structures_and_views_past_the_table_end_the_walk() {
    // An I/O APIC structure claiming 8 bytes: the crate would type 12.
    let s = [1, 8, 0, 0, 0, 0, 0xc0, 0xfe];
    let t = madt(&s);
    let (_, entries) = madt_entries(&t).unwrap();
    assert_eq!(
        entries.stopped.map(|f| (f.ty, f.length, f.need)),
        Some((1, 8, 12))
    );
    // A GICC of QEMU's 80 bytes is read through the crate's 82-byte type: fine with
    // a structure after it, refused as the table's last bytes.
    let mut gicc = vec![0xb, 80];
    gicc.resize(80, 0);
    gicc[32..40].copy_from_slice(&0x0801_0000u64.to_le_bytes());
    let gicd = [
        0xc, 24, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0,
    ];
    let mut s = gicc.clone();
    s.extend_from_slice(&gicd);
    let t = madt(&s);
    let (_, entries) = madt_entries(&t).unwrap();
    assert!(entries.stopped.is_none());
    let kinds: Vec<_> = entries
        .map(|e| match e {
            MadtEntry::Gicc(c) => ("gicc", c.gic_registers_address),
            MadtEntry::Gicd(d) => ("gicd", d.physical_base_address),
            _ => ("other", 0),
        })
        .collect();
    assert_eq!(kinds, [("gicc", 0x0801_0000), ("gicd", 0x0800_0000)]);
    let t = madt(&gicc);
    let (_, entries) = madt_entries(&t).unwrap();
    assert_eq!(
        entries.stopped.map(|f| (f.length, f.need, f.left)),
        Some((80, 82, 80))
    );
}

#[test]
fn a_length_past_the_bytes_or_below_the_fixed_part_is_refused() {
    let mut t = madt(&[]);
    t[4..8].copy_from_slice(&100u32.to_le_bytes());
    assert_eq!(parse(&t).unwrap_err(), MadtError::BadTable);
    t[4..8].copy_from_slice(&40u32.to_le_bytes());
    assert_eq!(parse(&t).unwrap_err(), MadtError::BadTable);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_structures_never_panic_or_hang(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let t = madt(&bytes);
        let info = parse(&t).expect("the fixed part is valid");
        prop_assert!(info.ioapics.len() <= bytes.len() / 12);
        let (_, entries) = madt_entries(&t).unwrap();
        prop_assert!(entries.count() <= bytes.len() / 2);
    }
}
