//! aarch64 stage-1 tables for the hand-off: 4 KiB granule, 48-bit VAs (L0 -> L1 -> L2
//! -> L3) with 4 KiB pages and 2 MiB / 1 GiB blocks: the descriptor encoding the shared
//! [`super::Mapper`] writes, and the TCR_EL1 value that goes with it.
//!
//! Every leaf is normal write-back memory (MAIR index 0, as the protocol fixes MAIR
//! Attr0 = 0xff), inner shareable, access flag set, EL1-only (UXN everywhere), with
//! AP[2] for read-only and PXN for non-executable mappings.

use super::{Format, Perm};

/// The HHDM base Limine uses on aarch64 with 4-level paging.
pub const HHDM_4LEVEL: u64 = 0xffff_0000_0000_0000;

const VALID: u64 = 1;
const TABLE_OR_PAGE: u64 = 1 << 1;
const AP_READ_ONLY: u64 = 1 << 7;
const SH_INNER: u64 = 3 << 8;
const AF: u64 = 1 << 10;
const PXN: u64 = 1 << 53;
const UXN: u64 = 1 << 54;

/// The aarch64 4K-granule descriptor format (EL1 only; 1 GiB blocks always allowed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arm64Format;

impl Format for Arm64Format {
    const ADDR: u64 = 0x0000_ffff_ffff_f000;

    fn top_leaf_level(&self) -> usize {
        2
    }

    fn valid(&self, entry: u64) -> bool {
        entry & VALID != 0
    }

    fn table(&self, pa: u64) -> u64 {
        pa | VALID | TABLE_OR_PAGE
    }

    fn leaf(&self, pa: u64, level: usize, perm: Perm) -> u64 {
        let kind = if level == 0 {
            VALID | TABLE_OR_PAGE
        } else {
            VALID
        };
        let mut bits = pa | kind | SH_INNER | AF | UXN;
        if !perm.write {
            bits |= AP_READ_ONLY;
        }
        if !perm.exec {
            bits |= PXN;
        }
        bits
    }

    fn is_block(&self, entry: u64) -> bool {
        entry & TABLE_OR_PAGE == 0
    }

    fn is_page(&self, entry: u64) -> bool {
        entry & TABLE_OR_PAGE != 0
    }

    fn perm(&self, entry: u64) -> Perm {
        Perm {
            write: entry & AP_READ_ONLY == 0,
            exec: entry & PXN == 0,
        }
    }
}

/// A builder of one half of the aarch64 hand-off translation regime (TTBR0 or TTBR1).
pub type Mapper<'f, F> = super::Mapper<'f, F, Arm64Format>;

/// TCR_EL1 for the hand-off: T0SZ = T1SZ = 16 (48-bit), 4 KiB granules on both halves,
/// inner-shareable write-back walks, both halves enabled, IPS from `parange`
/// (ID_AA64MMFR0_EL1.PARange) capped at 48 bits.
pub const fn tcr(parange: u64) -> u64 {
    let ips = if parange > 5 { 5 } else { parange };
    let half = 16 | (1 << 8) | (1 << 10) | (3 << 12); // TxSZ, IRGN, ORGN, SH
    half | (half << 16) | (2 << 30) | (ips << 32) // TG0 = 4K (0), TG1 = 4K (0b10)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paging::sim::{DATA, SimFrames, TEXT};
    use crate::paging::{FrameSource, MapError, index};

    const KERNEL: u64 = 0xffff_ffff_8000_0000;

    #[test]
    fn hhdm_uses_blocks_where_aligned() {
        let mut f = SimFrames::new(64);
        let mut m = Mapper::new(&mut f, Arm64Format).unwrap();
        let (start, end) = (0x3fff_f000, 0x8020_1000);
        m.map(HHDM_4LEVEL + start, start, end - start, Perm::RWX)
            .unwrap();
        let size =
            |m: &mut Mapper<'_, SimFrames>, pa: u64| m.translate(HHDM_4LEVEL + pa).map(|t| t.size);
        assert_eq!(size(&mut m, 0x3fff_f000), Some(1 << 12));
        assert_eq!(size(&mut m, 0x4000_0000), Some(1 << 30));
        assert_eq!(size(&mut m, 0x8000_0000), Some(1 << 21));
        assert_eq!(size(&mut m, 0x8020_0000), Some(1 << 12));
        assert_eq!(size(&mut m, 0x8020_1000), None);
        assert_eq!(
            m.translate(HHDM_4LEVEL + 0x5678_9abc).unwrap().phys,
            0x5678_9abc
        );
    }

    #[test]
    fn descriptors_follow_the_architecture() {
        let mut f = SimFrames::new(16);
        let mut m = Mapper::new(&mut f, Arm64Format).unwrap();
        m.map(HHDM_4LEVEL + (1 << 30), 1 << 30, 1 << 30, Perm::RWX)
            .unwrap();
        m.map(KERNEL, 0x4020_0000, 0x1000, TEXT).unwrap();
        let t = m.translate(KERNEL + 8).unwrap();
        assert_eq!((t.phys, t.size, t.perm), (0x4020_0008, 4096, TEXT));
        let root = m.root();
        let l0 = f.table(root)[0];
        assert_eq!(l0 & 3, 3, "table descriptor");
        let l1 = f.table(l0 & Arm64Format::ADDR)[1];
        assert_eq!(
            l1,
            0x4000_0000 | 0x701 | UXN,
            "1 GiB block: AF, SH inner, attr 0, UXN"
        );
        assert_eq!(index(KERNEL, 3), 511);
        assert_eq!(index(KERNEL, 2), 510);
    }

    #[test]
    fn w_xor_x_and_merging() {
        let mut f = SimFrames::new(16);
        let mut m = Mapper::new(&mut f, Arm64Format).unwrap();
        m.map(KERNEL, 0x1000, 0x1000, DATA).unwrap();
        assert_eq!(m.translate(KERNEL).unwrap().perm, DATA);
        m.map(KERNEL, 0x1000, 0x1000, TEXT).unwrap();
        assert_eq!(m.translate(KERNEL).unwrap().perm, Perm::RWX);
        assert_eq!(
            m.map(KERNEL, 0x2000, 0x1000, DATA),
            Err(MapError::Conflict(KERNEL))
        );
        assert_eq!(m.map(KERNEL + 1, 0, 0x1000, DATA), Err(MapError::Unaligned));
    }

    #[test]
    fn tcr_matches_the_protocol_state() {
        // T0SZ = T1SZ = 16, IRGN/ORGN WBWA, SH inner, TG1 = 4K, IPS 44-bit / capped at 48.
        assert_eq!(tcr(4), 0x4_b510_3510);
        assert_eq!(tcr(6) >> 32, 5);
    }
}
