//! Choosing the accelerator: KVM only for a guest of the host's ISA, and only when `/dev/kvm`
//! opens *and* a probe QEMU survives machine reset (some hosts expose a paravirtual KVM
//! that aborts on `-cpu host`, e.g. "failed to set MSR 0x10a"). Everything else is TCG.

use std::fmt;
use std::io::Write;
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::arch::Arch;
use crate::host::qemu_binary;

/// What the user asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AccelChoice {
    /// KVM when usable for this arch, else TCG.
    #[default]
    Auto,
    Kvm,
    Tcg,
}

/// What QEMU is told to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    /// The `-accel` value.
    pub fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

impl fmt::Display for Accel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for AccelChoice {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(AccelChoice::Auto),
            "kvm" => Ok(AccelChoice::Kvm),
            "tcg" => Ok(AccelChoice::Tcg),
            _ => bail!("unknown accelerator {s:?} (expected auto, kvm or tcg)"),
        }
    }
}

/// Resolves a choice for `arch`; an explicit `kvm` that cannot work is an error.
pub fn resolve(choice: AccelChoice, arch: Arch) -> Result<Accel> {
    match choice {
        AccelChoice::Tcg => Ok(Accel::Tcg),
        AccelChoice::Auto if kvm_usable(arch) => Ok(Accel::Kvm),
        AccelChoice::Auto => Ok(Accel::Tcg),
        AccelChoice::Kvm if kvm_usable(arch) => Ok(Accel::Kvm),
        AccelChoice::Kvm => bail!("KVM is not usable for {arch} here: {}", kvm_status(arch)),
    }
}

/// Whether KVM can run an `arch` guest on this host (probed once per process).
pub fn kvm_usable(arch: Arch) -> bool {
    arch.is_host_arch() && kvm_probe(arch).is_ok()
}

/// A one-line explanation of [`kvm_usable`], for `doctor` and error messages.
pub fn kvm_status(arch: Arch) -> String {
    if !arch.is_host_arch() {
        return format!("{arch} is not the host ISA ({})", std::env::consts::ARCH);
    }
    match kvm_probe(arch) {
        Ok(()) => "usable".to_string(),
        Err(why) => why.clone(),
    }
}

/// Only ever called for the host's own arch, so one cached answer serves.
fn kvm_probe(arch: Arch) -> &'static Result<(), String> {
    static PROBE: OnceLock<Result<(), String>> = OnceLock::new();
    PROBE.get_or_init(|| {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .map_err(|e| format!("/dev/kvm: {e}"))?;
        probe_qemu(arch, Duration::from_secs(5))
    })
}

/// Starts a `-cpu host` machine with KVM, lets it reach the main loop, and quits over QMP on
/// stdio. A working KVM exits 0; a broken one aborts while loading vCPU registers.
fn probe_qemu(arch: Arch, timeout: Duration) -> Result<(), String> {
    let machine = match arch {
        Arch::X86_64 => "pc",
        Arch::Aarch64 => "virt",
        Arch::S390x => "s390-ccw-virtio",
    };
    let mut child = Command::new(qemu_binary(arch))
        .args([
            "-machine", machine, "-accel", "kvm", "-cpu", "host", "-m", "64M",
        ])
        .args([
            "-display",
            "none",
            "-nodefaults",
            "-no-reboot",
            "-qmp",
            "stdio",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", qemu_binary(arch).display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        let quit = "{\"execute\":\"qmp_capabilities\"}\n{\"execute\":\"quit\"}\n";
        // A write error means QEMU already died; its status says why.
        let _ = stdin.write_all(quit.as_bytes());
    }
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() < timeout => thread::sleep(Duration::from_millis(20)),
            Ok(None) | Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err("KVM probe did not finish within 5 s".to_string());
            }
        }
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
    }
    if status.success() {
        return Ok(());
    }
    let first = stderr.lines().next().unwrap_or("no message").trim();
    Err(format!("KVM probe failed ({status}): {first}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcg_is_always_available_and_foreign_isas_never_get_kvm() {
        assert_eq!(resolve(AccelChoice::Tcg, Arch::X86_64).unwrap(), Accel::Tcg);
        assert_eq!(resolve(AccelChoice::Auto, Arch::S390x).unwrap(), Accel::Tcg);
        assert!(resolve(AccelChoice::Kvm, Arch::S390x).is_err());
        assert!(kvm_status(Arch::S390x).contains("not the host ISA"));
    }

    #[test]
    fn parses_choices() {
        assert_eq!("auto".parse::<AccelChoice>().unwrap(), AccelChoice::Auto);
        assert_eq!("kvm".parse::<AccelChoice>().unwrap(), AccelChoice::Kvm);
        assert!("hvf".parse::<AccelChoice>().is_err());
    }
}
