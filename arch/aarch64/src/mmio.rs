//! Device registers reached through the HHDM, where [`crate::kpt`] maps them as
//! device-nGnRnE memory. A [`Mmio`] is created only for a block that is mapped and
//! exists on this machine (the unsafe constructor's contract); its accessors are then
//! plain volatile loads and stores at offsets inside the block.

use crate::port::phys_to_virt;

/// One MMIO register block of `len` bytes at physical `base`.
#[derive(Clone, Copy, Debug)]
pub struct Mmio {
    base: u64,
    len: u64,
    va: usize,
}

impl Mmio {
    /// The block `[base, base + len)`.
    ///
    /// # Safety
    /// The block must be mapped as device memory in the HHDM (see [`crate::kpt`]) and be
    /// a device of this machine whose registers have no side effects beyond the device.
    pub unsafe fn new(base: u64, len: u64) -> Mmio {
        Mmio {
            base,
            len,
            va: phys_to_virt(base) as usize,
        }
    }

    /// Physical base.
    pub fn base(&self) -> u64 {
        self.base
    }

    fn at(&self, offset: u64, width: u64) -> usize {
        assert!(
            offset + width <= self.len && offset.is_multiple_of(width),
            "MMIO access at {offset:#x} outside the {:#x}-byte block at {:#x}",
            self.len,
            self.base
        );
        self.va + offset as usize
    }

    /// A 32-bit load.
    pub fn read32(&self, offset: u64) -> u32 {
        let p = self.at(offset, 4) as *const u32;
        // SAFETY: inside the mapped block (checked by `at`), aligned; the constructor's
        // contract makes it a device register.
        unsafe { p.read_volatile() }
    }

    /// A 32-bit store.
    pub fn write32(&self, offset: u64, value: u32) {
        let p = self.at(offset, 4) as *mut u32;
        // SAFETY: as for `read32`.
        unsafe { p.write_volatile(value) }
    }

    /// An 8-bit load.
    pub fn read8(&self, offset: u64) -> u8 {
        let p = self.at(offset, 1) as *const u8;
        // SAFETY: as for `read32`.
        unsafe { p.read_volatile() }
    }

    /// An 8-bit store.
    pub fn write8(&self, offset: u64, value: u8) {
        let p = self.at(offset, 1) as *mut u8;
        // SAFETY: as for `read32`.
        unsafe { p.write_volatile(value) }
    }
}
