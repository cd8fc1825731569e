//! Just enough ELF64 to load a Limine-protocol kernel: the header, the `PT_LOAD`
//! segments, placing them in one physically contiguous block, and `R_*_RELATIVE`
//! relocations for a position-independent image linked in the higher half.

use alloc::vec::Vec;
use core::fmt;

/// Where a Limine kernel must be linked: at or above -2 GiB.
pub const HIGHER_HALF: u64 = 0xffff_ffff_8000_0000;

/// `e_machine` for x86_64.
pub const EM_X86_64: u16 = 62;
/// `e_machine` for aarch64.
pub const EM_AARCH64: u16 = 183;

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;
const PAGE: u64 = 4096;

/// Segment permission bits (`p_flags`).
pub const PF_X: u32 = 1;
/// Writable segment.
pub const PF_W: u32 = 2;

/// One `PT_LOAD` segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Virtual address.
    pub vaddr: u64,
    /// Bytes in memory.
    pub memsz: u64,
    /// Bytes in the file.
    pub filesz: u64,
    /// File offset.
    pub offset: u64,
    /// `PF_*` bits.
    pub flags: u32,
}

/// A parsed kernel image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    /// Entry point (virtual).
    pub entry: u64,
    /// The loadable segments, by address.
    pub segments: Vec<Segment>,
    /// `(offset, size)` of the RELA table if the image is PIE with a `PT_DYNAMIC`.
    rela: Option<(u64, u64)>,
}

/// Why a file is not a loadable kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfError {
    /// Not an ELF64 little-endian file of the expected machine.
    NotElf,
    /// Neither `ET_EXEC` nor `ET_DYN`.
    Type,
    /// A header or segment lies outside the file.
    Truncated,
    /// No `PT_LOAD` segment.
    NoSegments,
    /// A segment below the higher half (-2 GiB).
    LowerHalf(u64),
    /// Overlapping segments.
    Overlap,
    /// A relocation of a kind other than RELATIVE.
    Relocation(u32),
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ElfError::NotElf => f.write_str("not an ELF64 little-endian file for this machine"),
            ElfError::Type => f.write_str("ELF type is neither EXEC nor DYN"),
            ElfError::Truncated => f.write_str("ELF headers or segments run past the file"),
            ElfError::NoSegments => f.write_str("no PT_LOAD segment"),
            ElfError::LowerHalf(v) => write!(f, "segment at {v:#x} is below {HIGHER_HALF:#x}"),
            ElfError::Overlap => f.write_str("PT_LOAD segments overlap"),
            ElfError::Relocation(t) => write!(f, "unsupported relocation type {t}"),
        }
    }
}

fn u16_at(b: &[u8], o: usize) -> Result<u16, ElfError> {
    let s = b.get(o..o + 2).ok_or(ElfError::Truncated)?;
    Ok(u16::from_le_bytes([s[0], s[1]]))
}

fn u32_at(b: &[u8], o: usize) -> Result<u32, ElfError> {
    let s = b.get(o..o + 4).ok_or(ElfError::Truncated)?;
    Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn u64_at(b: &[u8], o: usize) -> Result<u64, ElfError> {
    let s = b.get(o..o + 8).ok_or(ElfError::Truncated)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Ok(u64::from_le_bytes(a))
}

/// Parses the ELF file `file` for machine `machine` (e.g. [`EM_X86_64`]).
pub fn parse(file: &[u8], machine: u16) -> Result<Image, ElfError> {
    if file.get(..6) != Some(b"\x7fELF\x02\x01") || u16_at(file, 18)? != machine {
        return Err(ElfError::NotElf);
    }
    let ty = u16_at(file, 16)?;
    if ty != ET_EXEC && ty != ET_DYN {
        return Err(ElfError::Type);
    }
    let entry = u64_at(file, 24)?;
    let phoff = u64_at(file, 32)? as usize;
    let phentsize = usize::from(u16_at(file, 54)?);
    let phnum = usize::from(u16_at(file, 56)?);
    let mut segments = Vec::new();
    let mut dynamic = None;
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        let p_type = u32_at(file, ph)?;
        let seg = Segment {
            flags: u32_at(file, ph + 4)?,
            offset: u64_at(file, ph + 8)?,
            vaddr: u64_at(file, ph + 16)?,
            filesz: u64_at(file, ph + 32)?,
            memsz: u64_at(file, ph + 40)?,
        };
        if seg
            .offset
            .checked_add(seg.filesz)
            .is_none_or(|e| e > file.len() as u64)
            || seg.filesz > seg.memsz
        {
            return Err(ElfError::Truncated);
        }
        match p_type {
            PT_LOAD if seg.memsz > 0 => {
                if seg.vaddr < HIGHER_HALF || seg.vaddr.checked_add(seg.memsz).is_none() {
                    return Err(ElfError::LowerHalf(seg.vaddr));
                }
                segments.push(seg);
            }
            PT_DYNAMIC => dynamic = Some(seg),
            _ => {}
        }
    }
    if segments.is_empty() {
        return Err(ElfError::NoSegments);
    }
    segments.sort_unstable_by_key(|s| s.vaddr);
    if segments
        .windows(2)
        .any(|w| w[0].vaddr + w[0].memsz > w[1].vaddr)
    {
        return Err(ElfError::Overlap);
    }
    let rela = match (ty, dynamic) {
        (ET_DYN, Some(d)) => rela_table(file, &d)?,
        _ => None,
    };
    Ok(Image {
        entry,
        segments,
        rela,
    })
}

/// Finds `DT_RELA`/`DT_RELASZ` in the dynamic segment (as file offsets via the segments).
fn rela_table(file: &[u8], dynamic: &Segment) -> Result<Option<(u64, u64)>, ElfError> {
    const DT_NULL: u64 = 0;
    const DT_RELA: u64 = 7;
    const DT_RELASZ: u64 = 8;
    let (mut addr, mut size) = (None, 0);
    let mut o = dynamic.offset as usize;
    while o + 16 <= (dynamic.offset + dynamic.filesz) as usize {
        let (tag, val) = (u64_at(file, o)?, u64_at(file, o + 8)?);
        match tag {
            DT_NULL => break,
            DT_RELA => addr = Some(val),
            DT_RELASZ => size = val,
            _ => {}
        }
        o += 16;
    }
    Ok(addr.map(|a| (a, size)))
}

impl Image {
    /// Page-aligned virtual span `[start, end)` covering every segment.
    pub fn span(&self) -> (u64, u64) {
        let start = self.segments[0].vaddr & !(PAGE - 1);
        let last = self.segments[self.segments.len() - 1];
        let end = (last.vaddr + last.memsz).next_multiple_of(PAGE);
        (start, end)
    }

    /// Bytes from the span start to the end of the last file-backed byte: what a
    /// request scan may look at (`.bss` is never scanned).
    pub fn scan_len(&self) -> usize {
        let (start, _) = self.span();
        let end = self
            .segments
            .iter()
            .map(|s| s.vaddr + s.filesz)
            .max()
            .unwrap_or(start);
        (end - start) as usize
    }

    /// Copies the segments of `file` into `dst` (the span's bytes), zeroing the rest,
    /// and applies RELATIVE relocations for the span loaded at its link address.
    pub fn load(&self, file: &[u8], dst: &mut [u8], machine: u16) -> Result<(), ElfError> {
        let (start, end) = self.span();
        assert_eq!(
            dst.len() as u64,
            end - start,
            "destination must cover the span"
        );
        dst.fill(0);
        for s in &self.segments {
            let at = (s.vaddr - start) as usize;
            let src = &file[s.offset as usize..(s.offset + s.filesz) as usize];
            dst[at..at + src.len()].copy_from_slice(src);
        }
        if let Some((addr, size)) = self.rela {
            self.relocate(dst, addr, size, machine)?;
        }
        Ok(())
    }

    /// Applies `R_*_RELATIVE` entries (slide 0: the image runs at its link address).
    fn relocate(&self, dst: &mut [u8], addr: u64, size: u64, machine: u16) -> Result<(), ElfError> {
        let relative = if machine == EM_AARCH64 { 1027 } else { 8 };
        let (start, end) = self.span();
        if addr < start || addr + size > end {
            return Err(ElfError::Truncated);
        }
        let table = (addr - start) as usize;
        for i in 0..(size / 24) as usize {
            let e = table + i * 24;
            let (off, info, addend) = (u64_at(dst, e)?, u64_at(dst, e + 8)?, u64_at(dst, e + 16)?);
            if info as u32 != relative {
                return Err(ElfError::Relocation(info as u32));
            }
            if off < start || off + 8 > end {
                return Err(ElfError::Truncated);
            }
            let at = (off - start) as usize;
            dst[at..at + 8].copy_from_slice(&addend.to_le_bytes());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds an ELF64 with the given `(vaddr, flags, data, memsz)` PT_LOADs.
    fn elf(ty: u16, segs: &[(u64, u32, &[u8], u64)]) -> Vec<u8> {
        let mut f = vec![0u8; 64 + 56 * segs.len()];
        f[..6].copy_from_slice(b"\x7fELF\x02\x01");
        f[16..18].copy_from_slice(&ty.to_le_bytes());
        f[18..20].copy_from_slice(&EM_X86_64.to_le_bytes());
        f[24..32].copy_from_slice(&(HIGHER_HALF + 0x40).to_le_bytes());
        f[32..40].copy_from_slice(&64u64.to_le_bytes());
        f[54..56].copy_from_slice(&56u16.to_le_bytes());
        f[56..58].copy_from_slice(&(segs.len() as u16).to_le_bytes());
        for (i, (vaddr, flags, data, memsz)) in segs.iter().enumerate() {
            let off = f.len() as u64;
            f.extend_from_slice(data);
            let ph = 64 + 56 * i;
            f[ph..ph + 4].copy_from_slice(&PT_LOAD.to_le_bytes());
            f[ph + 4..ph + 8].copy_from_slice(&flags.to_le_bytes());
            f[ph + 8..ph + 16].copy_from_slice(&off.to_le_bytes());
            f[ph + 16..ph + 24].copy_from_slice(&vaddr.to_le_bytes());
            f[ph + 32..ph + 40].copy_from_slice(&(data.len() as u64).to_le_bytes());
            f[ph + 40..ph + 48].copy_from_slice(&memsz.to_le_bytes());
        }
        f
    }

    #[test]
    fn loads_segments_and_zeroes_bss() {
        let text = [0x90u8; 16];
        let data = [7u8; 8];
        let f = elf(
            ET_EXEC,
            &[
                (HIGHER_HALF + 0x2000, PF_W, &data, 0x3000),
                (HIGHER_HALF, PF_X, &text, 16),
            ],
        );
        let img = parse(&f, EM_X86_64).unwrap();
        assert_eq!(img.entry, HIGHER_HALF + 0x40);
        assert_eq!(img.segments[0].vaddr, HIGHER_HALF, "sorted by address");
        assert_eq!(img.span(), (HIGHER_HALF, HIGHER_HALF + 0x5000));
        assert_eq!(img.scan_len(), 0x2008);
        let mut dst = vec![0xffu8; 0x5000];
        img.load(&f, &mut dst, EM_X86_64).unwrap();
        assert_eq!(&dst[..16], &text);
        assert_eq!(&dst[0x2000..0x2008], &data);
        assert!(dst[0x2008..].iter().all(|&b| b == 0));
        assert!(dst[16..0x2000].iter().all(|&b| b == 0));
    }

    #[test]
    fn rejects_bad_files() {
        assert_eq!(parse(b"nope", EM_X86_64), Err(ElfError::NotElf));
        let f = elf(ET_EXEC, &[(0x1000, PF_X, &[1], 1)]);
        assert_eq!(parse(&f, EM_X86_64), Err(ElfError::LowerHalf(0x1000)));
        assert_eq!(parse(&f, EM_AARCH64), Err(ElfError::NotElf));
        let f = elf(1, &[(HIGHER_HALF, PF_X, &[1], 1)]);
        assert_eq!(parse(&f, EM_X86_64), Err(ElfError::Type));
        let f = elf(
            ET_EXEC,
            &[
                (HIGHER_HALF, 0, &[1; 8], 0x2000),
                (HIGHER_HALF + 0x1000, 0, &[1], 1),
            ],
        );
        assert_eq!(parse(&f, EM_X86_64), Err(ElfError::Overlap));
        let f = elf(ET_EXEC, &[]);
        assert_eq!(parse(&f, EM_X86_64), Err(ElfError::NoSegments));
        let mut f = elf(ET_EXEC, &[(HIGHER_HALF, 0, &[1; 8], 8)]);
        f.truncate(f.len() - 4);
        assert_eq!(parse(&f, EM_X86_64), Err(ElfError::Truncated));
    }
}
