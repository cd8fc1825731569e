//! The FADT fields an x86 hotplug source needs without an AML interpreter: the SCI
//! interrupt, the GPE0 block (status half, then enable half) and the DSDT address.
//! Offsets are the ACPI 6.x fixed layout; a short (ACPI 1.0) FADT has no `X_DSDT`.

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

fn u32_at(t: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(t[at..at + 4].try_into().expect("4 bytes"))
}

/// Reads the fields from the whole table (header included).
pub fn parse(table: &[u8]) -> Result<FadtInfo, FadtError> {
    if table.len() < 116 || &table[..4] != b"FACP" {
        return Err(FadtError::BadTable);
    }
    let len = (u32_at(table, 4) as usize).min(table.len());
    let x_dsdt = if len >= 148 {
        u64::from(u32_at(table, 140)) | u64::from(u32_at(table, 144)) << 32
    } else {
        0
    };
    Ok(FadtInfo {
        sci_int: u16::from_le_bytes([table[46], table[47]]),
        gpe0_blk: u32_at(table, 80),
        gpe0_blk_len: table[92],
        dsdt: if x_dsdt != 0 {
            x_dsdt
        } else {
            u64::from(u32_at(table, 40))
        },
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
}
