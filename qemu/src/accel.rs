//! Choosing the accelerator. `auto` takes KVM only for a guest of the host's ISA, only when
//! `/dev/kvm` opens, and only when the probe ([`crate::kvm`]) booted the real image under
//! KVM to `boot: ready` on this machine (cached, [`crate::kvm_cache`]); otherwise TCG, with
//! one line saying why. A run that starts under KVM and fails anyway falls back to TCG too
//! (see [`crate::Machine::spawn`]), and the cache learns it. `kvm` is taken as asked: no
//! probe and no fallback, so what KVM does can be seen.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Mutex;

use anyhow::{Result, bail};

use crate::arch::{Arch, BootKind};
use crate::cargo::BootImage;
use crate::host::qemu_binary;
use crate::kvm;
use crate::kvm_cache::{self, Verdict};
use crate::profile::{Profile, RunOptions, command, find_firmware};

/// What the user asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AccelChoice {
    /// KVM when the probe says it runs this arch's guests here, else TCG.
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

/// Resolves a choice for booting `image`; an explicit `kvm` that cannot even open
/// `/dev/kvm` is an error, `auto` never is.
pub fn resolve(choice: AccelChoice, image: &BootImage) -> Result<Accel> {
    let arch = image.arch;
    match choice {
        AccelChoice::Tcg => Ok(Accel::Tcg),
        AccelChoice::Kvm => match kvm_device(arch) {
            Ok(()) => Ok(Accel::Kvm),
            Err(why) => bail!("KVM is not usable for {arch} here: {why}"),
        },
        // Another ISA never runs under KVM: nothing to say.
        AccelChoice::Auto if !arch.is_host_arch() => Ok(Accel::Tcg),
        AccelChoice::Auto => Ok(match verdict(image) {
            Verdict::Usable => Accel::Kvm,
            Verdict::Broken(why) => {
                say_once(arch, &format!("accel: TCG for {arch}: {why}"));
                Accel::Tcg
            }
        }),
    }
}

/// Whether KVM runs `image`'s guest here: the host-ISA and `/dev/kvm` checks, then the
/// cached verdict, else the probe (whose verdict is cached).
pub fn verdict(image: &BootImage) -> Verdict {
    let arch = image.arch;
    if let Err(why) = kvm_device(arch) {
        return Verdict::Broken(why);
    }
    let key = cache_key(arch);
    if let Some(cached) = kvm_cache::load(arch, &key) {
        return cached.verdict;
    }
    eprintln!(
        "accel: probing KVM for {arch} (boots the kernel under KVM to `{}`, once per machine)",
        kvm::KNOWN_POINT
    );
    let verdict = probe(image);
    kvm_cache::store(arch, &key, &verdict);
    verdict
}

/// Boots `image` in its arch's default machine under KVM (see [`kvm::probe_command`]).
pub fn probe(image: &BootImage) -> Verdict {
    let mut opts = RunOptions::new(image.clone());
    opts.accel = Accel::Kvm;
    opts.echo = false;
    match command(&Profile::new(image.arch), &opts) {
        Ok(cmd) => kvm::probe_command(cmd, kvm::PROBE_TIMEOUT),
        Err(e) => Verdict::Broken(format!("{e:#}")),
    }
}

/// Records a KVM failure seen at run time (the next runs take TCG without trying) and says
/// so in one line.
pub fn kvm_failed_at_run_time(arch: Arch, why: &str) {
    eprintln!("accel: KVM failed for {arch} ({why}); falling back to TCG");
    kvm_cache::store(arch, &cache_key(arch), &Verdict::Broken(why.to_string()));
    say_once(arch, ""); // the fallback line was the one line for this process
}

/// A one-line account for `doctor`: the device checks, then what the probe saw (cached),
/// probing now when `image` is given and nothing is cached.
pub fn kvm_status(arch: Arch, image: Option<&BootImage>) -> String {
    if let Err(why) = kvm_device(arch) {
        return why;
    }
    let file = kvm_cache::file(arch).map_or_else(|| "-".into(), |f| f.display().to_string());
    let cached = kvm_cache::load(arch, &cache_key(arch));
    let (verdict, how) = match (cached, image) {
        (Some(c), _) => (c.verdict, format!("cached {} s ago in {file}", age(c.when))),
        (None, Some(image)) => (verdict(image), format!("probed now, cached in {file}")),
        (None, None) => {
            return "not probed yet: the first `cargo xtask run` or `test` of this arch \
                    boots it under KVM once"
                .to_string();
        }
    };
    match verdict {
        Verdict::Usable => format!("usable: the probe reached `{}` ({how})", kvm::KNOWN_POINT),
        Verdict::Broken(why) => format!("not used: {why} ({how})"),
    }
}

/// The cache key of `arch`: its QEMU binary and firmware on this host.
pub fn cache_key(arch: Arch) -> String {
    let firmware: Option<PathBuf> = match arch.boot_kind() {
        BootKind::Uefi(loader) => find_firmware(loader.firmware),
        BootKind::DirectKernel => None,
    };
    kvm_cache::key(&qemu_binary(arch), firmware.as_deref())
}

/// Host ISA and `/dev/kvm` (read-write), the checks that need no guest.
fn kvm_device(arch: Arch) -> Result<(), String> {
    if !arch.is_host_arch() {
        return Err(format!(
            "{arch} is not the host ISA ({})",
            std::env::consts::ARCH
        ));
    }
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map(drop)
        .map_err(|e| format!("/dev/kvm: {e}"))
}

/// Prints `line` the first time per process and arch (an empty line only marks it said).
fn say_once(arch: Arch, line: &str) {
    static SAID: Mutex<Vec<Arch>> = Mutex::new(Vec::new());
    let mut said = SAID.lock().unwrap_or_else(|p| p.into_inner());
    if !said.contains(&arch) {
        said.push(arch);
        if !line.is_empty() {
            eprintln!("{line}");
        }
    }
}

fn age(when: u64) -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    now.saturating_sub(when)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(arch: Arch) -> BootImage {
        BootImage {
            arch,
            kernel: PathBuf::from("/k/kernel"),
            esp: None,
            loader: None,
        }
    }

    #[test]
    fn tcg_is_always_available_and_foreign_isas_never_get_kvm() {
        let s390x = image(Arch::S390x);
        assert_eq!(resolve(AccelChoice::Tcg, &s390x).unwrap(), Accel::Tcg);
        assert_eq!(resolve(AccelChoice::Auto, &s390x).unwrap(), Accel::Tcg);
        assert!(resolve(AccelChoice::Kvm, &s390x).is_err());
        assert!(kvm_status(Arch::S390x, None).contains("not the host ISA"));
    }

    #[test]
    fn parses_choices() {
        assert_eq!("auto".parse::<AccelChoice>().unwrap(), AccelChoice::Auto);
        assert_eq!("kvm".parse::<AccelChoice>().unwrap(), AccelChoice::Kvm);
        assert!("hvf".parse::<AccelChoice>().is_err());
    }
}
