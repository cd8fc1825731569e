//! `cargo xtask run` as a script uses it: console on stdin/stdout, and the process exits
//! with the kernel's `@@EXIT status=N` (x86_64's isa-debug-exit used to make it 33 after a
//! clean poweroff); a QEMU that ends without the sentinel (Ctrl-A x) exits 1 with a line.

use std::process::Command;
use std::time::Duration;

use anyhow::{Result, ensure};
use qemu::{Arch, Machine};
use tests::{BOOT_READY, PROMPT, selected};

/// `cargo xtask run --arch A` as a machine: the xtask binary, built first so it is current,
/// for the same profile (debug or release) as the kernels under test, so the shared ESP
/// keeps the kernel the other tests boot.
fn xtask_run(arch: Arch) -> Result<Machine> {
    let mut build = qemu::cargo::cargo_command();
    let status = build
        .args(["build", "--quiet", "--package", "xtask"])
        .status()?;
    ensure!(status.success(), "building xtask: {status}");
    let xtask = qemu::cargo::target_dir().join("debug/xtask");
    let release = tests::image(arch)?
        .kernel
        .components()
        .any(|c| c.as_os_str() == "release");
    let mut cmd = Command::new(xtask);
    cmd.args(["run", "--arch", arch.name()]);
    if release {
        cmd.arg("--release");
    }
    Machine::spawn_command(cmd, Duration::from_secs(900), false, None)
}

fn exit_status_of(arch: Arch, typed: &[u8], expected: i32) -> Result<()> {
    if !selected(arch) {
        eprintln!("skipped: {arch} not in HOTMEM_ARCHES");
        return Ok(());
    }
    let mut m = xtask_run(arch)?;
    m.expect(BOOT_READY, Duration::from_secs(600))?;
    m.expect(PROMPT, Duration::from_secs(30))?;
    m.send_bytes(typed)?;
    let _ = m.wait_exit(Duration::from_secs(60));
    ensure!(
        m.exit_code() == Some(expected),
        "xtask run exited {:?}, expected {expected}\n{}",
        m.exit_code(),
        m.stderr()
    );
    Ok(())
}

#[test]
fn x86_64_clean_poweroff_exits_0() -> Result<()> {
    exit_status_of(Arch::X86_64, b"poweroff\n", 0)
}

#[test]
fn aarch64_exit_3_exits_3() -> Result<()> {
    exit_status_of(Arch::Aarch64, b"exit 3\n", 3)
}

#[test]
fn s390x_exit_3_exits_3_and_no_sentinel_exits_1() -> Result<()> {
    exit_status_of(Arch::S390x, b"exit 3\n", 3)?;
    // Ctrl-A x: QEMU quits, the kernel never prints its sentinel.
    exit_status_of(Arch::S390x, b"\x01x", 1)
}
