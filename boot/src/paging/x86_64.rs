//! x86_64 4-level page tables (PML4 -> PDPT -> PD -> PT) with 4 KiB, 2 MiB and 1 GiB
//! leaves: the entry encoding the shared [`super::Mapper`] writes. Supervisor-only; W
//! and NX per mapping.

use super::{Format, Perm};

const PRESENT: u64 = 1;
const WRITABLE: u64 = 1 << 1;
const HUGE: u64 = 1 << 7;
const NO_EXECUTE: u64 = 1 << 63;

/// The x86_64 entry format, with what the CPU offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct X86Format {
    /// The CPU has 1 GiB pages (CPUID PDPE1GB).
    pub gib_pages: bool,
    /// EFER.NXE will be set, so the NX bit may be used.
    pub nx: bool,
}

impl Format for X86Format {
    const ADDR: u64 = 0x000f_ffff_ffff_f000;

    fn top_leaf_level(&self) -> usize {
        if self.gib_pages { 2 } else { 1 }
    }

    fn valid(&self, entry: u64) -> bool {
        entry & PRESENT != 0
    }

    fn table(&self, pa: u64) -> u64 {
        pa | PRESENT | WRITABLE
    }

    fn leaf(&self, pa: u64, level: usize, perm: Perm) -> u64 {
        let mut bits = pa | PRESENT | if level > 0 { HUGE } else { 0 };
        if perm.write {
            bits |= WRITABLE;
        }
        if !perm.exec && self.nx {
            bits |= NO_EXECUTE;
        }
        bits
    }

    fn is_block(&self, entry: u64) -> bool {
        entry & HUGE != 0
    }

    fn is_page(&self, _entry: u64) -> bool {
        true
    }

    fn perm(&self, entry: u64) -> Perm {
        Perm {
            write: entry & WRITABLE != 0,
            exec: entry & NO_EXECUTE == 0,
        }
    }
}

/// A builder of the x86_64 hand-off address space.
pub type Mapper<'f, F> = super::Mapper<'f, F, X86Format>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paging::sim::{DATA, SimFrames, TEXT};
    use crate::paging::{MapError, index};

    const HHDM: u64 = 0xffff_8000_0000_0000;
    const KERNEL: u64 = 0xffff_ffff_8000_0000;

    fn mapper(f: &mut SimFrames, gib_pages: bool, nx: bool) -> Mapper<'_, SimFrames> {
        Mapper::new(f, X86Format { gib_pages, nx }).unwrap()
    }

    #[test]
    fn hhdm_uses_large_pages_where_aligned() {
        let mut f = SimFrames::new(64);
        let mut m = mapper(&mut f, true, true);
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
        let mut m = mapper(&mut f, false, true);
        m.map(HHDM, 0, 1 << 31, Perm::RWX).unwrap();
        assert_eq!(m.translate(HHDM + (1 << 30)).unwrap().size, 1 << 21);
        // PML4 + PDPT + 2 PDs.
        assert_eq!(f.frames.len(), 4);
    }

    #[test]
    fn kernel_segments_get_w_xor_x() {
        let mut f = SimFrames::new(64);
        let mut m = mapper(&mut f, true, true);
        let phys = 0x20_0000;
        m.map(KERNEL, phys, 0x3000, TEXT).unwrap();
        m.map(KERNEL + 0x3000, phys + 0x3000, 0x2000, DATA).unwrap();
        let t = m.translate(KERNEL + 0x10).unwrap();
        assert_eq!((t.phys, t.size, t.perm), (phys + 0x10, 4096, TEXT));
        assert_eq!(m.translate(KERNEL + 0x4008).unwrap().perm, DATA);
        assert_eq!(index(KERNEL, 3), 511);
        assert_eq!(index(KERNEL, 2), 510);
    }

    #[test]
    fn without_nx_nothing_is_marked_no_execute() {
        let mut f = SimFrames::new(8);
        let mut m = mapper(&mut f, true, false);
        m.map(KERNEL, 0x1000, 0x1000, DATA).unwrap();
        assert!(m.translate(KERNEL).unwrap().perm.exec);
    }

    #[test]
    fn shared_pages_merge_and_conflicts_fail() {
        let mut f = SimFrames::new(16);
        let mut m = mapper(&mut f, true, true);
        m.map(KERNEL, 0x1000, 0x1000, TEXT).unwrap();
        m.map(KERNEL, 0x1000, 0x1000, DATA).unwrap();
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
        let mut m = mapper(&mut f, true, true);
        assert_eq!(
            m.map(KERNEL, 0, 0x1000, Perm::RWX),
            Err(MapError::OutOfFrames)
        );
    }

    #[test]
    fn identity_slot_can_be_dropped() {
        let mut f = SimFrames::new(16);
        let mut m = mapper(&mut f, true, true);
        m.map(0x10_0000, 0x10_0000, 0x1000, Perm::RWX).unwrap();
        assert!(m.translate(0x10_0000).is_some());
        m.clear_root_slot(0);
        assert!(m.translate(0x10_0000).is_none());
    }
}
