//! aarch64 stage-1 tables for the hand-off: 4 KiB granule, 48-bit VAs (L0 -> L1 -> L2
//! -> L3) with 4 KiB pages and 2 MiB / 1 GiB blocks, built over a [`FrameSource`].
//!
//! Every leaf is normal write-back memory (MAIR index 0, as the protocol fixes MAIR
//! Attr0 = 0xff), inner shareable, access flag set, EL1-only (UXN everywhere), with
//! AP[2] for read-only and PXN for non-executable mappings.

use super::{FrameSource, MapError};

/// The HHDM base Limine uses on aarch64 with 4-level paging.
pub const HHDM_4LEVEL: u64 = 0xffff_0000_0000_0000;

const VALID: u64 = 1;
const TABLE_OR_PAGE: u64 = 1 << 1;
const AP_READ_ONLY: u64 = 1 << 7;
const SH_INNER: u64 = 3 << 8;
const AF: u64 = 1 << 10;
const PXN: u64 = 1 << 53;
const UXN: u64 = 1 << 54;
const ADDR: u64 = 0x0000_ffff_ffff_f000;

/// Leaf sizes by level: L3 page, L2 block, L1 block.
const SIZES: [u64; 3] = [1 << 12, 1 << 21, 1 << 30];

/// Permissions of a mapping (reads are always allowed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Perm {
    /// Writes allowed.
    pub write: bool,
    /// Instruction fetches allowed (at EL1).
    pub exec: bool,
}

impl Perm {
    /// Read-write-execute, as the protocol's HHDM is.
    pub const RWX: Perm = Perm {
        write: true,
        exec: true,
    };
}

/// A translation found by [`Mapper::translate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translation {
    /// Physical address of the queried byte.
    pub phys: u64,
    /// Leaf size in bytes.
    pub size: u64,
    /// Leaf permissions.
    pub perm: Perm,
}

/// Builds one translation regime half (TTBR0 or TTBR1 tables).
pub struct Mapper<'f, F: FrameSource> {
    frames: &'f mut F,
    root: u64,
}

impl<'f, F: FrameSource> Mapper<'f, F> {
    /// A new, empty L0 table.
    pub fn new(frames: &'f mut F) -> Result<Self, MapError> {
        let root = frames.alloc().ok_or(MapError::OutOfFrames)?;
        Ok(Self { frames, root })
    }

    /// Physical address of the L0 table (the TTBR value).
    pub fn root(&self) -> u64 {
        self.root
    }

    /// Maps `[virt, virt + len)` to `[phys, ...)` with the largest leaves alignment
    /// allows. A 4 KiB page mapped again to the same frame gets the union of the two
    /// permissions (two ELF segments sharing a page); any other overlap is a conflict.
    pub fn map(&mut self, virt: u64, phys: u64, len: u64, perm: Perm) -> Result<(), MapError> {
        if (virt | phys | len) & 0xfff != 0 {
            return Err(MapError::Unaligned);
        }
        let (mut v, mut p, end) = (virt, phys, virt.wrapping_add(len));
        while v != end {
            let left = end.wrapping_sub(v);
            let level = (0..3)
                .rev()
                .find(|&l| v % SIZES[l] == 0 && p % SIZES[l] == 0 && left >= SIZES[l])
                .unwrap_or(0);
            self.map_one(v, p, level, perm)?;
            v = v.wrapping_add(SIZES[level]);
            p += SIZES[level];
        }
        Ok(())
    }

    /// Maps one leaf of `level` (0: 4 KiB page, 1: 2 MiB block, 2: 1 GiB block).
    fn map_one(&mut self, virt: u64, phys: u64, level: usize, perm: Perm) -> Result<(), MapError> {
        let mut table = self.root;
        for l in (level + 1..4).rev() {
            let idx = index(virt, l);
            let e = self.frames.table(table)[idx];
            table = if e & VALID == 0 {
                let t = self.frames.alloc().ok_or(MapError::OutOfFrames)?;
                self.frames.table(table)[idx] = t | VALID | TABLE_OR_PAGE;
                t
            } else if e & TABLE_OR_PAGE == 0 {
                return Err(MapError::Conflict(virt));
            } else {
                e & ADDR
            };
        }
        let idx = index(virt, level);
        let old = self.frames.table(table)[idx];
        let mut perm = perm;
        if old & VALID != 0 {
            if level > 0 || old & ADDR != phys {
                return Err(MapError::Conflict(virt));
            }
            perm.write |= old & AP_READ_ONLY == 0;
            perm.exec |= old & PXN == 0;
        }
        let kind = if level == 0 {
            VALID | TABLE_OR_PAGE
        } else {
            VALID
        };
        let mut bits = phys | kind | SH_INNER | AF | UXN;
        if !perm.write {
            bits |= AP_READ_ONLY;
        }
        if !perm.exec {
            bits |= PXN;
        }
        self.frames.table(table)[idx] = bits;
        Ok(())
    }

    /// Walks the tables for `virt`.
    pub fn translate(&mut self, virt: u64) -> Option<Translation> {
        let mut table = self.root;
        for l in (0..4).rev() {
            let e = self.frames.table(table)[index(virt, l)];
            if e & VALID == 0 {
                return None;
            }
            let leaf = if l == 0 {
                e & TABLE_OR_PAGE != 0
            } else {
                l < 3 && e & TABLE_OR_PAGE == 0
            };
            if leaf {
                let size = SIZES[l];
                return Some(Translation {
                    phys: (e & ADDR & !(size - 1)) + (virt & (size - 1)),
                    size,
                    perm: Perm {
                        write: e & AP_READ_ONLY == 0,
                        exec: e & PXN == 0,
                    },
                });
            }
            table = e & ADDR;
        }
        None
    }
}

/// Table index of `virt` at `level` (0: L3 ... 3: L0).
pub fn index(virt: u64, level: usize) -> usize {
    ((virt >> (12 + 9 * level)) & 0x1ff) as usize
}

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
    use crate::paging::sim::SimFrames;

    const KERNEL: u64 = 0xffff_ffff_8000_0000;

    #[test]
    fn hhdm_uses_blocks_where_aligned() {
        let mut f = SimFrames::new(64);
        let mut m = Mapper::new(&mut f).unwrap();
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
        let mut m = Mapper::new(&mut f).unwrap();
        m.map(HHDM_4LEVEL + (1 << 30), 1 << 30, 1 << 30, Perm::RWX)
            .unwrap();
        let text = Perm {
            write: false,
            exec: true,
        };
        m.map(KERNEL, 0x4020_0000, 0x1000, text).unwrap();
        let t = m.translate(KERNEL + 8).unwrap();
        assert_eq!((t.phys, t.size, t.perm), (0x4020_0008, 4096, text));
        let root = m.root();
        let l0 = f.table(root)[0];
        assert_eq!(l0 & 3, 3, "table descriptor");
        let l1 = f.table(l0 & ADDR)[1];
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
        let mut m = Mapper::new(&mut f).unwrap();
        let data = Perm {
            write: true,
            exec: false,
        };
        m.map(KERNEL, 0x1000, 0x1000, data).unwrap();
        assert_eq!(m.translate(KERNEL).unwrap().perm, data);
        m.map(
            KERNEL,
            0x1000,
            0x1000,
            Perm {
                write: false,
                exec: true,
            },
        )
        .unwrap();
        assert_eq!(m.translate(KERNEL).unwrap().perm, Perm::RWX);
        assert_eq!(
            m.map(KERNEL, 0x2000, 0x1000, data),
            Err(MapError::Conflict(KERNEL))
        );
        assert_eq!(m.map(KERNEL + 1, 0, 0x1000, data), Err(MapError::Unaligned));
    }

    #[test]
    fn tcr_matches_the_protocol_state() {
        // T0SZ = T1SZ = 16, IRGN/ORGN WBWA, SH inner, TG1 = 4K, IPS 44-bit / capped at 48.
        assert_eq!(tcr(4), 0x4_b510_3510);
        assert_eq!(tcr(6) >> 32, 5);
    }
}
