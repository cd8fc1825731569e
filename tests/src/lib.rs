//! Shared helpers for the QEMU integration tests: which arches to test, where their kernels
//! are, booting a machine to the shell prompt, and reading the console's `key=value` lines.
//!
//! `cargo xtask test` passes the kernels in `HOTMEM_KERNEL_<ARCH>` and the arches in
//! `HOTMEM_ARCHES`; run alone (`cargo test -p tests`), the kernels are built here with the
//! same function xtask uses.

pub mod compare;
pub mod hostile;
pub mod hotplug;
pub mod regions;
pub mod trace;
pub mod virtio_mem;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use qemu::accel::{self, AccelChoice};
use qemu::arch::{BootKind, BootPath};
use qemu::{Arch, BootImage, Machine, Profile, RunOptions};

/// The shell prompt (printed without a newline).
pub const PROMPT: &str = "hotmem> ";
/// The line prefix that ends the boot.
pub const BOOT_READY: &str = "boot: ready";
/// How long a TCG boot may take to reach the prompt.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one shell command may take.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether `arch` is to be tested: everything, unless `HOTMEM_ARCHES` lists a subset.
pub fn selected(arch: Arch) -> bool {
    match std::env::var("HOTMEM_ARCHES") {
        Ok(list) => list.split(',').any(|a| a.trim() == arch.name()),
        Err(_) => true,
    }
}

/// For a test's first line: `true` (and a note on stderr) when `arch` is not among the
/// arches to test, so the test returns at once.
pub fn skipped(arch: Arch) -> bool {
    if selected(arch) {
        return false;
    }
    eprintln!("skipped: {arch} not in HOTMEM_ARCHES");
    true
}

/// The boot path of every test that does not test the loader or the firmware's ACPI:
/// `HOTMEM_BOOT` (`cargo xtask test --boot limine|direct`) where the arch has it, else
/// direct (QEMU `-kernel`, no firmware: a second or less to the prompt under TCG).
pub fn default_boot(arch: Arch) -> BootPath {
    let wanted = std::env::var("HOTMEM_BOOT")
        .ok()
        .and_then(|b| b.parse::<BootPath>().ok());
    match wanted {
        Some(boot) if arch.boot_paths().contains(&boot) => boot,
        _ => BootPath::Direct,
    }
}

/// `arch`'s default machine, entered by [`default_boot`].
pub fn profile(arch: Arch) -> Profile {
    Profile::new(arch).with_boot(default_boot(arch))
}

/// `arch`'s default machine through UEFI firmware and the Limine-protocol loader, for the
/// tests of the loader, its memory map, and what needs firmware (ACPI tables installed
/// by firmware; on aarch64 the GED behind pc-dimm and NVDIMM hotplug).
pub fn limine_profile(arch: Arch) -> Profile {
    Profile::new(arch).with_boot(BootPath::Limine)
}

/// The kernel of `arch`: `$HOTMEM_KERNEL_<ARCH>`, else built once per test process.
pub fn image(arch: Arch) -> Result<BootImage> {
    static BUILT: OnceLock<Mutex<HashMap<Arch, BootImage>>> = OnceLock::new();
    if let Some(path) = std::env::var_os(arch.kernel_env_var()) {
        let kernel = PathBuf::from(path);
        if !kernel.is_file() {
            bail!("{} points to a missing file", arch.kernel_env_var());
        }
        let esp = match arch.boot_kind() {
            BootKind::Uefi(_) => Some(qemu::cargo::target_dir().join("esp").join(arch.name())),
            BootKind::DirectKernel => None,
        };
        let loader = None;
        return Ok(BootImage {
            arch,
            kernel,
            esp,
            loader,
        });
    }
    let mut built = BUILT
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(image) = built.get(&arch) {
        return Ok(image.clone());
    }
    let image = qemu::build(arch, false).with_context(|| format!("building the {arch} kernel"))?;
    built.insert(arch, image.clone());
    Ok(image)
}

/// Starts `profile`'s machine with the kernel command line `append`, killed after `timeout`.
pub fn boot(profile: &Profile, append: &str, timeout: Duration) -> Result<Machine> {
    let mut opts = RunOptions::new(image(profile.arch)?);
    opts.append = Some(append.to_string()).filter(|a| !a.is_empty());
    opts.accel = accel::resolve(AccelChoice::Auto, &opts.image)?;
    opts.timeout = timeout;
    opts.qmp = Some(qemu::machine::temp_qmp_path(profile.arch.name()));
    Machine::spawn(profile, &opts)
}

/// [`boot`], then waits for `boot: ready` and the first prompt.
pub fn boot_to_prompt(profile: &Profile, append: &str, timeout: Duration) -> Result<Machine> {
    let mut machine = boot(profile, append, timeout)?;
    machine.expect(BOOT_READY, BOOT_TIMEOUT)?;
    machine.expect(PROMPT, COMMAND_TIMEOUT)?;
    Ok(machine)
}

/// Runs one shell command and returns its output (prompt removed).
pub fn shell(machine: &mut Machine, command: &str) -> Result<String> {
    machine.run_command(command, PROMPT, COMMAND_TIMEOUT)
}

/// The first line of `output` that starts with `prefix`.
pub fn line<'a>(output: &'a str, prefix: &str) -> Result<&'a str> {
    output
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(prefix))
        .with_context(|| format!("no line starting with {prefix:?} in:\n{output}"))
}

/// The `key=value` fields of a console record (words without `=` are skipped).
pub fn fields(line: &str) -> HashMap<&str, &str> {
    line.split_whitespace()
        .filter_map(|w| w.split_once('='))
        .collect()
}

/// A numeric field, decimal or `0x` hexadecimal.
pub fn number(fields: &HashMap<&str, &str>, key: &str) -> Result<u64> {
    let text = fields
        .get(key)
        .with_context(|| format!("no field {key} in {fields:?}"))?;
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    parsed.with_context(|| format!("{key}={text} is not a number"))
}

/// Rounds `value` up to a multiple of the power of two `align`.
pub const fn align_up(value: u64, align: u64) -> u64 {
    (value + align - 1) & !(align - 1)
}

/// Boots with `append` (which must include `selftest=faultsweep` and a `mem=` limit) and
/// checks the in-kernel fault sweep: every kind swept with zero drift, `result=pass`, at
/// least one injected failure of `must_fail` (the leaf kind this arch's add takes), and
/// heap failures through the whole hot-add path, each refused with nothing changed.
pub fn check_fault_sweep(profile: &Profile, append: &str, must_fail: &str) -> Result<()> {
    let mut m = boot(profile, append, Duration::from_secs(600))?;
    let outcome = m.wait_exit(Duration::from_secs(590));
    let console = m.console();
    anyhow::ensure!(
        outcome == qemu::Outcome::Pass,
        "sweep ended {outcome:?}:\n{console}"
    );
    let done = fields(line(&console, "faultsweep: done ")?);
    anyhow::ensure!(done.get("result") == Some(&"pass"), "{console}");
    for kind in ["altmap-leaf", "ram-leaf", "page-table", "buddy", "heap"] {
        let rec = fields(line(&console, &format!("faultsweep: kind={kind} "))?);
        anyhow::ensure!(number(&rec, "drift")? == 0, "{kind} drifted:\n{console}");
    }
    for kind in [must_fail, "heap"] {
        let rec = fields(line(&console, &format!("faultsweep: kind={kind} "))?);
        anyhow::ensure!(
            number(&rec, "failures")? > 0,
            "no {kind} failure was injected:\n{console}"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_records() {
        let out = "mem\nmem.region start=0x0 end=0x1fffffff kind=usable\n\
                   mem.total usable=536870912 reserved=0 max_phys=0x9fffffff\n";
        let f = fields(line(out, "mem.total ").unwrap());
        assert_eq!(number(&f, "usable").unwrap(), 512 << 20);
        assert_eq!(number(&f, "max_phys").unwrap(), 0x9fff_ffff);
        assert!(number(&f, "hotplug.start").is_err());
        assert!(line(out, "cpu ").is_err());
    }

    #[test]
    fn aligns_up() {
        assert_eq!(align_up(512 << 20, 1 << 30), 1 << 30);
        assert_eq!(align_up(1 << 30, 1 << 30), 1 << 30);
    }
}
