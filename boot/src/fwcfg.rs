//! QEMU fw_cfg file directory entries (`FW_CFG_FILE_DIR`, selector 0x19): a big-endian
//! count, then 64-byte entries `{ u32 size, u16 select, u16 reserved, char name[56] }`.
//! The loader looks up `opt/hotmem/cmdline`, which overrides the entry's `cmdline:` so
//! the host can pass a command line without rewriting the ESP.

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

#[cfg(test)]
mod tests {
    use super::*;

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
