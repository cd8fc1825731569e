//! x86_64 4-level page tables (PML4 -> PDPT -> PD -> PT) with 4 KiB, 2 MiB and 1 GiB
//! leaves, built over a [`FrameSource`]. Supervisor-only; W and NX per mapping.

use super::{FrameSource, MapError};

const PRESENT: u64 = 1;
const WRITABLE: u64 = 1 << 1;
const HUGE: u64 = 1 << 7;
const NO_EXECUTE: u64 = 1 << 63;
const ADDR: u64 = 0x000f_ffff_ffff_f000;

/// Page sizes by level: PT, PD, PDPT leaves.
const SIZES: [u64; 3] = [1 << 12, 1 << 21, 1 << 30];

/// Permissions of a mapping (reads are always allowed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Perm {
    /// Writes allowed.
    pub write: bool,
    /// Instruction fetches allowed.
    pub exec: bool,
}

impl Perm {
    /// Read-write-execute, as the HHDM is.
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

/// Builds one address space.
pub struct Mapper<'f, F: FrameSource> {
    frames: &'f mut F,
    root: u64,
    gib_pages: bool,
    nx: bool,
}

impl<'f, F: FrameSource> Mapper<'f, F> {
    /// A new, empty PML4. `gib_pages`: the CPU has 1 GiB pages; `nx`: EFER.NXE will be
    /// set, so the NX bit may be used.
    pub fn new(frames: &'f mut F, gib_pages: bool, nx: bool) -> Result<Self, MapError> {
        let root = frames.alloc().ok_or(MapError::OutOfFrames)?;
        Ok(Self {
            frames,
            root,
            gib_pages,
            nx,
        })
    }

    /// Physical address of the PML4 (the CR3 value).
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
                .find(|&l| {
                    let s = SIZES[l];
                    (l < 2 || self.gib_pages) && v % s == 0 && p % s == 0 && left >= s
                })
                .unwrap_or(0);
            self.map_one(v, p, level, perm)?;
            v = v.wrapping_add(SIZES[level]);
            p += SIZES[level];
        }
        Ok(())
    }

    /// Maps one leaf of `level` (0: 4 KiB, 1: 2 MiB, 2: 1 GiB).
    fn map_one(&mut self, virt: u64, phys: u64, level: usize, perm: Perm) -> Result<(), MapError> {
        let mut table = self.root;
        for l in (level + 1..4).rev() {
            let idx = index(virt, l);
            let e = self.frames.table(table)[idx];
            table = if e & PRESENT == 0 {
                let t = self.frames.alloc().ok_or(MapError::OutOfFrames)?;
                self.frames.table(table)[idx] = t | PRESENT | WRITABLE;
                t
            } else if e & HUGE != 0 {
                return Err(MapError::Conflict(virt));
            } else {
                e & ADDR
            };
        }
        let idx = index(virt, level);
        let mut bits = phys | PRESENT | if level > 0 { HUGE } else { 0 };
        let old = self.frames.table(table)[idx];
        let mut perm = perm;
        if old & PRESENT != 0 {
            if level > 0 || old & ADDR != phys {
                return Err(MapError::Conflict(virt));
            }
            perm.write |= old & WRITABLE != 0;
            perm.exec |= old & NO_EXECUTE == 0;
        }
        if perm.write {
            bits |= WRITABLE;
        }
        if !perm.exec && self.nx {
            bits |= NO_EXECUTE;
        }
        self.frames.table(table)[idx] = bits;
        Ok(())
    }

    /// Walks the tables for `virt`.
    pub fn translate(&mut self, virt: u64) -> Option<Translation> {
        let mut table = self.root;
        for l in (0..4).rev() {
            let e = self.frames.table(table)[index(virt, l)];
            if e & PRESENT == 0 {
                return None;
            }
            if l == 0 || (e & HUGE != 0 && l < 3) {
                let size = SIZES[l];
                let base = e & ADDR & !(size - 1);
                return Some(Translation {
                    phys: base + (virt & (size - 1)),
                    size,
                    perm: Perm {
                        write: e & WRITABLE != 0,
                        exec: e & NO_EXECUTE == 0,
                    },
                });
            }
            table = e & ADDR;
        }
        None
    }

    /// Clears PML4 slot `idx` (used to drop the temporary identity map).
    pub fn clear_pml4(&mut self, idx: usize) {
        self.frames.table(self.root)[idx] = 0;
    }
}

/// Table index of `virt` at `level` (0: PT ... 3: PML4).
pub fn index(virt: u64, level: usize) -> usize {
    ((virt >> (12 + 9 * level)) & 0x1ff) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paging::sim::SimFrames;

    const HHDM: u64 = 0xffff_8000_0000_0000;
    const KERNEL: u64 = 0xffff_ffff_8000_0000;

    #[test]
    fn hhdm_uses_large_pages_where_aligned() {
        let mut f = SimFrames::new(64);
        let mut m = Mapper::new(&mut f, true, true).unwrap();
        // 4 KiB head, 2 MiB middle, 1 GiB body, 4 KiB tail.
        let (start, end) = (0x1ff000, 0x8000_1000);
        m.map(HHDM + start, start, end - start, Perm::RWX).unwrap();
        let size = |m: &mut Mapper<'_, SimFrames>, pa: u64| m.translate(HHDM + pa).map(|t| t.size);
        assert_eq!(size(&mut m, 0x1ff000), Some(1 << 12));
        assert_eq!(size(&mut m, 0x200000), Some(1 << 21));
        assert_eq!(size(&mut m, 0x4000_0000), Some(1 << 30));
        assert_eq!(size(&mut m, 0x8000_0000), Some(1 << 12));
        assert_eq!(size(&mut m, 0x8000_1000), None);
        assert_eq!(size(&mut m, 0x1fe000), None);
        let t = m.translate(HHDM + 0x1234_5678).unwrap();
        assert_eq!(t.phys, 0x1234_5678);
        assert_eq!(t.perm, Perm::RWX);
    }

    #[test]
    fn without_gib_pages_the_largest_leaf_is_2m() {
        let mut f = SimFrames::new(64);
        let mut m = Mapper::new(&mut f, false, true).unwrap();
        m.map(HHDM, 0, 1 << 31, Perm::RWX).unwrap();
        assert_eq!(m.translate(HHDM + (1 << 30)).unwrap().size, 1 << 21);
        // PML4 + PDPT + 2 PDs.
        assert_eq!(f.frames.len(), 4);
    }

    #[test]
    fn kernel_segments_get_w_xor_x() {
        let mut f = SimFrames::new(64);
        let mut m = Mapper::new(&mut f, true, true).unwrap();
        let phys = 0x20_0000;
        let text = Perm {
            write: false,
            exec: true,
        };
        let data = Perm {
            write: true,
            exec: false,
        };
        m.map(KERNEL, phys, 0x3000, text).unwrap();
        m.map(KERNEL + 0x3000, phys + 0x3000, 0x2000, data).unwrap();
        let t = m.translate(KERNEL + 0x10).unwrap();
        assert_eq!((t.phys, t.size, t.perm), (phys + 0x10, 4096, text));
        assert_eq!(m.translate(KERNEL + 0x4008).unwrap().perm, data);
        assert_eq!(index(KERNEL, 3), 511);
        assert_eq!(index(KERNEL, 2), 510);
    }

    #[test]
    fn without_nx_nothing_is_marked_no_execute() {
        let mut f = SimFrames::new(8);
        let mut m = Mapper::new(&mut f, true, false).unwrap();
        m.map(
            KERNEL,
            0x1000,
            0x1000,
            Perm {
                write: true,
                exec: false,
            },
        )
        .unwrap();
        assert!(m.translate(KERNEL).unwrap().perm.exec);
    }

    #[test]
    fn shared_pages_merge_and_conflicts_fail() {
        let mut f = SimFrames::new(16);
        let mut m = Mapper::new(&mut f, true, true).unwrap();
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
        m.map(
            KERNEL,
            0x1000,
            0x1000,
            Perm {
                write: true,
                exec: false,
            },
        )
        .unwrap();
        assert_eq!(m.translate(KERNEL).unwrap().perm, Perm::RWX);
        assert_eq!(
            m.map(KERNEL, 0x2000, 0x1000, Perm::RWX),
            Err(MapError::Conflict(KERNEL))
        );
        m.map(HHDM, 0, 1 << 21, Perm::RWX).unwrap();
        assert_eq!(
            m.map(HHDM, 0, 0x1000, Perm::RWX),
            Err(MapError::Conflict(HHDM))
        );
        assert_eq!(
            m.map(HHDM + 1, 0, 0x1000, Perm::RWX),
            Err(MapError::Unaligned)
        );
    }

    #[test]
    fn running_out_of_frames_is_an_error() {
        let mut f = SimFrames::new(3);
        let mut m = Mapper::new(&mut f, true, true).unwrap();
        assert_eq!(
            m.map(KERNEL, 0, 0x1000, Perm::RWX),
            Err(MapError::OutOfFrames)
        );
    }

    #[test]
    fn identity_slot_can_be_dropped() {
        let mut f = SimFrames::new(16);
        let mut m = Mapper::new(&mut f, true, true).unwrap();
        m.map(0x10_0000, 0x10_0000, 0x1000, Perm::RWX).unwrap();
        assert!(m.translate(0x10_0000).is_some());
        m.clear_pml4(0);
        assert!(m.translate(0x10_0000).is_none());
    }
}
