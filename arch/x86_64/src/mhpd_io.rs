//! The ACPI memory-hotplug controller's registers on x86: 24 I/O ports from 0x0a00
//! (qemu-hotplug.md §1.2), dword accesses at 0x0..0x10 and a byte at 0x14. The protocol
//! itself is `kernel::firmware::mhpd`; notification comes from GPE0 bit 3 ([`crate::sci`]).

use core::fmt;

use kernel::firmware::mhpd::MhpdRegs;
use x86_64::instructions::port::Port;

use crate::sci;

/// The controller's I/O base.
pub struct PortMhpd {
    /// First port (0x0a00 on QEMU pc and q35).
    pub base: u16,
}

impl MhpdRegs for PortMhpd {
    fn read32(&mut self, offset: u8) -> u32 {
        // SAFETY: the port is a dword register of the MHPD block (found in the DSDT).
        unsafe { Port::<u32>::new(self.base + u16::from(offset)).read() }
    }

    fn write32(&mut self, offset: u8, value: u32) {
        // SAFETY: as above; the writes are the documented selector/_OST registers.
        unsafe { Port::<u32>::new(self.base + u16::from(offset)).write(value) }
    }

    fn read8(&mut self, offset: u8) -> u8 {
        // SAFETY: the status byte of the MHPD block.
        unsafe { Port::<u8>::new(self.base + u16::from(offset)).read() }
    }

    fn write8(&mut self, offset: u8, value: u8) {
        // SAFETY: the control byte of the MHPD block (clear insert/remove, eject).
        unsafe { Port::<u8>::new(self.base + u16::from(offset)).write(value) }
    }

    fn take_notification(&mut self) -> bool {
        sci::take(sci::GPE_MEMORY)
    }

    fn describe(&self, out: &mut dyn fmt::Write) -> fmt::Result {
        write!(out, "io={:#x} gpe.bit=3 ", self.base)?;
        sci::describe(out)
    }
}
