//! QEMU fw_cfg over MMIO on `virt` (data at 0x09020000, 16-bit big-endian selector at
//! +8), for the command-line override `opt/hotmem/cmdline` that the host passes with
//! `-fw_cfg name=...,string=...` (the lookup is [`boot::fwcfg::cmdline_override`]).

use alloc::string::String;

use boot::fwcfg::{self, FwCfg};

/// hw/arm/virt.c `base_memmap[VIRT_FW_CFG]`.
const BASE: u64 = 0x0902_0000;

/// The MMIO fw_cfg of QEMU `virt`.
struct Mmio;

impl FwCfg for Mmio {
    fn select(&mut self, key: u16) {
        // SAFETY: the fw_cfg selector register of QEMU `virt`, identity-mapped as device
        // memory by AAVMF; 16-bit big-endian writes are its access size.
        unsafe { ((BASE + 8) as *mut u16).write_volatile(key.to_be()) };
    }

    fn read(&mut self, buf: &mut [u8]) {
        for b in buf {
            // SAFETY: the fw_cfg data register accepts byte reads, each returning the
            // next byte of the selected item.
            *b = unsafe { (BASE as *const u8).read_volatile() };
        }
    }
}

/// The override, if QEMU has fw_cfg and the file exists.
pub fn cmdline_override() -> Option<String> {
    fwcfg::cmdline_override(&mut Mmio)
}
