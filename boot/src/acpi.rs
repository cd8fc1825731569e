//! A minimal ACPI walk for the loader: the physical ranges of the RSDP and every table
//! it reaches (so base revision 4+ can promise they are HHDM-mapped), the IO-APICs of
//! the MADT (to mask them at hand-off) and whether an IOMMU table is present.
//!
//! Memory is read through a closure so the walk is tested on a fake memory.

/// At most this many ranges are reported; the rest are counted in `dropped`.
pub const MAX_RANGES: usize = 64;
/// At most this many IO-APICs are reported.
pub const MAX_IOAPICS: usize = 8;

/// What the walk found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tables {
    /// `[start, end)` of the RSDP and each table.
    pub ranges: [(u64, u64); MAX_RANGES],
    /// Valid entries in `ranges`.
    pub len: usize,
    /// Ranges that did not fit.
    pub dropped: usize,
    /// MMIO bases of the IO-APICs.
    pub ioapics: [u64; MAX_IOAPICS],
    /// Valid entries in `ioapics`.
    pub ioapic_count: usize,
    /// A DMAR (VT-d) or IVRS (AMD-Vi) table exists.
    pub iommu: bool,
}

impl Tables {
    fn new() -> Self {
        Self {
            ranges: [(0, 0); MAX_RANGES],
            len: 0,
            dropped: 0,
            ioapics: [0; MAX_IOAPICS],
            ioapic_count: 0,
            iommu: false,
        }
    }

    /// The ranges found.
    pub fn ranges(&self) -> &[(u64, u64)] {
        &self.ranges[..self.len]
    }

    fn add(&mut self, start: u64, len: u64) {
        if start == 0 || len == 0 {
            return;
        }
        if self.len == MAX_RANGES {
            self.dropped += 1;
        } else {
            self.ranges[self.len] = (start, start + len);
            self.len += 1;
        }
    }
}

/// Walks from the RSDP at `rsdp`; `read(pa, buf)` fills `buf` from physical memory.
pub fn walk(rsdp: u64, read: &mut dyn FnMut(u64, &mut [u8])) -> Tables {
    let mut t = Tables::new();
    let mut head = [0u8; 36];
    read(rsdp, &mut head);
    if &head[..8] != b"RSD PTR " {
        return t;
    }
    let rev = head[15];
    let rsdt = u64::from(u32_at(&head, 16));
    let (len, root, entry) = if rev >= 2 {
        (u64::from(u32_at(&head, 20)), u64_at(&head, 24), 8)
    } else {
        (20, rsdt, 4)
    };
    t.add(rsdp, len.clamp(20, 36));
    let root_len = table_len(root, read);
    t.add(root, root_len);
    let count = root_len.saturating_sub(36) / entry;
    for i in 0..count.min(256) {
        let mut b = [0u8; 8];
        read(root + 36 + i * entry, &mut b[..entry as usize]);
        let table = u64_at(&b, 0);
        visit(table, read, &mut t);
    }
    t
}

/// Records one table and follows what it references.
fn visit(table: u64, read: &mut dyn FnMut(u64, &mut [u8]), t: &mut Tables) {
    let mut h = [0u8; 36];
    read(table, &mut h);
    let len = u64::from(u32_at(&h, 4));
    t.add(table, len);
    match &h[..4] {
        b"FACP" => {
            let mut f = [0u8; 148];
            let n = (len as usize).min(148);
            read(table, &mut f[..n]);
            let facs = if n >= 140 && u64_at(&f, 132) != 0 {
                u64_at(&f, 132)
            } else {
                u64::from(u32_at(&f, 36))
            };
            let dsdt = if n >= 148 && u64_at(&f, 140) != 0 {
                u64_at(&f, 140)
            } else {
                u64::from(u32_at(&f, 40))
            };
            for sub in [facs, dsdt] {
                if sub != 0 {
                    t.add(sub, table_len(sub, read));
                }
            }
        }
        b"APIC" => madt(table, len, read, t),
        b"DMAR" | b"IVRS" => t.iommu = true,
        _ => {}
    }
}

/// Collects IO-APIC entries (type 1) of the MADT.
fn madt(table: u64, len: u64, read: &mut dyn FnMut(u64, &mut [u8]), t: &mut Tables) {
    let mut off = 44;
    while off + 2 <= len {
        let mut e = [0u8; 12];
        read(table + off, &mut e[..2]);
        let elen = u64::from(e[1]);
        if elen < 2 {
            break;
        }
        if e[0] == 1 && elen >= 12 && t.ioapic_count < MAX_IOAPICS {
            read(table + off, &mut e);
            t.ioapics[t.ioapic_count] = u64::from(u32_at(&e, 4));
            t.ioapic_count += 1;
        }
        off += elen;
    }
}

fn table_len(pa: u64, read: &mut dyn FnMut(u64, &mut [u8])) -> u64 {
    if pa == 0 {
        return 0;
    }
    let mut b = [0u8; 8];
    read(pa, &mut b);
    u64::from(u32_at(&b, 4))
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from(u32_at(b, o)) | (u64::from(u32_at(b, o + 4)) << 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(mem: &mut [u8], at: usize, bytes: &[u8]) {
        mem[at..at + bytes.len()].copy_from_slice(bytes);
    }

    fn header(mem: &mut [u8], at: usize, sig: &[u8; 4], len: u32) {
        put(mem, at, sig);
        put(mem, at + 4, &len.to_le_bytes());
    }

    #[test]
    fn walks_xsdt_fadt_madt() {
        let mut mem = vec![0u8; 0x4000];
        // RSDP v2 at 0x100 -> XSDT at 0x200 with FADT 0x400, MADT 0x800, DMAR 0xa00.
        put(&mut mem, 0x100, b"RSD PTR ");
        mem[0x100 + 15] = 2;
        put(&mut mem, 0x100 + 20, &36u32.to_le_bytes());
        put(&mut mem, 0x100 + 24, &0x200u64.to_le_bytes());
        header(&mut mem, 0x200, b"XSDT", 36 + 24);
        for (i, a) in [0x400u64, 0x800, 0xa00].iter().enumerate() {
            put(&mut mem, 0x200 + 36 + 8 * i, &a.to_le_bytes());
        }
        header(&mut mem, 0x400, b"FACP", 276);
        put(&mut mem, 0x400 + 36, &0x1000u32.to_le_bytes());
        put(&mut mem, 0x400 + 140, &0x2000u64.to_le_bytes());
        header(&mut mem, 0x1000, b"FACS", 64);
        header(&mut mem, 0x2000, b"DSDT", 0x1234);
        header(&mut mem, 0x800, b"APIC", 44 + 8 + 12);
        put(&mut mem, 0x800 + 44, &[0, 8, 0, 0, 1, 0, 0, 0]);
        put(&mut mem, 0x800 + 52, &[1, 12, 0, 0]);
        put(&mut mem, 0x800 + 56, &0xfec0_0000u32.to_le_bytes());
        header(&mut mem, 0xa00, b"DMAR", 48);
        let mut read = |pa: u64, buf: &mut [u8]| {
            let pa = pa as usize;
            buf.copy_from_slice(&mem[pa..pa + buf.len()]);
        };
        let t = walk(0x100, &mut read);
        assert_eq!(
            t.ranges(),
            &[
                (0x100, 0x124),
                (0x200, 0x200 + 60),
                (0x400, 0x400 + 276),
                (0x1000, 0x1040),
                (0x2000, 0x3234),
                (0x800, 0x800 + 64),
                (0xa00, 0xa30),
            ]
        );
        assert_eq!(&t.ioapics[..t.ioapic_count], &[0xfec0_0000]);
        assert!(t.iommu);
    }

    #[test]
    fn garbage_rsdp_yields_nothing() {
        let mut read = |_: u64, buf: &mut [u8]| buf.fill(0);
        let t = walk(0x1000, &mut read);
        assert_eq!(t.len, 0);
        assert!(!t.iommu);
    }
}
