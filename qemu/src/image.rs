//! The arm64 `Image` that QEMU's `-kernel` boots as a Linux kernel (DTB in x0): the
//! kernel ELF's loadable bytes laid out flat by virtual address from its first segment,
//! whose first 64 bytes are the Image header the aarch64 port links there
//! (Documentation/arch/arm64/booting.rst). `.bss` is not in the file; the header's
//! `image_size` covers it and the kernel zeroes it.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};

/// Offset of the "ARM\x64" magic in the Image header.
pub const MAGIC_OFFSET: usize = 0x38;
/// Largest image accepted (a runaway segment address would otherwise allocate GiBs).
const MAX_IMAGE: u64 = 256 << 20;

fn u16_at(b: &[u8], at: usize) -> Result<u16> {
    let bytes = b.get(at..at + 2).context("ELF truncated")?;
    Ok(u16::from_le_bytes(bytes.try_into()?))
}

fn u32_at(b: &[u8], at: usize) -> Result<u32> {
    let bytes = b.get(at..at + 4).context("ELF truncated")?;
    Ok(u32::from_le_bytes(bytes.try_into()?))
}

fn u64_at(b: &[u8], at: usize) -> Result<u64> {
    let bytes = b.get(at..at + 8).context("ELF truncated")?;
    Ok(u64::from_le_bytes(bytes.try_into()?))
}

/// The `PT_LOAD` file bytes of a little-endian ELF64, placed at `p_vaddr - lowest p_vaddr`
/// (gaps zero-filled, trailing `.bss` left out).
pub fn flatten(elf: &[u8]) -> Result<Vec<u8>> {
    ensure!(
        elf.get(..4) == Some(b"\x7fELF".as_slice()),
        "not an ELF file"
    );
    ensure!(elf[4] == 2 && elf[5] == 1, "not a little-endian ELF64");
    let phoff = u64_at(elf, 0x20)? as usize;
    let phentsize = usize::from(u16_at(elf, 0x36)?);
    let phnum = usize::from(u16_at(elf, 0x38)?);
    let mut loads = Vec::new();
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        if u32_at(elf, ph)? != 1 {
            continue;
        }
        let (offset, vaddr, filesz) = (
            u64_at(elf, ph + 8)?,
            u64_at(elf, ph + 16)?,
            u64_at(elf, ph + 32)?,
        );
        if filesz > 0 {
            loads.push((vaddr, offset, filesz));
        }
    }
    let base = loads
        .iter()
        .map(|l| l.0)
        .min()
        .context("no loadable segment")?;
    let end = loads.iter().map(|l| l.0 + l.2).max().unwrap_or(base);
    ensure!(
        end - base <= MAX_IMAGE,
        "segments span {:#x} bytes",
        end - base
    );
    let mut image = vec![0u8; (end - base) as usize];
    for (vaddr, offset, filesz) in loads {
        let src = elf
            .get(offset as usize..(offset + filesz) as usize)
            .context("segment beyond the end of the file")?;
        let at = (vaddr - base) as usize;
        image[at..at + src.len()].copy_from_slice(src);
    }
    Ok(image)
}

/// Writes `<elf>.Image` (unless it is newer than the ELF) and returns its path; fails
/// when the ELF does not start with an arm64 Image header.
pub fn arm64_image(elf: &Path) -> Result<PathBuf> {
    let out = elf.with_extension("Image");
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if let (Some(img), Some(src)) = (modified(&out), modified(elf))
        && img >= src
    {
        return Ok(out);
    }
    let bytes = std::fs::read(elf).with_context(|| format!("reading {}", elf.display()))?;
    let image = flatten(&bytes).with_context(|| format!("flattening {}", elf.display()))?;
    if image.get(MAGIC_OFFSET..MAGIC_OFFSET + 4) != Some(b"ARM\x64".as_slice()) {
        bail!(
            "{} has no arm64 Image header at its first byte (not a direct-entry kernel)",
            elf.display()
        );
    }
    std::fs::write(&out, image).with_context(|| format!("writing {}", out.display()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ELF64 with the given `(vaddr, data, memsz)` PT_LOADs.
    fn elf(segs: &[(u64, &[u8], u64)]) -> Vec<u8> {
        let phoff = 64;
        let mut f = vec![0u8; phoff + 56 * segs.len()];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = 2;
        f[5] = 1;
        f[0x20..0x28].copy_from_slice(&(phoff as u64).to_le_bytes());
        f[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        f[0x38..0x3a].copy_from_slice(&(segs.len() as u16).to_le_bytes());
        for (i, (vaddr, data, memsz)) in segs.iter().enumerate() {
            let ph = phoff + 56 * i;
            let offset = f.len() as u64;
            f[ph..ph + 4].copy_from_slice(&1u32.to_le_bytes());
            f[ph + 8..ph + 16].copy_from_slice(&offset.to_le_bytes());
            f[ph + 16..ph + 24].copy_from_slice(&vaddr.to_le_bytes());
            f[ph + 32..ph + 40].copy_from_slice(&(data.len() as u64).to_le_bytes());
            f[ph + 40..ph + 48].copy_from_slice(&memsz.to_le_bytes());
            f.extend_from_slice(data);
        }
        f
    }

    #[test]
    fn segments_land_at_their_virtual_offsets_and_bss_is_left_out() {
        let hi = 0xffff_ffff_8000_0000u64;
        let image = flatten(&elf(&[
            (hi + 0x2000, b"data", 0x9000),
            (hi, b"text", 4),
            (hi + 0x1000, b"ro", 2),
        ]))
        .unwrap();
        assert_eq!(image.len(), 0x2004);
        assert_eq!(&image[..4], b"text");
        assert_eq!(&image[0x1000..0x1002], b"ro");
        assert_eq!(&image[0x2000..], b"data");
        assert!(image[4..0x1000].iter().all(|&b| b == 0));
    }

    #[test]
    fn bad_input_is_refused() {
        assert!(flatten(b"MZ\0\0").is_err());
        assert!(flatten(&elf(&[])).is_err(), "no segment");
        let far = elf(&[(0, b"a", 1), (1 << 40, b"b", 1)]);
        assert!(flatten(&far).unwrap_err().to_string().contains("span"));
    }

    #[test]
    fn an_elf_without_the_header_gives_no_image() {
        let dir = std::env::temp_dir().join(format!("hotmem-image-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("kernel");
        std::fs::write(&path, elf(&[(0x1000, &[0u8; 64], 64)])).unwrap();
        let err = arm64_image(&path).unwrap_err();
        assert!(err.to_string().contains("no arm64 Image header"), "{err}");
        let mut header = [0u8; 64];
        header[MAGIC_OFFSET..MAGIC_OFFSET + 4].copy_from_slice(b"ARM\x64");
        std::fs::write(&path, elf(&[(0x1000, &header, 64)])).unwrap();
        let img = arm64_image(&path).unwrap();
        assert_eq!(std::fs::read(&img).unwrap(), header);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
