//! Kernel modules for the initramfs: find the wanted ones in an unpacked Debian kernel
//! package, follow their `depends=` (what depmod writes to modules.dep; Debian's package
//! ships no modules.dep, depmod runs at install), decompress them (`.ko.xz`) and order
//! them so every module comes after what it depends on.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// One module ready for the initramfs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Module {
    /// Name as the kernel knows it (`libnvdimm`, `nd_pmem`).
    pub name: String,
    /// Path under `lib/modules/<version>/`, without the compression suffix.
    pub rel_path: String,
    /// The uncompressed ELF.
    pub elf: Vec<u8>,
    /// Names it depends on.
    pub depends: Vec<String>,
}

/// What became of each wanted name.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    /// Modules to load, dependencies first.
    pub load: Vec<Module>,
    /// Wanted names built into the kernel (`modules.builtin`).
    pub builtin: Vec<String>,
    /// Wanted names this kernel has neither as module nor built in.
    pub absent: Vec<String>,
}

impl Selection {
    /// `modules.dep` for the selected modules, in depmod's format.
    pub fn modules_dep(&self) -> String {
        let path: BTreeMap<&str, &str> = self
            .load
            .iter()
            .map(|m| (m.name.as_str(), m.rel_path.as_str()))
            .collect();
        let mut text = String::new();
        for m in &self.load {
            let deps: Vec<&str> = m
                .depends
                .iter()
                .filter_map(|d| path.get(d.as_str()).copied())
                .collect();
            text += &format!("{}: {}\n", m.rel_path, deps.join(" "));
        }
        text
    }
}

/// Picks `wanted` and their dependencies from `modules_dir` (`lib/modules/<version>`).
pub fn select(modules_dir: &Path, wanted: &[&str]) -> Result<Selection> {
    let index = index(modules_dir)?;
    let builtin = builtin_names(modules_dir);
    let mut selection = Selection::default();
    let mut loaded: BTreeSet<String> = BTreeSet::new();
    for name in wanted {
        let name = canonical(name);
        if index.contains_key(&name) {
            visit(
                &index,
                &name,
                &mut loaded,
                &mut selection.load,
                &mut Vec::new(),
            )?;
        } else if builtin.contains(&name) {
            selection.builtin.push(name);
        } else {
            selection.absent.push(name);
        }
    }
    Ok(selection)
}

/// Depth-first: dependencies are pushed before the module itself.
fn visit(
    index: &BTreeMap<String, PathBuf>,
    name: &str,
    done: &mut BTreeSet<String>,
    out: &mut Vec<Module>,
    stack: &mut Vec<String>,
) -> Result<()> {
    if done.contains(name) {
        return Ok(());
    }
    if stack.iter().any(|s| s == name) {
        bail!("module dependency cycle: {} -> {name}", stack.join(" -> "));
    }
    let Some(path) = index.get(name) else {
        // A dependency that is built in (or missing) needs no loading.
        return Ok(());
    };
    let elf = read_module(path)?;
    let depends = depends_of(&elf).with_context(|| format!("reading {}", path.display()))?;
    stack.push(name.to_string());
    for dep in &depends {
        visit(index, dep, done, out, stack)?;
    }
    stack.pop();
    done.insert(name.to_string());
    let rel_path = rel_path(path)?;
    out.push(Module {
        name: name.to_string(),
        rel_path,
        elf,
        depends,
    });
    Ok(())
}

/// `kernel/drivers/nvdimm/nd_pmem.ko` for `.../lib/modules/V/kernel/drivers/nvdimm/nd_pmem.ko.xz`.
fn rel_path(path: &Path) -> Result<String> {
    let text = path.to_string_lossy();
    let at = text
        .find("/kernel/")
        .with_context(|| format!("{} is not under kernel/", path.display()))?;
    let rel = &text[at + 1..];
    Ok(rel.strip_suffix(".xz").unwrap_or(rel).to_string())
}

/// Module name → file, for every `.ko` / `.ko.xz` under `dir/kernel`.
fn index(dir: &Path) -> Result<BTreeMap<String, PathBuf>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.join("kernel")];
    while let Some(d) = todo.pop() {
        let entries = fs::read_dir(&d).with_context(|| format!("listing {}", d.display()))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
                continue;
            }
            let file = entry.file_name().to_string_lossy().into_owned();
            if let Some(stem) = file
                .strip_suffix(".ko.xz")
                .or_else(|| file.strip_suffix(".ko"))
            {
                out.insert(canonical(stem), path);
            }
        }
    }
    Ok(out)
}

fn builtin_names(dir: &Path) -> BTreeSet<String> {
    let text = fs::read_to_string(dir.join("modules.builtin")).unwrap_or_default();
    text.lines()
        .filter_map(|l| l.rsplit('/').next())
        .filter_map(|f| f.strip_suffix(".ko"))
        .map(canonical)
        .collect()
}

/// Module names use `_` where file names may use `-`.
fn canonical(name: &str) -> String {
    name.replace('-', "_")
}

fn read_module(path: &Path) -> Result<Vec<u8>> {
    let raw = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if path.extension().is_some_and(|e| e == "xz") {
        let mut out = Vec::new();
        lzma_rs::xz_decompress(&mut raw.as_slice(), &mut out)
            .map_err(|e| anyhow::anyhow!("{}: xz: {e:?}", path.display()))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// The `depends=` list of a module's `.modinfo` section (ELF64, either byte order).
pub fn depends_of(elf: &[u8]) -> Result<Vec<String>> {
    let modinfo = section(elf, ".modinfo")?;
    let depends = modinfo
        .split(|&b| b == 0)
        .filter_map(|entry| entry.strip_prefix(b"depends="))
        .next()
        .unwrap_or_default();
    let text = std::str::from_utf8(depends).context("depends= is not UTF-8")?;
    Ok(text
        .split(',')
        .filter(|s| !s.is_empty())
        .map(canonical)
        .collect())
}

/// The bytes of the named section.
fn section<'a>(elf: &'a [u8], wanted: &str) -> Result<&'a [u8]> {
    if elf.len() < 64 || &elf[..4] != b"\x7fELF" || elf[4] != 2 {
        bail!("not an ELF64 file");
    }
    let big = match elf[5] {
        1 => false,
        2 => true,
        other => bail!("unknown ELF byte order {other}"),
    };
    let get = |at: usize, len: usize| -> Result<u64> {
        let bytes = elf
            .get(at..at + len)
            .with_context(|| format!("ELF truncated at {at:#x}"))?;
        let mut value = 0u64;
        for i in 0..len {
            let b = if big { bytes[i] } else { bytes[len - 1 - i] };
            value = value << 8 | u64::from(b);
        }
        Ok(value)
    };
    let shoff = usize::try_from(get(0x28, 8)?)?;
    let shentsize = usize::try_from(get(0x3a, 2)?)?;
    let shnum = usize::try_from(get(0x3c, 2)?)?;
    let shstrndx = usize::try_from(get(0x3e, 2)?)?;
    let header = |i: usize| -> Result<(u64, usize, usize)> {
        let at = shoff + i * shentsize;
        Ok((
            get(at, 4)?,
            usize::try_from(get(at + 0x18, 8)?)?,
            usize::try_from(get(at + 0x20, 8)?)?,
        ))
    };
    let (_, names_at, names_len) = header(shstrndx)?;
    let names = elf
        .get(names_at..names_at + names_len)
        .context("section names out of the file")?;
    for i in 0..shnum {
        let (name_off, offset, size) = header(i)?;
        let name = names
            .get(usize::try_from(name_off)?..)
            .and_then(|n| n.split(|&b| b == 0).next())
            .unwrap_or_default();
        if name == wanted.as_bytes() {
            return elf
                .get(offset..offset + size)
                .with_context(|| format!("{wanted} out of the file"));
        }
    }
    bail!("no {wanted} section")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 with a `.modinfo` and a `.shstrtab` section, in either byte order.
    fn elf(big: bool, modinfo: &[u8]) -> Vec<u8> {
        let put = |v: u64, len: usize| -> Vec<u8> {
            let le = v.to_le_bytes()[..len].to_vec();
            if big {
                le.into_iter().rev().collect()
            } else {
                le
            }
        };
        let names = b"\0.modinfo\0.shstrtab\0".to_vec();
        let mut file = vec![0u8; 64];
        file[..4].copy_from_slice(b"\x7fELF");
        file[4] = 2;
        file[5] = if big { 2 } else { 1 };
        let modinfo_at = file.len() as u64;
        file.extend_from_slice(modinfo);
        let names_at = file.len() as u64;
        file.extend_from_slice(&names);
        let shoff = file.len() as u64;
        file.extend(vec![0u8; 64]); // null section
        for (name, at, len) in [
            (1u64, modinfo_at, modinfo.len() as u64),
            (10, names_at, names.len() as u64),
        ] {
            let mut sh = vec![0u8; 64];
            sh[..4].copy_from_slice(&put(name, 4));
            sh[0x18..0x20].copy_from_slice(&put(at, 8));
            sh[0x20..0x28].copy_from_slice(&put(len, 8));
            file.extend(sh);
        }
        file[0x28..0x30].copy_from_slice(&put(shoff, 8));
        file[0x3a..0x3c].copy_from_slice(&put(64, 2));
        file[0x3c..0x3e].copy_from_slice(&put(3, 2));
        file[0x3e..0x40].copy_from_slice(&put(2, 2));
        file
    }

    #[test]
    fn depends_come_from_modinfo_in_both_byte_orders() {
        let info = b"license=GPL\0depends=libnvdimm,nd-btt\0name=nd_pmem\0";
        for big in [false, true] {
            assert_eq!(
                depends_of(&elf(big, info)).unwrap(),
                ["libnvdimm", "nd_btt"],
                "big endian: {big}"
            );
        }
        assert!(depends_of(&elf(false, b"depends=\0")).unwrap().is_empty());
        assert!(
            depends_of(b"not an elf at all, long enough to pass the size check......").is_err()
        );
    }

    #[test]
    fn modules_dep_lists_dependencies_by_path() {
        let module = |name: &str, path: &str, deps: &[&str]| Module {
            name: name.into(),
            rel_path: path.into(),
            elf: Vec::new(),
            depends: deps.iter().map(|d| d.to_string()).collect(),
        };
        let selection = Selection {
            load: vec![
                module("libnvdimm", "kernel/drivers/nvdimm/libnvdimm.ko", &[]),
                module(
                    "nd_pmem",
                    "kernel/drivers/nvdimm/nd_pmem.ko",
                    &["libnvdimm"],
                ),
            ],
            ..Selection::default()
        };
        assert_eq!(
            selection.modules_dep(),
            "kernel/drivers/nvdimm/libnvdimm.ko: \n\
             kernel/drivers/nvdimm/nd_pmem.ko: kernel/drivers/nvdimm/libnvdimm.ko\n"
        );
        assert_eq!(
            rel_path(Path::new("/t/lib/modules/6.12/kernel/drivers/a/b.ko.xz")).unwrap(),
            "kernel/drivers/a/b.ko"
        );
    }
}
