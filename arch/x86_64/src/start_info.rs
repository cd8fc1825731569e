//! The PVH boot ABI's hand-over, read as plain data: `struct hvm_start_info` (Xen's
//! `arch-x86/hvm/start_info.h`, versions 0 and 1), its E820-style memory map, and the
//! legacy RSDP search for when the start info names none. Physical memory is read
//! through a caller-supplied function, so all of it runs (and is tested) on the host.

use kernel::boot_info::{MemKind, MemRegion, MemoryMap};

/// `hvm_start_info.magic` ("xEn3" with the top bit set).
pub const MAGIC: u32 = 0x336e_c578;
/// Bytes of a version-1 start info (the memory-map fields included).
pub const START_INFO_BYTES: usize = 56;
/// Bytes of one `hvm_memmap_table_entry`.
pub const MEMMAP_ENTRY_BYTES: usize = 24;
/// Most memory-map entries read (QEMU's option ROM stops at 128 too).
pub const MAX_MEMMAP_ENTRIES: u32 = 128;

/// Reads physical memory into a buffer; `false` if the range cannot be read.
pub type ReadPhys<'a> = &'a mut dyn FnMut(u64, &mut [u8]) -> bool;

/// The fields of `hvm_start_info` the kernel uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StartInfo {
    /// 0 (no memory map) or 1.
    pub version: u32,
    /// Physical address of the NUL-terminated command line (0: none).
    pub cmdline_paddr: u64,
    /// Physical address of the RSDP (0: not given).
    pub rsdp_paddr: u64,
    /// Physical address of the memory map (version 1).
    pub memmap_paddr: u64,
    /// Entries in the memory map (version 1).
    pub memmap_entries: u32,
}

/// Why the hand-over cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartInfoError {
    /// The structure could not be read at the address in EBX.
    Unreadable(u64),
    /// The magic is wrong (not entered through PVH).
    BadMagic(u32),
    /// Version 0 has no memory map, and the kernel knows no other source of RAM.
    NoMemoryMap,
    /// The memory map could not be read.
    MemoryMapUnreadable(u64),
}

impl core::fmt::Display for StartInfoError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Unreadable(pa) => write!(f, "start info at {pa:#x} unreadable"),
            Self::BadMagic(m) => write!(f, "start info magic {m:#x}, expected {MAGIC:#x}"),
            Self::NoMemoryMap => f.write_str("start info version 0 carries no memory map"),
            Self::MemoryMapUnreadable(pa) => write!(f, "memory map at {pa:#x} unreadable"),
        }
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from(u32_at(b, at)) | (u64::from(u32_at(b, at + 4)) << 32)
}

impl StartInfo {
    /// Reads and checks the start info at `pa`.
    pub fn read(pa: u64, read: ReadPhys<'_>) -> Result<StartInfo, StartInfoError> {
        let mut b = [0u8; START_INFO_BYTES];
        if !read(pa, &mut b[..24]) {
            return Err(StartInfoError::Unreadable(pa));
        }
        let magic = u32_at(&b, 0);
        if magic != MAGIC {
            return Err(StartInfoError::BadMagic(magic));
        }
        let version = u32_at(&b, 4);
        if version >= 1 && !read(pa, &mut b) {
            return Err(StartInfoError::Unreadable(pa));
        }
        Ok(StartInfo {
            version,
            cmdline_paddr: u64_at(&b, 24),
            rsdp_paddr: u64_at(&b, 32),
            memmap_paddr: if version >= 1 { u64_at(&b, 40) } else { 0 },
            memmap_entries: if version >= 1 { u32_at(&b, 48) } else { 0 },
        })
    }

    /// The memory map as [`MemoryMap`], sorted by address, with the kernel image
    /// `[kernel.0, kernel.1)` carved out of the RAM that holds it.
    pub fn memory_map(
        &self,
        kernel: (u64, u64),
        read: ReadPhys<'_>,
    ) -> Result<MemoryMap, StartInfoError> {
        if self.version == 0 || self.memmap_entries == 0 {
            return Err(StartInfoError::NoMemoryMap);
        }
        let mut raw = [(0u64, 0u64, MemKind::Reserved); MAX_MEMMAP_ENTRIES as usize];
        let n = self.memmap_entries.min(MAX_MEMMAP_ENTRIES) as usize;
        for (i, slot) in raw[..n].iter_mut().enumerate() {
            let mut e = [0u8; MEMMAP_ENTRY_BYTES];
            let at = self.memmap_paddr + (i * MEMMAP_ENTRY_BYTES) as u64;
            if !read(at, &mut e) {
                return Err(StartInfoError::MemoryMapUnreadable(at));
            }
            let (addr, size) = (u64_at(&e, 0), u64_at(&e, 8));
            *slot = (addr, addr.saturating_add(size), kind(u32_at(&e, 16)));
        }
        let raw = &mut raw[..n];
        raw.sort_unstable_by_key(|r| r.0);
        let mut map = MemoryMap::new();
        for &(start, end, kind) in raw.iter() {
            push_carved(&mut map, MemRegion { start, end, kind }, kernel);
        }
        Ok(map)
    }

    /// The command line at [`Self::cmdline_paddr`] copied into `buf` (up to the NUL or
    /// `buf`'s length, untrimmed, from `buf[0]`); `""` when there is none or it is not
    /// UTF-8.
    pub fn cmdline<'b>(&self, buf: &'b mut [u8], read: ReadPhys<'_>) -> &'b str {
        if self.cmdline_paddr == 0 {
            return "";
        }
        let mut len = 0;
        while len < buf.len() {
            let mut c = [0u8; 1];
            if !read(self.cmdline_paddr + len as u64, &mut c) || c[0] == 0 {
                break;
            }
            buf[len] = c[0];
            len += 1;
        }
        core::str::from_utf8(&buf[..len]).unwrap_or("")
    }
}

/// E820 / `XEN_HVM_MEMMAP_TYPE_*` to the kernel's kinds (7, persistent memory, is left
/// to the region code: reserved here, as the Limine path reports it).
pub fn kind(e820: u32) -> MemKind {
    match e820 {
        1 => MemKind::Usable,
        3 => MemKind::AcpiReclaimable,
        4 => MemKind::AcpiNvs,
        5 => MemKind::Bad,
        _ => MemKind::Reserved,
    }
}

/// Pushes `r`, split around `kernel` when `r` is usable RAM that holds part of it.
fn push_carved(map: &mut MemoryMap, r: MemRegion, kernel: (u64, u64)) {
    let (ks, ke) = kernel;
    if r.kind != MemKind::Usable || ke <= r.start || r.end <= ks {
        map.push(r);
        return;
    }
    let piece = |start, end, kind| MemRegion { start, end, kind };
    map.push(piece(r.start, ks.max(r.start), MemKind::Usable));
    map.push(piece(ks.max(r.start), ke.min(r.end), MemKind::Kernel));
    map.push(piece(ke.min(r.end), r.end, MemKind::Usable));
}

/// The legacy RSDP search (ACPI 6.5 §5.2.5.1): the first KiB of the EBDA, then
/// 0xE0000-0xFFFFF, on 16-byte boundaries, signature and ACPI 1.0 checksum both right.
pub fn find_rsdp(read: ReadPhys<'_>) -> Option<u64> {
    let mut ebda = [0u8; 2];
    let ebda = if read(0x40e, &mut ebda) {
        u64::from(u16::from_le_bytes(ebda)) << 4
    } else {
        0
    };
    let areas = [(ebda, ebda + 1024), (0xe0000, 0x100000)];
    for (start, end) in areas.into_iter().filter(|a| a.0 >= 0x400) {
        for pa in (start..end).step_by(16) {
            let mut b = [0u8; 20];
            if read(pa, &mut b)
                && &b[..8] == b"RSD PTR "
                && b.iter().fold(0u8, |s, &x| s.wrapping_add(x)) == 0
            {
                return Some(pa);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake physical memory of 1 MiB.
    struct Mem(Vec<u8>);

    impl Mem {
        fn new() -> Mem {
            Mem(vec![0; 1 << 20])
        }

        fn put(&mut self, at: u64, bytes: &[u8]) {
            self.0[at as usize..at as usize + bytes.len()].copy_from_slice(bytes);
        }

        fn reader(&self) -> impl FnMut(u64, &mut [u8]) -> bool + '_ {
            |pa, buf| {
                let (s, e) = (pa as usize, pa as usize + buf.len());
                if e > self.0.len() {
                    return false;
                }
                buf.copy_from_slice(&self.0[s..e]);
                true
            }
        }
    }

    fn start_info(mem: &mut Mem, at: u64, version: u32, entries: &[(u64, u64, u32)]) {
        let mut b = [0u8; START_INFO_BYTES];
        b[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        b[4..8].copy_from_slice(&version.to_le_bytes());
        b[24..32].copy_from_slice(&0x9000u64.to_le_bytes());
        b[32..40].copy_from_slice(&0xf5a40u64.to_le_bytes());
        b[40..48].copy_from_slice(&0x8000u64.to_le_bytes());
        b[48..52].copy_from_slice(&(entries.len() as u32).to_le_bytes());
        mem.put(at, &b);
        for (i, &(addr, size, typ)) in entries.iter().enumerate() {
            let mut e = [0u8; MEMMAP_ENTRY_BYTES];
            e[0..8].copy_from_slice(&addr.to_le_bytes());
            e[8..16].copy_from_slice(&size.to_le_bytes());
            e[16..20].copy_from_slice(&typ.to_le_bytes());
            mem.put(0x8000 + (i * MEMMAP_ENTRY_BYTES) as u64, &e);
        }
        mem.put(0x9000, b"  loglevel=info hello=pvh\0garbage");
    }

    /// SeaBIOS's map for `-m 512M` (as QEMU's PVH option ROM passes it on), unsorted.
    const SEABIOS: [(u64, u64, u32); 5] = [
        (0x100000, 0x1fee0000, 1),
        (0, 0x9fc00, 1),
        (0x9fc00, 0x400, 2),
        (0xf0000, 0x10000, 2),
        (0x1ffe0000, 0x20000, 2),
    ];

    #[test]
    fn reads_version_1_and_carves_the_kernel_out_of_ram() {
        let mut mem = Mem::new();
        start_info(&mut mem, 0xcc000, 1, &SEABIOS);
        let info = StartInfo::read(0xcc000, &mut mem.reader()).unwrap();
        assert_eq!((info.version, info.memmap_entries), (1, 5));
        assert_eq!(info.rsdp_paddr, 0xf5a40);
        let map = info
            .memory_map((0x200000, 0x8a5000), &mut mem.reader())
            .unwrap();
        let got: Vec<_> = map
            .regions()
            .iter()
            .map(|r| (r.start, r.end, r.kind))
            .collect();
        assert_eq!(
            got,
            [
                (0, 0x9fc00, MemKind::Usable),
                (0x9fc00, 0xa0000, MemKind::Reserved),
                (0xf0000, 0x100000, MemKind::Reserved),
                (0x100000, 0x200000, MemKind::Usable),
                (0x200000, 0x8a5000, MemKind::Kernel),
                (0x8a5000, 0x1ffe0000, MemKind::Usable),
                (0x1ffe0000, 0x20000000, MemKind::Reserved),
            ]
        );
        assert_eq!(map.ram_bytes(), 0x9fc00 + 0x1fee0000);
        let mut buf = [0u8; 64];
        assert_eq!(
            info.cmdline(&mut buf, &mut mem.reader()),
            "  loglevel=info hello=pvh"
        );
    }

    #[test]
    fn bad_magic_version_0_and_unreadable_maps_are_refused() {
        let mut mem = Mem::new();
        assert_eq!(
            StartInfo::read(0x1000, &mut mem.reader()),
            Err(StartInfoError::BadMagic(0))
        );
        assert_eq!(
            StartInfo::read(0x2_0000_0000, &mut mem.reader()),
            Err(StartInfoError::Unreadable(0x2_0000_0000))
        );
        start_info(&mut mem, 0x1000, 0, &SEABIOS);
        let v0 = StartInfo::read(0x1000, &mut mem.reader()).unwrap();
        assert_eq!((v0.memmap_paddr, v0.memmap_entries), (0, 0));
        assert_eq!(
            v0.memory_map((0, 0), &mut mem.reader()).unwrap_err(),
            StartInfoError::NoMemoryMap
        );
        let far = StartInfo {
            memmap_paddr: 0x10_0000 - MEMMAP_ENTRY_BYTES as u64,
            ..v0
        };
        let far = StartInfo {
            version: 1,
            memmap_entries: 2,
            ..far
        };
        assert_eq!(
            far.memory_map((0, 0), &mut mem.reader()).unwrap_err(),
            StartInfoError::MemoryMapUnreadable(0x10_0000),
            "the first entry is the last readable one"
        );
    }

    #[test]
    fn the_rsdp_is_found_in_the_bios_area_with_a_valid_checksum_only() {
        let mut mem = Mem::new();
        let mut rsdp = *b"RSD PTR \0BOCHS \0\0\0\0\0";
        assert_eq!(find_rsdp(&mut mem.reader()), None);
        mem.put(0xf5a40, &rsdp);
        assert_eq!(find_rsdp(&mut mem.reader()), None, "bad checksum");
        let sum = rsdp.iter().fold(0u8, |s, &x| s.wrapping_add(x));
        rsdp[8] = 0u8.wrapping_sub(sum);
        mem.put(0xf5a40, &rsdp);
        assert_eq!(find_rsdp(&mut mem.reader()), Some(0xf5a40));
        mem.put(0x40e, &0x9fc0u16.to_le_bytes());
        mem.put(0x9fc40, &rsdp);
        assert_eq!(find_rsdp(&mut mem.reader()), Some(0x9fc40), "EBDA first");
    }
}
