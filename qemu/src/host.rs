//! What the host offers: which QEMU binary to run (with env overrides), its version,
//! whether it has the devices a profile needs, and where it looks for option ROMs.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::arch::Arch;

/// The oldest QEMU the profiles and the hotplug flows were checked against.
pub const MIN_QEMU: QemuVersion = QemuVersion {
    major: 10,
    minor: 0,
    micro: 0,
};

/// A QEMU release number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct QemuVersion {
    pub major: u32,
    pub minor: u32,
    pub micro: u32,
}

impl fmt::Display for QemuVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.micro)
    }
}

/// The QEMU binary for `arch`: `$QEMU_<ARCH>` (e.g. `QEMU_S390X`), else `$QEMU` (a binary,
/// or a directory holding `qemu-system-*`), else the default name looked up in `PATH`.
pub fn qemu_binary(arch: Arch) -> PathBuf {
    resolve_binary(arch, |key| std::env::var_os(key), |p| p.is_dir())
}

fn resolve_binary(
    arch: Arch,
    env: impl Fn(&str) -> Option<OsString>,
    is_dir: impl Fn(&Path) -> bool,
) -> PathBuf {
    let specific = format!("QEMU_{}", arch.name().to_uppercase());
    if let Some(path) = env(&specific).filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    match env("QEMU").filter(|p| !p.is_empty()).map(PathBuf::from) {
        Some(dir) if is_dir(&dir) => dir.join(arch.qemu_binary_name()),
        Some(binary) => binary,
        None => PathBuf::from(arch.qemu_binary_name()),
    }
}

/// Runs `qemu-system-<arch> --version` and parses the release number.
pub fn qemu_version(arch: Arch) -> Result<QemuVersion> {
    let out = output(Command::new(qemu_binary(arch)).arg("--version"))?;
    parse_version(&out).with_context(|| format!("unexpected `--version` output: {out:?}"))
}

/// Whether `-device help` lists a device named `name`.
pub fn has_device(arch: Arch, name: &str) -> Result<bool> {
    let out = output(Command::new(qemu_binary(arch)).args(["-device", "help"]))?;
    Ok(device_listed(&out, name))
}

/// The directories QEMU searches for firmware and option ROMs (`-L help`).
pub fn data_dirs(arch: Arch) -> Result<Vec<PathBuf>> {
    let out = output(Command::new(qemu_binary(arch)).args(["-L", "help"]))?;
    Ok(out
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(PathBuf::from)
        .collect())
}

fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {:?}", cmd.get_program()))?;
    if !out.status.success() {
        bail!(
            "{} exited with {}: {}",
            crate::cmdline::render(cmd),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Parses `QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2...)`.
pub fn parse_version(text: &str) -> Option<QemuVersion> {
    let rest = text.split("version").nth(1)?.trim_start();
    let word = rest
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .next()?;
    let mut parts = word.split('.').map(str::parse::<u32>);
    let major = parts.next()?.ok()?;
    let minor = parts.next().unwrap_or(Ok(0)).ok()?;
    let micro = parts.next().unwrap_or(Ok(0)).ok()?;
    Some(QemuVersion {
        major,
        minor,
        micro,
    })
}

/// Whether a `-device help` listing contains `name "<name>"`.
pub fn device_listed(help: &str, name: &str) -> bool {
    let needle = format!("name \"{name}\"");
    help.lines().any(|l| {
        l.trim_start()
            .strip_prefix(&needle)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(','))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_debian_version_line() {
        let v = parse_version(
            "QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2+deb13u1~bpo12+1)\n\
             Copyright (c) 2003-2025 Fabrice Bellard and the QEMU Project developers\n",
        )
        .unwrap();
        assert_eq!(v.to_string(), "10.0.2");
        assert!(v >= MIN_QEMU);
    }

    #[test]
    fn parses_short_and_old_versions() {
        let v = parse_version("QEMU emulator version 7.2\n").unwrap();
        assert_eq!((v.major, v.minor, v.micro), (7, 2, 0));
        assert!(v < MIN_QEMU);
        let v = parse_version("QEMU emulator version 10.1.0-rc2").unwrap();
        assert_eq!(v.to_string(), "10.1.0");
        assert!(parse_version("no numbers here").is_none());
    }

    #[test]
    fn env_overrides_pick_the_binary() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |key: &str| {
                vars.iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, v)| OsString::from(v))
            }
        };
        let never_dir = |_: &Path| false;
        let resolve =
            |vars, dir: &dyn Fn(&Path) -> bool| resolve_binary(Arch::S390x, env(vars), dir);
        assert_eq!(resolve(&[], &never_dir), Path::new("qemu-system-s390x"));
        assert_eq!(
            resolve(&[("QEMU", "/q/bin/qemu")], &never_dir),
            Path::new("/q/bin/qemu")
        );
        assert_eq!(
            resolve(&[("QEMU", "/q/bin")], &|p: &Path| p == Path::new("/q/bin")),
            Path::new("/q/bin/qemu-system-s390x")
        );
        let both = &[("QEMU", "/q/bin/qemu"), ("QEMU_S390X", "/s/qemu-s390x")];
        assert_eq!(resolve(both, &never_dir), Path::new("/s/qemu-s390x"));
    }

    #[test]
    fn finds_devices_in_help_output() {
        let help = "Storage devices:\nname \"nvdimm\", desc \"DIMM memory module\"\n\
                    name \"virtio-mem-ccw\", bus virtual-css-bus\n\
                    name \"sclpconsole\", bus s390-sclp-events-bus\n";
        assert!(device_listed(help, "virtio-mem-ccw"));
        assert!(device_listed(help, "sclpconsole"));
        assert!(device_listed(help, "nvdimm"));
        assert!(!device_listed(help, "virtio-mem"));
        assert!(!device_listed(help, "pc-dimm"));
    }
}
