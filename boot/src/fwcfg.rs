//! QEMU fw_cfg file directory entries (`FW_CFG_FILE_DIR`, selector 0x19): a big-endian
//! count, then 64-byte entries `{ u32 size, u16 select, u16 reserved, char name[56] }`.
//! The loader looks up `opt/hotmem/cmdline`, which overrides the entry's `cmdline:` so
//! the host can pass a command line without rewriting the ESP.
//!
//! The lookup ([`cmdline_override`]) runs over a [`FwCfg`] device: I/O ports on x86_64,
//! MMIO on aarch64 `virt`, a byte array in the tests.

use alloc::string::String;
use alloc::vec;

/// fw_cfg file carrying a command-line override.
pub const CMDLINE_FILE: &str = "opt/hotmem/cmdline";

/// Selector of the file directory.
pub const FILE_DIR: u16 = 0x19;

/// One directory entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DirEntry<'a> {
    /// File size in bytes.
    pub size: u32,
    /// Selector to read it.
    pub select: u16,
    /// File name.
    pub name: &'a [u8],
}

/// Decodes one 64-byte entry.
pub fn dir_entry(raw: &[u8; 64]) -> DirEntry<'_> {
    let name = &raw[8..];
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    DirEntry {
        size: u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]),
        select: u16::from_be_bytes([raw[4], raw[5]]),
        name: &name[..end],
    }
}

/// Signature of the fw_cfg signature item (selector 0).
const SIGNATURE: &[u8; 4] = b"QEMU";

/// A QEMU fw_cfg interface: select an item, then read its bytes in order.
pub trait FwCfg {
    /// Selects item `key`; reads start at its first byte.
    fn select(&mut self, key: u16);
    /// Reads the next `buf.len()` bytes of the selected item.
    fn read(&mut self, buf: &mut [u8]);
}

/// The command-line override, if the device is QEMU's fw_cfg and [`CMDLINE_FILE`]
/// exists: its bytes (at most 4 KiB, trailing NULs dropped) as UTF-8.
pub fn cmdline_override(dev: &mut impl FwCfg) -> Option<String> {
    dev.select(0);
    let mut sig = [0u8; 4];
    dev.read(&mut sig);
    if &sig != SIGNATURE {
        return None;
    }
    dev.select(FILE_DIR);
    let mut count = [0u8; 4];
    dev.read(&mut count);
    let mut hit = None;
    for _ in 0..u32::from_be_bytes(count).min(4096) {
        let mut raw = [0u8; 64];
        dev.read(&mut raw);
        let e = dir_entry(&raw);
        if e.name == CMDLINE_FILE.as_bytes() {
            hit = Some((e.select, e.size));
        }
    }
    let (key, size) = hit?;
    dev.select(key);
    let mut bytes = vec![0; size.min(4096) as usize];
    dev.read(&mut bytes);
    while bytes.last() == Some(&0) {
        bytes.pop();
    }
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    /// Items by selector; reads past an item's end return zeros, as QEMU's do.
    struct Fake {
        items: Vec<(u16, Vec<u8>)>,
        selected: Vec<u8>,
        at: usize,
    }

    impl FwCfg for Fake {
        fn select(&mut self, key: u16) {
            self.selected =
                (self.items.iter().find(|i| i.0 == key)).map_or(Vec::new(), |i| i.1.clone());
            self.at = 0;
        }

        fn read(&mut self, buf: &mut [u8]) {
            for b in buf {
                *b = self.selected.get(self.at).copied().unwrap_or(0);
                self.at += 1;
            }
        }
    }

    fn entry(size: u32, select: u16, name: &str) -> Vec<u8> {
        let mut raw = vec![0u8; 64];
        raw[..4].copy_from_slice(&size.to_be_bytes());
        raw[4..6].copy_from_slice(&select.to_be_bytes());
        raw[8..8 + name.len()].copy_from_slice(name.as_bytes());
        raw
    }

    fn device(files: &[(&str, u16, &[u8])]) -> Fake {
        let mut dir = (files.len() as u32).to_be_bytes().to_vec();
        let mut items = vec![(0, SIGNATURE.to_vec())];
        for &(name, select, bytes) in files {
            dir.extend(entry(bytes.len() as u32, select, name));
            items.push((select, bytes.to_vec()));
        }
        items.push((FILE_DIR, dir));
        Fake {
            items,
            selected: Vec::new(),
            at: 0,
        }
    }

    #[test]
    fn the_override_is_found_among_other_files() {
        let mut dev = device(&[
            ("etc/boot-fail-wait", 0x20, &[5, 0, 0, 0]),
            (CMDLINE_FILE, 0x21, b"mem=1G memmap=512M!1G\0\0"),
        ]);
        let got = cmdline_override(&mut dev);
        assert_eq!(got.as_deref(), Some("mem=1G memmap=512M!1G"));
    }

    #[test]
    fn no_file_or_no_qemu_means_no_override() {
        let mut dev = device(&[("etc/boot-fail-wait", 0x20, &[5, 0, 0, 0])]);
        assert_eq!(cmdline_override(&mut dev), None);
        let mut not_qemu = device(&[(CMDLINE_FILE, 0x21, b"x")]);
        not_qemu.items[0].1 = b"BOCH".to_vec();
        assert_eq!(cmdline_override(&mut not_qemu), None);
    }

    #[test]
    fn decodes_big_endian_entry() {
        let mut raw = [0u8; 64];
        raw[..4].copy_from_slice(&17u32.to_be_bytes());
        raw[4..6].copy_from_slice(&0x0023u16.to_be_bytes());
        raw[8..8 + CMDLINE_FILE.len()].copy_from_slice(CMDLINE_FILE.as_bytes());
        let e = dir_entry(&raw);
        assert_eq!((e.size, e.select), (17, 0x23));
        assert_eq!(e.name, CMDLINE_FILE.as_bytes());
    }
}
