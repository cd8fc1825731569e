//! Page-table building for the hand-off: which physical ranges the HHDM covers, and one
//! table builder ([`Mapper`]) over an abstract [`FrameSource`], so the same code runs on
//! the loader's real memory and on a simulated memory in host tests. The two arch
//! modules say only how their entries are encoded ([`Format`]).

pub mod aarch64;
mod mapper;
pub mod x86_64;

pub use mapper::{Format, Mapper};

use crate::protocol::MemmapEntry;
use crate::revision::Revision;

/// Where page-table frames come from.
pub trait FrameSource {
    /// A zeroed 4 KiB frame, by physical address; `None` when exhausted.
    fn alloc(&mut self) -> Option<u64>;
    /// The table stored in the frame at `pa` (a frame this source handed out).
    fn table(&mut self, pa: u64) -> &mut [u64; 512];
}

/// Why a mapping could not be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// The frame source ran dry.
    OutOfFrames,
    /// The virtual page at this address is already mapped differently.
    Conflict(u64),
    /// Address or length not 4 KiB aligned.
    Unaligned,
}

/// Permissions of a mapping (reads are always allowed; everything is supervisor/EL1-only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Perm {
    /// Writes allowed.
    pub write: bool,
    /// Instruction fetches allowed.
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

/// Table index of `virt` at `level` (0: PT / L3 ... 3: PML4 / L0).
pub fn index(virt: u64, level: usize) -> usize {
    ((virt >> (12 + 9 * level)) & 0x1ff) as usize
}

/// Writes the physical ranges the HHDM must cover under `rev` into `out`, page-rounded
/// outwards, sorted and merged; returns how many were written (`None` if `out` is too
/// small).
pub fn hhdm_ranges(
    entries: &[MemmapEntry],
    rev: Revision,
    out: &mut [(u64, u64)],
) -> Option<usize> {
    const FOUR_GIB: u64 = 1 << 32;
    let mut n = 0;
    let mut push = |s: u64, e: u64| -> Option<()> {
        *out.get_mut(n)? = (s & !0xfff, e.next_multiple_of(0x1000));
        n += 1;
        Some(())
    };
    if rev.hhdm_low_4g() {
        push(0, FOUR_GIB)?;
    }
    for e in entries
        .iter()
        .filter(|e| e.length > 0 && rev.hhdm_maps(e.typ))
    {
        push(e.base, e.end())?;
    }
    let ranges = &mut out[..n];
    ranges.sort_unstable();
    let mut m = 0;
    for i in 0..n {
        let r = ranges[i];
        if m > 0 && r.0 <= ranges[m - 1].1 {
            ranges[m - 1].1 = ranges[m - 1].1.max(r.1);
        } else {
            ranges[m] = r;
            m += 1;
        }
    }
    Some(m)
}

#[cfg(test)]
pub(crate) mod sim {
    //! A simulated physical memory of page-table frames for host tests.
    use super::{FrameSource, Perm};
    use alloc::boxed::Box;
    use alloc::vec::Vec;

    /// Frames at `BASE + i * 4096`, up to `limit` of them.
    pub struct SimFrames {
        pub frames: Vec<Box<[u64; 512]>>,
        pub limit: usize,
    }

    pub const BASE: u64 = 0x4000_0000;

    /// Kernel text: read and execute.
    pub const TEXT: Perm = Perm {
        write: false,
        exec: true,
    };
    /// Kernel data: read and write.
    pub const DATA: Perm = Perm {
        write: true,
        exec: false,
    };

    impl SimFrames {
        pub fn new(limit: usize) -> Self {
            Self {
                frames: Vec::new(),
                limit,
            }
        }
    }

    impl FrameSource for SimFrames {
        fn alloc(&mut self) -> Option<u64> {
            if self.frames.len() == self.limit {
                return None;
            }
            self.frames.push(Box::new([0; 512]));
            Some(BASE + 4096 * (self.frames.len() as u64 - 1))
        }

        fn table(&mut self, pa: u64) -> &mut [u64; 512] {
            &mut self.frames[((pa - BASE) / 4096) as usize]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::memtype::*;

    fn e(base: u64, length: u64, typ: u64) -> MemmapEntry {
        MemmapEntry { base, length, typ }
    }

    #[test]
    fn ranges_follow_the_revision_and_merge() {
        let map = [
            e(0x0, 0x9f000, USABLE),
            e(0x9f000, 0x1000, RESERVED),
            e(0x100000, 0x100000, BOOTLOADER_RECLAIMABLE),
            e(0x200000, 0x800, ACPI_RECLAIMABLE),
            e(0x300000, 0x1000, EXECUTABLE_AND_MODULES),
            e(0x1_0000_0000, 0x4000_0000, USABLE),
            e(0x2_0000_0000, 0x1000, RESERVED),
        ];
        let mut out = [(0, 0); 16];
        let n = hhdm_ranges(&map, Revision(3), &mut out).unwrap();
        assert_eq!(
            &out[..n],
            &[
                (0, 0x9f000),
                (0x100000, 0x200000),
                (0x300000, 0x301000),
                (0x1_0000_0000, 0x1_4000_0000)
            ]
        );
        let n = hhdm_ranges(&map, Revision(6), &mut out).unwrap();
        assert_eq!(
            out[1],
            (0x100000, 0x201000),
            "ACPI mapped from rev 4, rounded, merged"
        );
        assert_eq!(n, 4);
        let n = hhdm_ranges(&map, Revision(2), &mut out).unwrap();
        assert_eq!(
            &out[..n],
            &[(0, 0x1_4000_0000)],
            "revision 2 maps the low 4 GiB"
        );
        assert_eq!(hhdm_ranges(&map, Revision(6), &mut out[..2]), None);
    }
}
