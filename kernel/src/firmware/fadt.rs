//! The FADT fields an x86 hotplug source needs without an AML interpreter: the SCI
//! interrupt, the GPE0 block (status half, then enable half) and the DSDT address.
//! The `acpi` crate finds the table and decodes it; a short (ACPI 1.0) FADT reads as
//! zero past its end, so it has no `X_DSDT`.

use core::mem::size_of;

use acpi::address::AddressSpace;
use acpi::fadt::Fadt;

use super::acpi_find::{self, FindError, ReadPhys};

/// What the kernel takes from the FADT.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FadtInfo {
    /// The SCI's legacy IRQ (`SCI_INT`, 9 on QEMU).
    pub sci_int: u16,
    /// I/O port of the GPE0 block (`GPE0_BLK`; 0: none).
    pub gpe0_blk: u32,
    /// Bytes of the GPE0 block: status bytes first, then as many enable bytes.
    pub gpe0_blk_len: u8,
    /// Physical address of the DSDT (`X_DSDT` when present and non-zero, else `DSDT`).
    pub dsdt: u64,
}

impl FadtInfo {
    /// The I/O port of the GPE0 status byte holding GPE `bit`, and the mask within it.
    pub fn gpe0_status(&self, bit: u32) -> Option<(u16, u8)> {
        self.gpe0_port(bit, 0)
    }

    /// The I/O port of the GPE0 enable byte holding GPE `bit`, and the mask within it.
    pub fn gpe0_enable(&self, bit: u32) -> Option<(u16, u8)> {
        self.gpe0_port(bit, u32::from(self.gpe0_blk_len) / 2)
    }

    fn gpe0_port(&self, bit: u32, half: u32) -> Option<(u16, u8)> {
        let bytes = u32::from(self.gpe0_blk_len) / 2;
        if self.gpe0_blk == 0 || bit / 8 >= bytes {
            return None;
        }
        let port = u16::try_from(self.gpe0_blk + half + bit / 8).ok()?;
        Some((port, 1 << (bit % 8)))
    }
}

/// Why the FADT was not usable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FadtError {
    /// Not a `FACP` table, or shorter than the ACPI 1.0 layout (116 bytes).
    BadTable,
}

/// Bytes of the ACPI 1.0 FADT, the shortest accepted.
pub const MIN_LEN: usize = 116;
/// Offset of `GPE0_BLK_LEN`.
const GPE0_BLK_LEN_AT: usize = 92;

/// The FADT found through the `acpi` crate (checksum checked), as [`FadtInfo`].
pub fn find(rsdp: u64, read: ReadPhys<'_>) -> Result<FadtInfo, FindError> {
    let table = acpi_find::find::<Fadt>(rsdp, read)?;
    parse(table).map_err(|_| FindError::NotFound)
}

/// The table as the crate's [`Fadt`], zero-filled past its `length` as Linux fills its
/// local copy (`acpi_tb_create_local_fadt`), so the crate never reads past the table:
/// a field the firmware did not provide reads as 0.
pub fn padded(table: &[u8]) -> Result<Fadt, FadtError> {
    let copy = zero_filled(table)?;
    // SAFETY: `Fadt` is `repr(C, packed)` plain data (integers, byte arrays, flag words
    // and `MaybeUninit` fields), valid for any bytes, and `copy` is exactly its size.
    Ok(unsafe { core::ptr::read_unaligned(copy.as_ptr().cast::<Fadt>()) })
}

fn zero_filled(table: &[u8]) -> Result<[u8; size_of::<Fadt>()], FadtError> {
    if table.len() < MIN_LEN || &table[..4] != b"FACP" {
        return Err(FadtError::BadTable);
    }
    let length = u32::from_le_bytes(table[4..8].try_into().expect("4 bytes")) as usize;
    let len = length.min(table.len()).min(size_of::<Fadt>());
    let mut copy = [0u8; size_of::<Fadt>()];
    copy[..len].copy_from_slice(&table[..len]);
    Ok(copy)
}

/// Reads the fields from the whole table (header included) through the crate's
/// accessors: `X_DSDT` over `DSDT` and `X_GPE0_BLK` over `GPE0_BLK` when the table's
/// revision has them (2+) and they are non-zero, as the crate and Linux prefer them.
pub fn parse(table: &[u8]) -> Result<FadtInfo, FadtError> {
    let fadt = padded(table)?;
    // The crate computes the legacy block's bit width as `GPE0_BLK_LEN * 8` in a u8:
    // 32 bytes or more would overflow it, so such a block is not handed to it.
    let gpe0_len = zero_filled(table)?[GPE0_BLK_LEN_AT];
    let gpe0 = if gpe0_len < 32 {
        fadt.gpe0_block().ok().flatten()
    } else {
        log::warn!(
            "fadt: GPE0_BLK_LEN {gpe0_len} is more than the 31 bytes this kernel reads; no GPE0"
        );
        None
    };
    let (gpe0_blk, gpe0_blk_len) = match gpe0 {
        Some(g) if g.address_space == AddressSpace::SystemIo => {
            (u32::try_from(g.address).unwrap_or(0), g.bit_width / 8)
        }
        _ => (0, 0),
    };
    Ok(FadtInfo {
        sci_int: fadt.sci_interrupt,
        gpe0_blk,
        gpe0_blk_len,
        dsdt: fadt.dsdt_address().map_or(0, |a| a as u64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// QEMU q35's values: SCI 9, GPE0 at 0x620 (16 bytes), DSDT at 0x7fb7a000.
    pub(crate) fn q35_fadt(len: usize) -> Vec<u8> {
        let mut t = vec![0u8; len];
        t[..4].copy_from_slice(b"FACP");
        t[4..8].copy_from_slice(&(len as u32).to_le_bytes());
        t[8] = 3; // QEMU q35's FADT revision: X_DSDT and X_GPE0_BLK are defined
        t[40..44].copy_from_slice(&0x7fb7_a000u32.to_le_bytes());
        t[46] = 9;
        t[80..84].copy_from_slice(&0x620u32.to_le_bytes());
        t[92] = 16;
        t
    }

    #[test]
    fn q35_gpe0_halves_and_sci() {
        let f = parse(&q35_fadt(244)).unwrap();
        assert_eq!((f.sci_int, f.gpe0_blk, f.gpe0_blk_len), (9, 0x620, 16));
        assert_eq!(f.dsdt, 0x7fb7_a000);
        assert_eq!(f.gpe0_status(3), Some((0x620, 8)));
        assert_eq!(f.gpe0_enable(3), Some((0x628, 8)));
        assert_eq!(f.gpe0_enable(4), Some((0x628, 16)));
        assert_eq!(f.gpe0_enable(9), Some((0x629, 2)));
        assert_eq!(f.gpe0_enable(64), None);
    }

    #[test]
    fn pc_block_of_four_and_x_dsdt_wins() {
        let mut t = q35_fadt(244);
        t[80..84].copy_from_slice(&0xafe0u32.to_le_bytes());
        t[92] = 4;
        t[140..148].copy_from_slice(&0x1_2345_6000u64.to_le_bytes());
        let f = parse(&t).unwrap();
        assert_eq!(f.gpe0_enable(3), Some((0xafe2, 8)));
        assert_eq!(f.gpe0_status(15), Some((0xafe1, 0x80)));
        assert_eq!(f.gpe0_status(16), None);
        assert_eq!(f.dsdt, 0x1_2345_6000);
    }

    #[test]
    fn short_or_foreign_tables_are_refused() {
        assert_eq!(parse(&q35_fadt(100)), Err(FadtError::BadTable));
        let mut t = q35_fadt(116);
        assert_eq!(parse(&t).unwrap().dsdt, 0x7fb7_a000, "ACPI 1.0 layout");
        t[..4].copy_from_slice(b"APIC");
        assert_eq!(parse(&t), Err(FadtError::BadTable));
        let mut none = q35_fadt(244);
        none[80..84].fill(0);
        assert_eq!(parse(&none).unwrap().gpe0_enable(3), None);
    }

    #[test]
    fn x_gpe0_blk_wins_from_revision_2() {
        let mut t = q35_fadt(244);
        // X_GPE0_BLK: system I/O, 64 bits wide, at 0xb000.
        t[220] = 1;
        t[221] = 64;
        t[224..232].copy_from_slice(&0xb000u64.to_le_bytes());
        let f = parse(&t).unwrap();
        assert_eq!((f.gpe0_blk, f.gpe0_blk_len), (0xb000, 8));
        t[8] = 1; // ACPI 1.0 has no X_GPE0_BLK: the legacy block again
        let f = parse(&t).unwrap();
        assert_eq!((f.gpe0_blk, f.gpe0_blk_len), (0x620, 16));
    }

    #[test]
    fn a_gpe0_block_of_32_bytes_or_more_is_not_handed_to_the_crate() {
        let mut t = q35_fadt(244);
        t[92] = 32;
        let f = parse(&t).unwrap();
        assert_eq!((f.sci_int, f.gpe0_blk, f.gpe0_enable(3)), (9, 0, None));
    }

    proptest::proptest! {
        #[test]
        fn random_tables_never_panic(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let mut t = q35_fadt(116);
            t.truncate(36);
            t.extend_from_slice(&body);
            let _ = parse(&t);
            let len = t.len() as u32;
            t[4..8].copy_from_slice(&len.to_le_bytes());
            let _ = parse(&t);
        }
    }
}
