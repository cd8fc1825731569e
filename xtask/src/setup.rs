//! Prerequisites of `run` and `test`: the pinned kernel toolchain ([`crate::toolchain`]),
//! QEMU >= 10 with the devices and option ROMs each arch needs, and UEFI firmware for the UEFI ports. When
//! QEMU or firmware is missing, root on Debian 12 gets it from bookworm-backports; everybody
//! else gets the exact commands to run.

use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use qemu::Arch;
use qemu::arch::BootKind;
use qemu::host::{MIN_QEMU, data_dirs, has_device, qemu_version};
use qemu::profile::find_firmware;

use crate::apt::{BACKPORTS_FILE, Sources};

/// One thing a run needs from the host.
pub struct Check {
    pub what: String,
    /// `None` when satisfied, else why not.
    pub problem: Option<String>,
    /// Debian package that fixes it.
    pub package: &'static str,
}

/// Devices each arch's profiles and hotplug tests use.
pub fn required_devices(arch: Arch) -> &'static [&'static str] {
    match arch {
        Arch::S390x => &["virtio-mem-ccw", "sclpconsole"],
        Arch::X86_64 => &["pc-dimm", "nvdimm", "virtio-mem-pci", "isa-debug-exit"],
        Arch::Aarch64 => &["virtio-mem-pci"],
    }
}

/// The option ROMs a run of `arch` loads from QEMU's data directories: `--boot direct` on
/// x86_64 enters the kernel's PVH note through `pvh.bin`.
pub fn required_option_roms(arch: Arch) -> &'static [&'static str] {
    match arch {
        Arch::X86_64 => &["pvh.bin"],
        Arch::Aarch64 | Arch::S390x => &[],
    }
}

/// Every host check for `arch`: QEMU version, devices, option ROMs, firmware.
pub fn checks(arch: Arch) -> Vec<Check> {
    let package = arch.qemu_package();
    let mut out = Vec::new();
    let version = qemu_version(arch);
    let problem = match &version {
        Ok(v) if *v >= MIN_QEMU => None,
        Ok(v) => Some(format!("version {v} < {MIN_QEMU}")),
        Err(e) => Some(format!("{e:#}")),
    };
    let found = version
        .as_ref()
        .map(|v| format!(" ({v})"))
        .unwrap_or_default();
    out.push(Check {
        what: format!("{} >= {MIN_QEMU}{found}", arch.qemu_binary_name()),
        problem,
        package,
    });
    if version.is_ok() {
        for device in required_devices(arch) {
            let problem = match has_device(arch, device) {
                Ok(true) => None,
                Ok(false) => Some("not in `-device help`".to_string()),
                Err(e) => Some(format!("{e:#}")),
            };
            let what = format!("{} device {device}", arch.qemu_binary_name());
            out.push(Check {
                what,
                problem,
                package,
            });
        }
    }
    if version.is_ok() {
        for rom in required_option_roms(arch) {
            let problem = match data_dirs(arch) {
                Ok(dirs) if dirs.iter().any(|d| d.join(rom).is_file()) => None,
                Ok(dirs) => Some(format!(
                    "not in QEMU's data directories ({})",
                    dirs.iter()
                        .map(|d| d.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
                Err(e) => Some(format!("{e:#}")),
            };
            out.push(Check {
                what: format!("{} option ROM {rom}", arch.qemu_binary_name()),
                problem,
                package: "qemu-system-data",
            });
        }
    }
    if let BootKind::Uefi(loader) = arch.boot_kind() {
        let problem = match find_firmware(loader.firmware) {
            Some(_) => None,
            None => Some(format!("none of {}", loader.firmware.join(", "))),
        };
        let what = format!("{arch} UEFI firmware");
        out.push(Check {
            what,
            problem,
            package: loader.firmware_package,
        });
    }
    out
}

/// Makes sure `arches` can be built and run: the pinned kernel toolchain (installed with
/// rustup), then QEMU and firmware ([`ensure_host`]).
pub fn ensure(arches: &[Arch]) -> Result<()> {
    crate::toolchain::ensure()?;
    ensure_host(arches)
}

/// Makes sure QEMU and the firmware for `arches` are there, installing from
/// bookworm-backports when allowed to.
pub fn ensure_host(arches: &[Arch]) -> Result<()> {
    let missing = missing_packages(arches);
    if missing.is_empty() {
        return Ok(());
    }
    let packages = all_packages();
    let commands = install_commands(&packages);
    if !(is_root() && is_bookworm()) {
        eprintln!("Missing: {}. Install with:", missing.join(" "));
        for cmd in &commands {
            eprintln!("    {cmd}");
        }
        bail!("host prerequisites missing (see `cargo xtask doctor`)");
    }
    eprintln!(
        "xtask: missing {}; installing from bookworm-backports",
        missing.join(" ")
    );
    add_backports()?;
    run_logged(Command::new("apt-get").arg("update"))?;
    let mut install = Command::new("apt-get");
    install.args([
        "install",
        "-y",
        "--no-install-recommends",
        "-t",
        "bookworm-backports",
    ]);
    install
        .args(&packages)
        .env("DEBIAN_FRONTEND", "noninteractive");
    run_logged(&mut install)?;
    let still = missing_packages(arches);
    if !still.is_empty() {
        bail!("still missing after installing: {}", still.join(" "));
    }
    Ok(())
}

/// Everything any arch needs, so one install readies all ports.
fn all_packages() -> Vec<&'static str> {
    let mut packages: Vec<&str> = Arch::ALL.iter().map(|a| a.qemu_package()).collect();
    for arch in Arch::ALL {
        if let BootKind::Uefi(loader) = arch.boot_kind() {
            packages.push(loader.firmware_package);
        }
    }
    packages.dedup();
    packages
}

/// The packages whose checks fail, deduplicated.
fn missing_packages(arches: &[Arch]) -> Vec<&'static str> {
    let mut packages = Vec::new();
    for check in arches.iter().flat_map(|&a| checks(a)) {
        if check.problem.is_some() && !packages.contains(&check.package) {
            packages.push(check.package);
        }
    }
    packages
}

/// What a person runs (as root) to get `packages` on Debian 12: the backports entry (derived
/// from this machine's sources, unless already there), `apt-get update`, the install.
pub fn install_commands(packages: &[&str]) -> Vec<String> {
    let sources = read_sources();
    let mut commands = Vec::new();
    if !sources.has_backports() {
        commands.push(match sources.backports_file() {
            Some(text) => format!("cat > {BACKPORTS_FILE} <<'EOF'\n{text}EOF"),
            None => format!("# add a bookworm-backports entry for your mirror to {BACKPORTS_FILE}"),
        });
    }
    commands.push("apt-get update".to_string());
    commands.push(format!(
        "apt-get install -y --no-install-recommends -t bookworm-backports {}",
        packages.join(" ")
    ));
    commands
}

/// Writes [`BACKPORTS_FILE`] unless some source already has the suite.
fn add_backports() -> Result<()> {
    let sources = read_sources();
    if sources.has_backports() {
        return Ok(());
    }
    let text = sources
        .backports_file()
        .context("no apt entry for bookworm to copy a mirror from")?;
    fs::write(BACKPORTS_FILE, text).with_context(|| format!("writing {BACKPORTS_FILE}"))?;
    eprintln!("xtask: wrote {BACKPORTS_FILE}");
    Ok(())
}

pub(crate) fn read_sources() -> Sources {
    let mut sources = Sources::default();
    let mut add = |path: &Path| {
        let Ok(text) = fs::read_to_string(path) else {
            return;
        };
        let name = path.display().to_string();
        match path.extension().and_then(|e| e.to_str()) {
            Some("sources") => sources.deb822.push((name, text)),
            _ => sources.one_line.push((name, text)),
        }
    };
    add(Path::new("/etc/apt/sources.list"));
    if let Ok(dir) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut paths: Vec<_> = dir.flatten().map(|e| e.path()).collect();
        paths.sort();
        for path in paths {
            let ext = path.extension().and_then(|e| e.to_str());
            if matches!(ext, Some("sources" | "list")) {
                add(&path);
            }
        }
    }
    sources
}

fn run_logged(cmd: &mut Command) -> Result<()> {
    let line = qemu::cmdline::render(cmd);
    eprintln!("$ {line}");
    let status = cmd.status().with_context(|| format!("starting {line}"))?;
    if !status.success() {
        bail!("{line} failed with {status}");
    }
    Ok(())
}

/// Effective uid 0, read from `/proc/self/status` (no libc needed).
pub fn is_root() -> bool {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        == Some("0")
}

/// Debian 12 by `/etc/os-release`.
pub fn is_bookworm() -> bool {
    let release = fs::read_to_string("/etc/os-release").unwrap_or_default();
    os_release_codename(&release).as_deref() == Some("bookworm")
}

fn os_release_codename(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|v| v.trim().trim_matches('"').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_codename() {
        let text = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nVERSION_CODENAME=bookworm\n";
        assert_eq!(os_release_codename(text).as_deref(), Some("bookworm"));
        assert_eq!(os_release_codename("ID=alpine\n"), None);
    }

    #[test]
    fn installs_qemu_and_firmware_for_every_arch() {
        let all = all_packages().join(" ");
        assert_eq!(
            all,
            "qemu-system-x86 qemu-system-arm qemu-system-s390x ovmf qemu-efi-aarch64"
        );
    }

    #[test]
    fn install_commands_use_backports() {
        let cmds = install_commands(&["qemu-system-s390x", "ovmf"]);
        let last = cmds.last().unwrap();
        assert!(last.ends_with("-t bookworm-backports qemu-system-s390x ovmf"));
    }
}
