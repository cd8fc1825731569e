//! Facts a kernel without an AML interpreter can still take from QEMU's DSDT by a byte
//! scan: the memory-hotplug slot count `Name(MDNR, N)` and the MHPD register block
//! `OperationRegion(HPMR, SystemIO|SystemMemory, base, len)` (qemu-hotplug.md §1.1).

/// AML `NameOp`.
const NAME_OP: u8 = 0x08;
/// AML `ExtOpPrefix` + `OpRegionOp`.
const OP_REGION: [u8; 2] = [0x5b, 0x80];

/// An integer term at the start of `aml`: its value and encoded length.
fn integer(aml: &[u8]) -> Option<(u64, usize)> {
    let le = |n: usize| {
        aml.get(1..1 + n).map(|b| {
            b.iter()
                .rev()
                .fold(0u64, |acc, &byte| acc << 8 | u64::from(byte))
        })
    };
    match *aml.first()? {
        0x00 => Some((0, 1)),
        0x01 => Some((1, 1)),
        0xff => Some((u64::MAX, 1)),
        0x0a => le(1).map(|v| (v, 2)),
        0x0b => le(2).map(|v| (v, 3)),
        0x0c => le(4).map(|v| (v, 5)),
        0x0e => le(8).map(|v| (v, 9)),
        _ => None,
    }
}

/// Every offset where `needle` starts in `hay`.
fn find_all<'a>(hay: &'a [u8], needle: &'a [u8]) -> impl Iterator<Item = usize> + 'a {
    hay.windows(needle.len())
        .enumerate()
        .filter(move |(_, w)| *w == needle)
        .map(|(i, _)| i)
}

/// The value of `Name(name, integer)`: the first match whose data is an integer.
pub fn named_integer(aml: &[u8], name: &[u8; 4]) -> Option<u64> {
    let mut needle = [0u8; 5];
    needle[0] = NAME_OP;
    needle[1..].copy_from_slice(name);
    find_all(aml, &needle).find_map(|at| integer(&aml[at + 5..]).map(|(v, _)| v))
}

/// `Name(MDNR, N)`: how many DIMM slots the memory-hotplug controller has.
pub fn mdnr(aml: &[u8]) -> Option<u32> {
    named_integer(aml, b"MDNR").and_then(|v| u32::try_from(v).ok())
}

/// An operation region found in the AML.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpRegion {
    /// Region space: 0 SystemMemory, 1 SystemIO, ...
    pub space: u8,
    /// Base address or port.
    pub base: u64,
    /// Length in bytes.
    pub len: u64,
}

/// `OperationRegion(name, space, base, len)` with integer base and length.
pub fn op_region(aml: &[u8], name: &[u8; 4]) -> Option<OpRegion> {
    let mut needle = [0u8; 6];
    needle[..2].copy_from_slice(&OP_REGION);
    needle[2..].copy_from_slice(name);
    find_all(aml, &needle).find_map(|at| {
        let rest = &aml[at + 6..];
        let space = *rest.first()?;
        let (base, n) = integer(&rest[1..])?;
        let (len, _) = integer(&rest[1 + n..])?;
        Some(OpRegion { space, base, len })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dsdt(body: &[u8]) -> Vec<u8> {
        let mut t = vec![0u8; 36];
        t[..4].copy_from_slice(b"DSDT");
        t.extend_from_slice(b"\x10\x45\x05\\_SB_\x5b\x82junk");
        t.extend_from_slice(body);
        t.extend_from_slice(b"\x14\x08_E03\x00trailing");
        t
    }

    #[test]
    fn qemu_encodings_of_mdnr_and_hpmr() {
        let t = dsdt(b"\x08MDNR\x0a\x04\x5b\x80HPMR\x01\x0b\x00\x0a\x0a\x18");
        assert_eq!(mdnr(&t), Some(4));
        assert_eq!(
            op_region(&t, b"HPMR"),
            Some(OpRegion {
                space: 1,
                base: 0xa00,
                len: 0x18
            })
        );
    }

    #[test]
    fn zero_one_word_and_dword_constants() {
        assert_eq!(mdnr(&dsdt(b"\x08MDNR\x00")), Some(0));
        assert_eq!(mdnr(&dsdt(b"\x08MDNR\x01")), Some(1));
        assert_eq!(mdnr(&dsdt(b"\x08MDNR\x0b\x00\x01")), Some(256));
        let arm = dsdt(b"\x5b\x80HPMR\x00\x0c\x00\x00\x07\x09\x0a\x18");
        assert_eq!(
            op_region(&arm, b"HPMR"),
            Some(OpRegion {
                space: 0,
                base: 0x0907_0000,
                len: 0x18
            })
        );
    }

    #[test]
    fn references_without_data_are_skipped() {
        // A use of the name (no NameOp before it) and a NameOp with a package after it.
        let t = dsdt(b"\x70MDNR\x60\x08MDNR\x12\x03\x08MDNR\x0a\x02");
        assert_eq!(mdnr(&t), Some(2));
        assert_eq!(mdnr(&dsdt(b"MDNR")), None);
        assert_eq!(mdnr(&dsdt(b"\x08MDNR")), None, "truncated");
        assert_eq!(op_region(&dsdt(b"\x5b\x80HPMR\x01\x0b\x00"), b"HPMR"), None);
    }
}
