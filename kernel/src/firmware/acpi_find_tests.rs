//! Host tests of the table walk over a small hand-built machine: tables in one flat
//! 32 KiB of "physical memory" from address 0, read through a bounds-checked reader.

use super::*;

const MEMORY: usize = 0x8000;

fn checksum_fix(bytes: &mut [u8], at: usize) {
    let sum = bytes.iter().fold(0u8, |a, &b| a.wrapping_add(b));
    bytes[at] = bytes[at].wrapping_sub(sum);
}

/// A table of `len` bytes: signature, length, revision 1, a valid checksum.
fn table(sig: &[u8; 4], len: usize) -> Vec<u8> {
    let mut t = vec![0u8; len];
    t[..4].copy_from_slice(sig);
    t[4..8].copy_from_slice(&(len as u32).to_le_bytes());
    t[8] = 1;
    checksum_fix(&mut t, 9);
    t
}

/// An RSDP (revision 2, 36 bytes) pointing at an XSDT at `xsdt`.
fn rsdp(xsdt: u64) -> Vec<u8> {
    let mut r = vec![0u8; 36];
    r[..8].copy_from_slice(b"RSD PTR ");
    r[15] = 2;
    r[20..24].copy_from_slice(&36u32.to_le_bytes());
    r[24..32].copy_from_slice(&xsdt.to_le_bytes());
    checksum_fix(&mut r[..20], 8);
    checksum_fix(&mut r, 32);
    r
}

/// An XSDT listing `entries`.
fn xsdt(entries: &[u64]) -> Vec<u8> {
    let mut t = table(b"XSDT", 36 + 8 * entries.len());
    for (i, e) in entries.iter().enumerate() {
        t[36 + 8 * i..44 + 8 * i].copy_from_slice(&e.to_le_bytes());
    }
    t[9] = 0;
    checksum_fix(&mut t, 9);
    t
}

/// A 116-byte (ACPI 1.0 layout) FADT pointing at a DSDT.
fn fadt(dsdt: u32) -> Vec<u8> {
    let mut t = table(b"FACP", 116);
    t[40..44].copy_from_slice(&dsdt.to_le_bytes());
    t[9] = 0;
    checksum_fix(&mut t, 9);
    t
}

/// RSDP at 0x1000, XSDT at 0x2000 listing a FADT at 0x3000 and an NFIT at 0x4000; the
/// FADT points at a DSDT at 0x5000.
fn machine() -> Vec<(u64, Vec<u8>)> {
    vec![
        (0x1000, rsdp(0x2000)),
        (0x2000, xsdt(&[0x3000, 0x4000])),
        (0x3000, fadt(0x5000)),
        (0x4000, table(b"NFIT", 80)),
        (0x5000, table(b"DSDT", 64)),
    ]
}

/// A reader over the flat memory the tables are placed in; `None` past its end.
fn reader(tables: Vec<(u64, Vec<u8>)>) -> impl Fn(u64, usize) -> Option<&'static [u8]> {
    let mut mem = vec![0u8; MEMORY];
    for (pa, bytes) in tables {
        mem[pa as usize..pa as usize + bytes.len()].copy_from_slice(&bytes);
    }
    let mem: &'static [u8] = Box::leak(mem.into_boxed_slice());
    move |pa, len| mem.get(usize::try_from(pa).ok()?..usize::try_from(pa).ok()?.checked_add(len)?)
}

#[test]
fn finds_a_table_through_the_xsdt() {
    let read = reader(machine());
    let nfit = find::<Nfit>(0x1000, &read).expect("present");
    assert_eq!((&nfit[..4], nfit.len()), (&b"NFIT"[..], 80));
    assert_eq!(find::<Srat>(0x1000, &read), Err(FindError::NotFound));
    let fadt = find::<acpi::fadt::Fadt>(0x1000, &read).expect("present");
    assert_eq!(fadt.len(), 116);
}

#[test]
fn the_dsdt_is_found_through_the_fadt() {
    let read = reader(machine());
    let dsdt = dsdt(0x1000, &read).expect("present");
    assert_eq!((&dsdt[..4], dsdt.len()), (&b"DSDT"[..], 64));
}

#[test]
fn bad_rsdp_checksum_and_short_tables_are_errors() {
    let mut mem = machine();
    mem[0].1[9] ^= 1;
    assert_eq!(find::<Nfit>(0x1000, &reader(mem)), Err(FindError::BadRsdp));
    let mut mem = machine();
    mem[3].1[4..8].copy_from_slice(&0x8000u32.to_le_bytes());
    let err = find::<Nfit>(0x1000, &reader(mem)).unwrap_err();
    assert_eq!(
        err,
        FindError::BadLength(Refusal {
            signature: *b"NFIT",
            pa: 0x4000,
            len: 0x8000
        })
    );
    assert_eq!(
        err.to_string(),
        "table NFIT at 0x4000 claims 0x8000 bytes that are not mapped memory (or fewer than its header)"
    );
}

#[test]
fn an_unreadable_rsdp_or_root_is_refused() {
    let read = reader(machine());
    assert_eq!(
        find::<Nfit>(MEMORY as u64 - 8, &read),
        Err(FindError::BadRsdp)
    );
    assert_eq!(find::<Nfit>(0x6000, &read), Err(FindError::BadRsdp));
    let mut mem = machine();
    mem[0] = (0x1000, rsdp(MEMORY as u64 - 16));
    assert_eq!(find::<Nfit>(0x1000, &reader(mem)), Err(FindError::BadRoot));
    let mut mem = machine();
    mem[1].1[40] ^= 1; // the XSDT's checksum no longer holds
    assert_eq!(find::<Nfit>(0x1000, &reader(mem)), Err(FindError::BadRoot));
    let mut mem = machine();
    mem[0].1[20..24].copy_from_slice(&0x10_0000u32.to_le_bytes()); // RSDP length
    assert_eq!(find::<Nfit>(0x1000, &reader(mem)), Err(FindError::BadRsdp));
}

/// Entries the crate would mishandle (a header length below 36 that it subtracts from,
/// a signature that its messages would panic on, an address past memory) are skipped
/// and the walk goes on to the table after them.
#[test]
fn hostile_entries_are_skipped_and_the_walk_goes_on() {
    let mut short = table(b"SSDT", 36);
    short[4..8].copy_from_slice(&8u32.to_le_bytes());
    let mut garbled = table(b"SRAT", 48);
    garbled[..4].copy_from_slice(&[0xff, 0xfe, b'A', b'T']);
    let mem = vec![
        (0x1000, rsdp(0x2000)),
        (0x2000, xsdt(&[0x3000, 0x3100, 0xdead_0000, 0x4000])),
        (0x3000, short),
        (0x3100, garbled),
        (0x4000, table(b"NFIT", 80)),
    ];
    let read = reader(mem);
    assert_eq!(find::<Nfit>(0x1000, &read).map(<[u8]>::len), Ok(80));
    assert!(matches!(
        find::<Ssdt>(0x1000, &read),
        Err(FindError::BadLength(Refusal { len: 8, .. }))
    ));
    let (count, refused) = with_tables(0x1000, &read, |t| t.headers().count()).unwrap();
    assert_eq!(count, 1, "only the NFIT is a valid table");
    assert_eq!(refused.map(|r| r.pa), Some(0x3000));
}
