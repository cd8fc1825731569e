//! A newc ("070701") cpio archive writer: the format the Linux kernel unpacks as an
//! initramfs. Directories, regular files, symlinks and device nodes, all owned by root.

/// One archive being built in memory.
#[derive(Default)]
pub struct Cpio {
    bytes: Vec<u8>,
    next_ino: u32,
}

const DIR: u32 = 0o040_000;
const FILE: u32 = 0o100_000;
const SYMLINK: u32 = 0o120_000;
const CHAR: u32 = 0o020_000;

impl Cpio {
    pub fn new() -> Cpio {
        Cpio::default()
    }

    /// A directory (`path` without a leading slash), mode 0755.
    pub fn dir(&mut self, path: &str) {
        self.entry(path, DIR | 0o755, 2, &[], (0, 0));
    }

    /// A regular file with `mode` permission bits.
    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) {
        self.entry(path, FILE | mode, 1, data, (0, 0));
    }

    /// A symbolic link to `target`.
    pub fn symlink(&mut self, path: &str, target: &str) {
        self.entry(path, SYMLINK | 0o777, 1, target.as_bytes(), (0, 0));
    }

    /// A character device node.
    pub fn char_device(&mut self, path: &str, mode: u32, major: u32, minor: u32) {
        self.entry(path, CHAR | mode, 1, &[], (major, minor));
    }

    /// Ends the archive (`TRAILER!!!`) and returns its bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, 1, &[], (0, 0));
        self.bytes
    }

    fn entry(&mut self, name: &str, mode: u32, nlink: u32, data: &[u8], rdev: (u32, u32)) {
        self.next_ino += 1;
        let ino = if name == "TRAILER!!!" {
            0
        } else {
            self.next_ino
        };
        let fields = [
            ino,
            mode,
            0, // uid
            0, // gid
            nlink,
            0, // mtime: reproducible archives
            u32::try_from(data.len()).expect("initramfs members are under 4 GiB"),
            0, // dev major
            0, // dev minor
            rdev.0,
            rdev.1,
            u32::try_from(name.len() + 1).expect("short names"),
            0, // check
        ];
        self.bytes.extend_from_slice(b"070701");
        for field in fields {
            self.bytes
                .extend_from_slice(format!("{field:08x}").as_bytes());
        }
        self.bytes.extend_from_slice(name.as_bytes());
        self.bytes.push(0);
        self.pad();
        self.bytes.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.bytes.len().is_multiple_of(4) {
            self.bytes.push(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads back (name, mode, data) of every member, checking the framing.
    fn members(bytes: &[u8]) -> Vec<(String, u32, Vec<u8>)> {
        let mut out = Vec::new();
        let mut pos = 0;
        loop {
            assert_eq!(&bytes[pos..pos + 6], b"070701", "magic at {pos}");
            let field = |i: usize| {
                let at = pos + 6 + 8 * i;
                u32::from_str_radix(std::str::from_utf8(&bytes[at..at + 8]).unwrap(), 16).unwrap()
            };
            let (mode, size, namesize) = (field(1), field(6) as usize, field(11) as usize);
            let name_at = pos + 110;
            let name = String::from_utf8(bytes[name_at..name_at + namesize - 1].to_vec()).unwrap();
            assert_eq!(bytes[name_at + namesize - 1], 0);
            let data_at = (name_at + namesize).next_multiple_of(4);
            let data = bytes[data_at..data_at + size].to_vec();
            pos = (data_at + size).next_multiple_of(4);
            if name == "TRAILER!!!" {
                assert_eq!(pos, bytes.len());
                return out;
            }
            out.push((name, mode, data));
        }
    }

    #[test]
    fn members_round_trip_with_newc_framing() {
        let mut cpio = Cpio::new();
        cpio.dir("bin");
        cpio.file("init", 0o755, b"#!/bin/sh\necho hi\n");
        cpio.symlink("bin/sh", "busybox");
        cpio.char_device("dev/console", 0o600, 5, 1);
        let bytes = cpio.finish();
        assert_eq!(bytes.len() % 4, 0);
        let m = members(&bytes);
        assert_eq!(m.len(), 4);
        assert_eq!(m[0].0, "bin");
        assert_eq!(m[0].1, 0o040_755);
        assert_eq!(
            m[1],
            ("init".into(), 0o100_755, b"#!/bin/sh\necho hi\n".to_vec())
        );
        assert_eq!(m[2], ("bin/sh".into(), 0o120_777, b"busybox".to_vec()));
        assert_eq!(m[3].1, 0o020_600);
        // rdevmajor/rdevminor of the console node.
        let header = &bytes[bytes.windows(11).position(|w| w == b"dev/console").unwrap() - 110..];
        assert_eq!(&header[6 + 8 * 9..6 + 8 * 11], b"0000000500000001");
    }
}
