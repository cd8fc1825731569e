//! The EFI System Partition handed to QEMU, as a *directory* for QEMU's vvfat driver
//! (`-drive format=raw,file=fat:rw:<dir>`): no FAT tooling (mtools, mkfs, sgdisk) and no
//! image rebuild, the firmware sees a FAT volume synthesized from the directory.
//!
//! Layout (DESIGN.md §4): `EFI/BOOT/BOOTX64.EFI` (or `BOOTAA64.EFI`), `boot/kernel`,
//! `boot/limine.conf`. The loader is ours (the `boot` crate) unless a Limine install is
//! found: `--limine DIR` (the `explicit` argument), `$LIMINE_DIR`, `limine
//! --print-datadir`, then the usual prefixes (limine.md §4.4). Swapping the loader is
//! the only difference between the two boot paths. With Limine's `limine-bios-cd.bin`
//! and `xorriso` available, [`build_iso`] also makes a hybrid BIOS/UEFI ISO.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// Which loader ended up in `EFI/BOOT/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoaderKind {
    /// Our Limine-protocol loader (crate `boot`).
    Ours,
    /// Limine's own EFI binary, from this data directory.
    Limine(PathBuf),
}

impl LoaderKind {
    /// One line for `run` to print, e.g. `loader: limine (/usr/share/limine)`.
    pub fn describe(&self) -> String {
        match self {
            LoaderKind::Ours => "loader: hotmem-boot (boot/, Limine protocol)".to_string(),
            LoaderKind::Limine(dir) => format!("loader: limine ({})", dir.display()),
        }
    }
}

/// What goes on the ESP.
#[derive(Clone, Debug)]
pub struct EspSpec<'a> {
    /// `BOOTX64.EFI` or `BOOTAA64.EFI`.
    pub efi_name: &'a str,
    /// Our loader (`target/<uefi-triple>/<profile>/boot.efi`).
    pub our_loader: &'a Path,
    /// The kernel ELF.
    pub kernel: &'a Path,
    /// `boot/limine.conf` of the workspace.
    pub conf: &'a Path,
    /// `--limine DIR`, if given (wins over every other place).
    pub limine_dir: Option<&'a Path>,
}

/// The assembled ESP.
#[derive(Clone, Debug)]
pub struct Esp {
    /// The directory to pass as `fat:rw:<dir>`.
    pub dir: PathBuf,
    /// The loader copied to `EFI/BOOT/`.
    pub loader: LoaderKind,
}

impl Esp {
    /// QEMU arguments attaching the ESP (x86_64 and aarch64 firmware both boot from
    /// the first FAT volume with `EFI/BOOT/BOOT*.EFI`).
    pub fn qemu_args(&self) -> Vec<String> {
        vec![
            "-drive".into(),
            format!("format=raw,file=fat:rw:{}", self.dir.display()),
        ]
    }
}

/// Lays out the ESP in `dir` (created or refreshed).
pub fn build_esp(dir: &Path, spec: &EspSpec<'_>) -> Result<Esp> {
    let limine = find_limine(spec.limine_dir, spec.efi_name);
    if let Some(explicit) = spec.limine_dir
        && limine.is_none()
    {
        bail!(
            "--limine {}: no {} there",
            explicit.display(),
            spec.efi_name
        );
    }
    let (efi, loader) = match limine {
        Some(d) => (d.join(spec.efi_name), LoaderKind::Limine(d)),
        None => (spec.our_loader.to_path_buf(), LoaderKind::Ours),
    };
    fs::create_dir_all(dir.join("EFI/BOOT"))?;
    fs::create_dir_all(dir.join("boot"))?;
    copy(&efi, &dir.join("EFI/BOOT").join(spec.efi_name))?;
    copy(spec.kernel, &dir.join("boot/kernel"))?;
    copy(spec.conf, &dir.join("boot/limine.conf"))?;
    Ok(Esp {
        dir: dir.to_path_buf(),
        loader,
    })
}

/// The first Limine data directory holding `efi_name`, in limine.md's order.
pub fn find_limine(explicit: Option<&Path>, efi_name: &str) -> Option<PathBuf> {
    if let Some(dir) = explicit {
        return has(dir, efi_name).then(|| dir.to_path_buf());
    }
    let env = std::env::var_os("LIMINE_DIR");
    let datadir = limine_print_datadir();
    candidates(env, datadir, std::env::var_os("HOME"))
        .into_iter()
        .find(|d| has(d, efi_name))
}

/// Candidate directories, most specific first.
fn candidates(
    env: Option<OsString>,
    datadir: Option<PathBuf>,
    home: Option<OsString>,
) -> Vec<PathBuf> {
    let mut out = Vec::new();
    out.extend(env.filter(|e| !e.is_empty()).map(PathBuf::from));
    out.extend(datadir);
    for p in [
        "/usr/share/limine",
        "/usr/local/share/limine",
        "/opt/homebrew/share/limine",
    ] {
        out.push(PathBuf::from(p));
    }
    if let Some(h) = home {
        out.push(PathBuf::from(h).join(".nix-profile/share/limine"));
    }
    out.push(PathBuf::from("/run/current-system/sw/share/limine"));
    out
}

/// `limine --print-datadir`, when the host tool exists and knows it.
fn limine_print_datadir() -> Option<PathBuf> {
    let out = Command::new("limine")
        .arg("--print-datadir")
        .output()
        .ok()?;
    let s = String::from_utf8(out.stdout).ok()?;
    let s = s.trim();
    (out.status.success() && !s.is_empty()).then(|| PathBuf::from(s))
}

fn has(dir: &Path, efi_name: &str) -> bool {
    dir.join(efi_name).is_file()
}

/// With Limine's CD boot files and `xorriso`, builds a hybrid BIOS/UEFI ISO of the ESP
/// contents at `out` (limine.md §4.2) and runs `limine bios-install` when the host tool
/// exists. Returns `Ok(None)` when the prerequisites are missing.
pub fn build_iso(limine: &Path, esp: &Path, out: &Path) -> Result<Option<PathBuf>> {
    let needed = [
        "limine-bios-cd.bin",
        "limine-uefi-cd.bin",
        "limine-bios.sys",
    ];
    if !needed.iter().all(|f| limine.join(f).is_file()) || !on_path("xorriso") {
        return Ok(None);
    }
    let root = out.with_extension("iso_root");
    let _ = fs::remove_dir_all(&root);
    copy_tree(esp, &root)?;
    fs::create_dir_all(root.join("boot/limine"))?;
    for f in needed {
        copy(&limine.join(f), &root.join("boot/limine").join(f))?;
    }
    copy(
        &esp.join("boot/limine.conf"),
        &root.join("boot/limine/limine.conf"),
    )?;
    let status = Command::new("xorriso")
        .args([
            "-as",
            "mkisofs",
            "-R",
            "-r",
            "-J",
            "-b",
            "boot/limine/limine-bios-cd.bin",
        ])
        .args([
            "-no-emul-boot",
            "-boot-load-size",
            "4",
            "-boot-info-table",
            "-hfsplus",
        ])
        .args([
            "-apm-block-size",
            "2048",
            "--efi-boot",
            "boot/limine/limine-uefi-cd.bin",
        ])
        .args([
            "-efi-boot-part",
            "--efi-boot-image",
            "--protective-msdos-label",
        ])
        .arg(&root)
        .arg("-o")
        .arg(out)
        .status()
        .context("running xorriso")?;
    if !status.success() {
        bail!("xorriso failed with {status}");
    }
    if on_path("limine") {
        let status = Command::new("limine")
            .arg("bios-install")
            .arg(out)
            .status()?;
        if !status.success() {
            bail!("limine bios-install failed with {status}");
        }
    }
    Ok(Some(out.to_path_buf()))
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            copy(&entry.path(), &target)?;
        }
    }
    Ok(())
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    fs::copy(from, to)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("hotmem-esp-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn files(d: &Path) -> (PathBuf, PathBuf, PathBuf) {
        let (l, k, c) = (d.join("boot.efi"), d.join("kernel"), d.join("limine.conf"));
        fs::write(&l, b"ours").unwrap();
        fs::write(&k, b"\x7fELF").unwrap();
        fs::write(&c, b"/x\n").unwrap();
        (l, k, c)
    }

    #[test]
    fn lays_out_our_loader() {
        let d = scratch("ours");
        let (l, k, c) = files(&d);
        let spec = EspSpec {
            efi_name: "BOOTX64.EFI",
            our_loader: &l,
            kernel: &k,
            conf: &c,
            limine_dir: None,
        };
        let esp = build_esp(&d.join("esp"), &spec).unwrap();
        if esp.loader == LoaderKind::Ours {
            assert_eq!(
                fs::read(d.join("esp/EFI/BOOT/BOOTX64.EFI")).unwrap(),
                b"ours"
            );
        }
        assert_eq!(fs::read(d.join("esp/boot/kernel")).unwrap(), b"\x7fELF");
        assert!(d.join("esp/boot/limine.conf").is_file());
        assert!(esp.qemu_args()[1].starts_with("format=raw,file=fat:rw:"));
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn explicit_limine_dir_wins_and_must_hold_the_binary() {
        let d = scratch("limine");
        let (l, k, c) = files(&d);
        let lim = d.join("limine");
        fs::create_dir_all(&lim).unwrap();
        let spec = EspSpec {
            efi_name: "BOOTAA64.EFI",
            our_loader: &l,
            kernel: &k,
            conf: &c,
            limine_dir: Some(&lim),
        };
        assert!(build_esp(&d.join("esp"), &spec).is_err());
        fs::write(lim.join("BOOTAA64.EFI"), b"limine").unwrap();
        let esp = build_esp(&d.join("esp"), &spec).unwrap();
        assert_eq!(esp.loader, LoaderKind::Limine(lim.clone()));
        assert_eq!(
            fs::read(d.join("esp/EFI/BOOT/BOOTAA64.EFI")).unwrap(),
            b"limine"
        );
        assert!(esp.loader.describe().starts_with("loader: limine ("));
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn candidate_order_follows_the_reference() {
        let c = candidates(
            Some("/env".into()),
            Some("/data".into()),
            Some("/home/u".into()),
        );
        let s: Vec<_> = c.iter().map(|p| p.display().to_string()).collect();
        assert_eq!(&s[..3], ["/env", "/data", "/usr/share/limine"]);
        assert!(s.contains(&"/home/u/.nix-profile/share/limine".to_string()));
        assert_eq!(
            candidates(Some("".into()), None, None)[0],
            PathBuf::from("/usr/share/limine")
        );
    }
}
