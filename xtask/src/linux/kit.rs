//! The Linux side's files: Debian's kernel image and busybox-static for the guest arch,
//! fetched with `apt-get download` against private apt lists (own state, cache and sources
//! under `target/linux/<arch>/apt`, the mirror copied from the machine's own apt sources),
//! unpacked with `dpkg-deb -x` under `target/linux/<arch>/root`, and the initramfs built
//! from them in Rust. Nothing is installed on the host.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use qemu::Arch;

use super::cpio::Cpio;
use super::modules::{self, Selection};

/// The suites the packages come from: the kernel from backports (6.12, which has
/// `nr_memmap_pages`), busybox from the release.
const SUITES: [&str; 2] = ["bookworm", "bookworm-backports"];
const KERNEL_SUITE: &str = "bookworm-backports";

/// The modules the records need, by arch (a built-in or absent one is reported as such).
const MODULES: [&str; 4] = ["nfit", "nd_pmem", "virtio_mem", "virtio_pci"];

/// Everything needed to boot the Linux side.
#[derive(Clone, Debug)]
pub struct Kit {
    pub arch: Arch,
    /// `uname -r` of the kernel.
    pub version: String,
    /// The kernel image (`vmlinuz-<version>`).
    pub kernel: PathBuf,
    /// The initramfs (newc cpio).
    pub initrd: PathBuf,
    /// The console arguments of the kernel command line.
    pub console: &'static str,
    /// What became of the wanted modules.
    pub modules: Selection,
}

/// A failure to get the packages (network, mirror, apt), as opposed to a broken kit.
#[derive(Debug)]
pub struct PackagesUnavailable(pub String);

impl std::fmt::Display for PackagesUnavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Linux packages unavailable: {}", self.0)
    }
}

impl std::error::Error for PackagesUnavailable {}

/// Debian's name for the arch.
pub fn debian_arch(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "amd64",
        Arch::Aarch64 => "arm64",
        Arch::S390x => "s390x",
    }
}

fn console(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "console=ttyS0",
        Arch::Aarch64 => "console=ttyAMA0",
        Arch::S390x => "console=ttysclp0",
    }
}

/// `target/linux/<arch>`.
pub fn dir(arch: Arch) -> PathBuf {
    qemu::cargo::target_dir().join("linux").join(arch.name())
}

/// Fetches (once; cached) and unpacks the packages, then builds the initramfs.
pub fn prepare(arch: Arch) -> Result<Kit> {
    let dir = dir(arch);
    let root = dir.join("root");
    if find_kernel(&root).is_none() || !root.join("bin/busybox").is_file() {
        fetch(arch, &dir, &root)?;
    }
    let (version, kernel) = find_kernel(&root).context("no vmlinuz in the unpacked kernel")?;
    let modules_dir = root.join("lib/modules").join(&version);
    let selection = modules::select(&modules_dir, &MODULES)?;
    let initrd = dir.join("initramfs.cpio");
    let bytes = initramfs(&root, &version, &selection)?;
    fs::write(&initrd, bytes).with_context(|| format!("writing {}", initrd.display()))?;
    Ok(Kit {
        arch,
        version,
        kernel,
        initrd,
        console: console(arch),
        modules: selection,
    })
}

/// `(version, path)` of `root/boot/vmlinuz-<version>`.
fn find_kernel(root: &Path) -> Option<(String, PathBuf)> {
    let entries = fs::read_dir(root.join("boot")).ok()?;
    entries.flatten().find_map(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        let version = name.strip_prefix("vmlinuz-")?.to_string();
        Some((version, e.path()))
    })
}

fn fetch(arch: Arch, dir: &Path, root: &Path) -> Result<()> {
    let apt = Apt::new(arch, &dir.join("apt"))?;
    apt.run("apt-get", &["update"])
        .map_err(|e| PackagesUnavailable(format!("apt-get update: {e:#}")))?;
    let meta = format!("linux-image-{}/{KERNEL_SUITE}", debian_arch(arch));
    let depends = apt
        .output("apt-cache", &["depends", &meta])
        .map_err(|e| PackagesUnavailable(format!("apt-cache depends {meta}: {e:#}")))?;
    let image = real_image_package(&depends)
        .with_context(|| format!("{meta} depends on no linux-image package:\n{depends}"))?;
    let debs = dir.join("debs");
    let _ = fs::remove_dir_all(&debs);
    fs::create_dir_all(&debs)?;
    apt.run_in(&debs, "apt-get", &["download", &image, "busybox-static"])
        .map_err(|e| PackagesUnavailable(format!("apt-get download {image}: {e:#}")))?;
    let _ = fs::remove_dir_all(root);
    fs::create_dir_all(root)?;
    for deb in fs::read_dir(&debs)?.flatten() {
        let mut cmd = Command::new("dpkg-deb");
        cmd.arg("-x").arg(deb.path()).arg(root);
        run(&mut cmd)?;
    }
    Ok(())
}

/// `linux-image-6.12.95+deb12-amd64` from `apt-cache depends linux-image-amd64/...`.
fn real_image_package(depends: &str) -> Option<String> {
    depends
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .map(|p| p.trim_matches(|c| c == '<' || c == '>').to_string())
        .find(|p| p.starts_with("linux-image-"))
}

/// apt-get with private lists for the guest arch.
struct Apt {
    options: Vec<String>,
}

impl Apt {
    fn new(arch: Arch, dir: &Path) -> Result<Apt> {
        let sources = crate::setup::read_sources()
            .release_file(&SUITES)
            .context("no apt entry for bookworm in /etc/apt to copy a mirror from")
            .map_err(|e| PackagesUnavailable(format!("{e:#}")))?;
        for sub in [
            "state/lists/partial",
            "cache/archives/partial",
            "sources",
            "parts",
        ] {
            fs::create_dir_all(dir.join(sub))?;
        }
        fs::write(dir.join("sources/debian.sources"), sources)?;
        fs::write(dir.join("state/status"), "")?;
        let d = |p: &str| dir.join(p).display().to_string();
        let arch = debian_arch(arch);
        let options = [
            ("Dir::State", d("state")),
            ("Dir::State::status", d("state/status")),
            ("Dir::Cache", d("cache")),
            ("Dir::Etc::SourceList", "/dev/null".into()),
            ("Dir::Etc::SourceParts", d("sources")),
            ("Dir::Etc::Parts", d("parts")),
            ("Dir::Etc::Preferences", "/dev/null".into()),
            ("Dir::Etc::PreferencesParts", d("parts")),
            ("APT::Architecture", arch.into()),
            ("APT::Architectures", arch.into()),
            ("APT::Sandbox::User", "root".into()),
            ("Acquire::Languages", "none".into()),
            ("Debug::NoLocking", "1".into()),
        ];
        Ok(Apt {
            options: options
                .iter()
                .flat_map(|(k, v)| ["-o".to_string(), format!("{k}={v}")])
                .collect(),
        })
    }

    fn command(&self, tool: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(tool);
        cmd.args(&self.options).args(args);
        cmd
    }

    fn run(&self, tool: &str, args: &[&str]) -> Result<()> {
        run(&mut self.command(tool, args))
    }

    fn run_in(&self, dir: &Path, tool: &str, args: &[&str]) -> Result<()> {
        let mut cmd = self.command(tool, args);
        cmd.current_dir(dir);
        run(&mut cmd)
    }

    fn output(&self, tool: &str, args: &[&str]) -> Result<String> {
        let out = self
            .command(tool, args)
            .output()
            .with_context(|| format!("starting {tool}"))?;
        if !out.status.success() {
            bail!("{tool}: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

fn run(cmd: &mut Command) -> Result<()> {
    let line = qemu::cmdline::render(cmd);
    eprintln!("$ {line}");
    let out = cmd.output().with_context(|| format!("starting {line}"))?;
    if !out.status.success() {
        bail!(
            "{line}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The initramfs: busybox and its applet links, the modules (uncompressed) with a
/// modules.dep, the load order in /etc/modules, and /init.
fn initramfs(root: &Path, version: &str, selection: &Selection) -> Result<Vec<u8>> {
    let busybox = fs::read(root.join("bin/busybox")).context("reading busybox")?;
    let mut cpio = Cpio::new();
    for d in [
        "bin",
        "dev",
        "etc",
        "proc",
        "sys",
        "tmp",
        "lib",
        "lib/modules",
    ] {
        cpio.dir(d);
    }
    cpio.char_device("dev/console", 0o600, 5, 1);
    cpio.char_device("dev/null", 0o666, 1, 3);
    cpio.file("bin/busybox", 0o755, &busybox);
    // /init installs the other applet links itself (`busybox --install -s /bin`).
    cpio.symlink("bin/sh", "busybox");
    let base = format!("lib/modules/{version}");
    cpio.dir(&base);
    let mut dirs: Vec<String> = Vec::new();
    for m in &selection.load {
        let mut parent = String::new();
        for part in m
            .rel_path
            .split('/')
            .collect::<Vec<_>>()
            .split_last()
            .map_or(&[][..], |(_, d)| d)
        {
            parent = if parent.is_empty() {
                part.to_string()
            } else {
                format!("{parent}/{part}")
            };
            if !dirs.contains(&parent) {
                cpio.dir(&format!("{base}/{parent}"));
                dirs.push(parent.clone());
            }
        }
        cpio.file(&format!("{base}/{}", m.rel_path), 0o644, &m.elf);
    }
    cpio.file(
        &format!("{base}/modules.dep"),
        0o644,
        selection.modules_dep().as_bytes(),
    );
    let order: String = selection
        .load
        .iter()
        .map(|m| format!("{} {}\n", m.name, m.rel_path))
        .collect();
    cpio.file("etc/modules", 0o644, order.as_bytes());
    cpio.file(
        "etc/modules.builtin",
        0o644,
        selection.builtin.join("\n").as_bytes(),
    );
    cpio.file(
        "etc/modules.absent",
        0o644,
        selection.absent.join("\n").as_bytes(),
    );
    cpio.file("init", 0o755, INIT.as_bytes());
    Ok(cpio.finish())
}

/// The /init script.
pub const INIT: &str = include_str!("init.sh");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_real_image_package_is_the_metapackages_dependency() {
        let text = "linux-image-amd64\n  Depends: linux-image-6.12.95+deb12-amd64\n";
        assert_eq!(
            real_image_package(text).as_deref(),
            Some("linux-image-6.12.95+deb12-amd64")
        );
        assert_eq!(real_image_package("linux-image-amd64\n"), None);
    }

    #[test]
    fn init_installs_the_applets_before_using_them() {
        let install = INIT
            .find("busybox --install -s /bin")
            .expect("applet install");
        let first_mount = INIT.find("\nmount ").expect("mount");
        assert!(install < first_mount);
        assert!(INIT.starts_with("#!/bin/sh\n"));
    }
}
