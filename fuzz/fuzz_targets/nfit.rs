//! Fuzz target `nfit`: the NFIT / FIT parser (`kernel::firmware::nfit`).
//!
//! The input is taken three ways:
//! - as a bare FIT buffer ([`parse_structures`]), compared with a plain reference walker
//!   written here (same verdict, same first error, same SPA ranges and mappings);
//! - wrapped in a valid NFIT header with a correct checksum, which must parse exactly like
//!   the bare buffer with every error offset moved by the 40 header bytes;
//! - as a whole table ([`parse_table`]), for the header checks.
//!
//! On success the SPA ranges never wrap, non-empty ranges are pairwise disjoint, and
//! [`Nfit::check_windows`] agrees with a direct containment check against two windows
//! read from the input's first bytes. Errors must format.
#![no_main]

use std::fmt::Write;
use std::ops::Range;

use hotmem_fuzz::{Bytes, overlaps};
use kernel::firmware::nfit::{
    self, NfitError, SpaKind, SpaSpan, min_len, parse_structures, parse_table,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let bare = parse_structures(data);
    assert_eq!(summary(&bare), reference(data, 0), "bare FIT buffer");
    check_result(&bare, data);

    let table = wrap(data);
    if let Some(table) = &table {
        let wrapped = parse_table(table);
        match (&bare, &wrapped) {
            (Ok(a), Ok(b)) => {
                assert_eq!(b.revision, Some(1));
                assert_eq!((&a.spa, &a.mappings), (&b.spa, &b.mappings));
                assert_eq!((a.control_regions, a.other), (b.control_regions, b.other));
            }
            (Err(a), Err(b)) => assert_eq!(shifted(a, 40), *b, "error offsets"),
            _ => panic!("bare {bare:?} but wrapped {wrapped:?}"),
        }
    }

    let whole = parse_table(data);
    check_result(&whole, data);
    if let Ok(n) = &whole {
        assert!(n.revision.is_some());
        assert!(data.len() >= nfit::SDT_HEADER_LEN + 4);
    }
});

/// What both parsers are compared on: the verdict, the ranges and mappings as tuples.
type Summary = Result<
    (
        Vec<(u16, u64, u64, [u8; 16])>,
        Vec<(u32, u16, u64)>,
        usize,
        usize,
    ),
    NfitError,
>;

fn summary(r: &Result<nfit::Nfit, NfitError>) -> Summary {
    match r {
        Ok(n) => Ok((
            n.spa
                .iter()
                .map(|s| (s.index, s.base, s.length, s.guid.0))
                .collect(),
            n.mappings
                .iter()
                .map(|m| (m.handle, m.spa_index, m.region_size))
                .collect(),
            n.control_regions,
            n.other,
        )),
        Err(e) => Err(e.clone()),
    }
}

fn rd16(b: &[u8], at: usize) -> u16 {
    u16::from(b[at]) | u16::from(b[at + 1]) << 8
}

fn rd32(b: &[u8], at: usize) -> u32 {
    (0..4).fold(0, |v, i| v | u32::from(b[at + i]) << (8 * i))
}

fn rd64(b: &[u8], at: usize) -> u64 {
    (0..8).fold(0, |v, i| v | u64::from(b[at + i]) << (8 * i))
}

/// The reference: structure framing by the ACPI rules, written as a plain index loop.
fn reference(bytes: &[u8], base: usize) -> Summary {
    let mut spa = Vec::new();
    let mut maps = Vec::new();
    let (mut dcr, mut other) = (0, 0);
    let mut at = 0;
    while at < bytes.len() {
        let offset = base + at;
        let left = bytes.len() - at;
        if left < 4 {
            return Err(NfitError::Truncated {
                offset,
                remaining: left,
            });
        }
        let ty = rd16(bytes, at);
        let length = usize::from(rd16(bytes, at + 2));
        if length == 0 {
            return Err(NfitError::ZeroLength { offset, ty });
        }
        let min = match ty {
            0 => 56,
            1 => 48,
            2 | 6 | 7 => 16,
            3 => 8,
            4 => 32,
            5 => 40,
            _ => 4,
        };
        assert_eq!(min, min_len(ty));
        if length < min {
            return Err(NfitError::TooShort {
                offset,
                ty,
                length,
                min,
            });
        }
        if length > left {
            return Err(NfitError::PastEnd {
                offset,
                ty,
                length,
                remaining: left,
            });
        }
        let s = &bytes[at..at + length];
        match ty {
            0 => {
                let (index, b, l) = (rd16(s, 4), rd64(s, 32), rd64(s, 40));
                if u128::from(b) + u128::from(l) > u128::from(u64::MAX) {
                    return Err(NfitError::Wraps {
                        index,
                        base: b,
                        length: l,
                    });
                }
                let mut guid = [0; 16];
                guid.copy_from_slice(&s[16..32]);
                spa.push((index, b, l, guid));
            }
            1 => maps.push((rd32(s, 4), rd16(s, 12), rd64(s, 16))),
            4 => dcr += 1,
            _ => other += 1,
        }
        at += length;
    }
    // Overlap: among non-empty ranges ordered by (base, end), the first neighbour pair.
    let mut spans: Vec<(u64, u64, u16)> = spa
        .iter()
        .filter(|s| s.2 != 0)
        .map(|s| (s.1, s.1 + s.2, s.0))
        .collect();
    spans.sort_by_key(|s| (s.0, s.1));
    for w in spans.windows(2) {
        if w[1].0 < w[0].1 {
            let span = |s: (u64, u64, u16)| SpaSpan {
                index: s.2,
                base: s.0,
                end: s.1,
            };
            return Err(NfitError::Overlap {
                first: span(w[0]),
                second: span(w[1]),
            });
        }
    }
    Ok((spa, maps, dcr, other))
}

/// The input behind a valid NFIT header (length and checksum right), if it fits.
fn wrap(data: &[u8]) -> Option<Vec<u8>> {
    let len = u32::try_from(data.len() + 40).ok()?;
    let mut t = Vec::with_capacity(data.len() + 40);
    t.extend_from_slice(b"NFIT");
    t.extend_from_slice(&len.to_le_bytes());
    t.extend_from_slice(&[1, 0]);
    t.extend_from_slice(b"FUZZ  FUZZTBL 1234ABCD1234");
    t.extend_from_slice(&[0; 4]);
    t.extend_from_slice(data);
    let sum = t.iter().fold(0u8, |s, b| s.wrapping_add(*b));
    t[9] = sum.wrapping_neg();
    assert_eq!(t.iter().fold(0u8, |s, b| s.wrapping_add(*b)), 0);
    Some(t)
}

/// `e` with its offset moved by `by` (structure errors only; the rest unchanged).
fn shifted(e: &NfitError, by: usize) -> NfitError {
    let mut e = e.clone();
    match &mut e {
        NfitError::Truncated { offset, .. }
        | NfitError::ZeroLength { offset, .. }
        | NfitError::TooShort { offset, .. }
        | NfitError::PastEnd { offset, .. } => *offset += by,
        _ => {}
    }
    e
}

fn check_result(r: &Result<nfit::Nfit, NfitError>, data: &[u8]) {
    let nfit = match r {
        Ok(n) => n,
        Err(e) => {
            let mut text = String::new();
            write!(text, "{e}").expect("format");
            assert!(text.starts_with("nfit: "), "{text}");
            return;
        }
    };
    let spans: Vec<Range<u64>> = nfit
        .spa
        .iter()
        .filter(|s| s.length != 0)
        .map(|s| s.base..s.end())
        .collect();
    for (i, a) in spans.iter().enumerate() {
        for b in &spans[i + 1..] {
            assert!(!overlaps(a, b), "{a:x?} overlaps {b:x?}");
        }
    }
    for s in &nfit.spa {
        assert_eq!(s.is_pmem(), s.kind() == SpaKind::PersistentMemory);
        let _ = (s.node(), format!("{}", s.guid));
    }
    let mut b = Bytes::new(data);
    let windows: Vec<Range<u64>> = (0..2)
        .map(|_| {
            let start = b.u64() >> 8;
            start..start.saturating_add(b.u64() >> 16)
        })
        .collect();
    for n in 0..=windows.len() {
        let w = &windows[..n];
        let expect_ok = w.is_empty()
            || nfit
                .pmem()
                .filter(|s| s.length != 0)
                .all(|s| w.iter().any(|w| w.start <= s.base && s.end() <= w.end));
        let got = nfit.check_windows(w);
        assert_eq!(got.is_ok(), expect_ok, "windows {w:x?}: {got:?}");
        if let Err(e) = got {
            assert!(matches!(e, NfitError::OutsideWindow { windows, .. } if windows == n));
            let _ = e.to_string();
        }
    }
}
