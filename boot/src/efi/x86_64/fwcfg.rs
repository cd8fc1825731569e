//! QEMU fw_cfg over I/O ports (selector 0x510, data 0x511): the command-line override
//! `opt/hotmem/cmdline` that the host passes with `-fw_cfg name=...,string=...`.

use alloc::string::String;

use boot::fwcfg::{self as f, CMDLINE_FILE};

use super::io::{inb, outw};

const SELECTOR: u16 = 0x510;
const DATA: u16 = 0x511;

fn read(buf: &mut [u8]) {
    for b in buf {
        *b = inb(DATA);
    }
}

/// The override, if QEMU has fw_cfg and the file exists.
pub fn cmdline_override() -> Option<String> {
    outw(SELECTOR, 0);
    let mut sig = [0u8; 4];
    read(&mut sig);
    if &sig != b"QEMU" {
        return None;
    }
    outw(SELECTOR, f::FILE_DIR);
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
    let (select, size) = hit?;
    outw(SELECTOR, select);
    let mut bytes = alloc::vec![0; size.min(4096) as usize];
    read(&mut bytes);
    while bytes.last() == Some(&0) {
        bytes.pop();
    }
    String::from_utf8(bytes).ok()
}
