//! A KVM that opens but cannot run the guest never fails a run: with a fault injected into
//! QEMU (a wrapper that, under `-accel kvm`, prints QEMU's `KVM internal error` and hangs
//! as a paused vCPU does, and otherwise runs the real QEMU), the probe names the reason
//! without waiting for its timeout, and a machine started under KVM is handed to TCG and
//! boots to the prompt. No `/dev/kvm` is needed, and the per-machine cache is not touched.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use qemu::kvm::{self, Progress};
use qemu::kvm_cache::Verdict;
use qemu::profile::command;
use qemu::{Accel, Arch, Machine, Outcome, Profile, RunOptions};
use tests::{BOOT_READY, BOOT_TIMEOUT, COMMAND_TIMEOUT, PROMPT, selected};

const INJECTED: &str = "KVM internal error. Suberror: 1";

/// The injecting wrapper around the real QEMU of `arch`.
fn wrapper(arch: Arch) -> Result<PathBuf> {
    let real = qemu::host::qemu_binary(arch);
    let dir = std::env::temp_dir().join(format!("hotmem-kvm-fault-{}", std::process::id()));
    fs::create_dir_all(&dir)?;
    let path = dir.join(arch.qemu_binary_name());
    let script = format!(
        "#!/bin/sh\ncase \" $* \" in *\" -accel kvm \"*)\n  \
         echo '{INJECTED}' >&2; echo 'emulation failure' >&2; exec sleep 120;;\nesac\n\
         exec '{}' \"$@\"\n",
        real.display()
    );
    fs::write(&path, script)?;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755))?;
    Ok(path)
}

/// `real` with its program replaced by `program`.
fn through(program: &Path, real: &Command) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(real.get_args());
    cmd
}

#[test]
fn a_kvm_that_cannot_run_the_guest_hands_the_run_to_tcg() -> Result<()> {
    let Some(arch) = [Arch::S390x, Arch::X86_64, Arch::Aarch64]
        .into_iter()
        .find(|&a| selected(a))
    else {
        eprintln!("skipped: no arch in HOTMEM_ARCHES");
        return Ok(());
    };
    let profile = Profile::new(arch);
    let mut opts = RunOptions::new(tests::image(arch)?);
    opts.accel = Accel::Kvm;
    opts.timeout = Duration::from_secs(120);
    qemu::limine_conf::prepare(&opts)?;
    let kvm_command = command(&profile, &opts)?;
    let fake = wrapper(arch)?;

    // The probe reads the failure and says why at once.
    let start = Instant::now();
    let verdict = kvm::probe_command(through(&fake, &kvm_command), kvm::PROBE_TIMEOUT);
    ensure!(verdict == Verdict::Broken(INJECTED.into()), "{verdict:?}");
    ensure!(
        start.elapsed() < Duration::from_secs(15),
        "{:?}",
        start.elapsed()
    );

    // A machine started under KVM goes on under TCG.
    let started = Machine::spawn_command(through(&fake, &kvm_command), opts.timeout, false, None)?;
    let mut reason = String::new();
    let mut m = started.unless_kvm_fails(kvm::GRACE, |why| {
        reason = why.to_string();
        let mut tcg = opts.clone();
        tcg.accel = Accel::Tcg;
        Machine::spawn_command(command(&profile, &tcg)?, tcg.timeout, false, None)
    })?;
    ensure!(reason == INJECTED, "fell back for {reason:?}");
    ensure!(
        m.command_line().contains("-accel tcg"),
        "{}",
        m.command_line()
    );
    m.expect(BOOT_READY, BOOT_TIMEOUT * 2)?;
    m.expect(PROMPT, COMMAND_TIMEOUT)?;
    ensure!(
        m.kvm_progress(kvm::GRACE) == Progress::Reached,
        "the TCG run reached the known point"
    );
    m.send_line("poweroff")?;
    let outcome = m.wait_exit(Duration::from_secs(30));
    let _ = fs::remove_dir_all(fake.parent().unwrap_or(&fake));
    qemu::machine::ensure_outcome(&m, outcome, Outcome::Pass)
}
