//! QEMU fw_cfg over MMIO on `virt` (data at 0x09020000, 16-bit big-endian selector at
//! +8): the command-line override `opt/hotmem/cmdline` that the host passes with
//! `-fw_cfg name=...,string=...`.

use alloc::string::String;

use boot::fwcfg::{self as f, CMDLINE_FILE};

/// hw/arm/virt.c `base_memmap[VIRT_FW_CFG]`.
const BASE: u64 = 0x0902_0000;

fn select(key: u16) {
    // SAFETY: the fw_cfg selector register of QEMU `virt`, identity-mapped as device
    // memory by AAVMF; 16-bit big-endian writes are its access size.
    unsafe { ((BASE + 8) as *mut u16).write_volatile(key.to_be()) };
}

fn read(buf: &mut [u8]) {
    for b in buf {
        // SAFETY: the fw_cfg data register accepts byte reads, each returning the next
        // byte of the selected item.
        *b = unsafe { (BASE as *const u8).read_volatile() };
    }
}

/// The override, if QEMU has fw_cfg and the file exists.
pub fn cmdline_override() -> Option<String> {
    select(0);
    let mut sig = [0u8; 4];
    read(&mut sig);
    if &sig != b"QEMU" {
        return None;
    }
    select(f::FILE_DIR);
    let mut count = [0u8; 4];
    read(&mut count);
    let mut hit = None;
    for _ in 0..u32::from_be_bytes(count).min(4096) {
        let mut raw = [0u8; 64];
        read(&mut raw);
        let e = f::dir_entry(&raw);
        if e.name == CMDLINE_FILE.as_bytes() {
            hit = Some((e.select, e.size));
        }
    }
    let (key, size) = hit?;
    select(key);
    let mut bytes = alloc::vec![0; size.min(4096) as usize];
    read(&mut bytes);
    while bytes.last() == Some(&0) {
        bytes.pop();
    }
    String::from_utf8(bytes).ok()
}
