//! Whether KVM really runs our guests: the probe, and the watch over a run that starts
//! under KVM.
//!
//! Opening `/dev/kvm` and starting QEMU proves little: some hosts accept both and then
//! abort while loading vCPU registers ("failed to set MSR 0x10a"), or stop the guest in
//! the firmware with `KVM internal error. Suberror: 1` (an emulation failure at an FPU
//! instruction). So the probe boots the real image (firmware, loader, kernel) under KVM to
//! the kernel's `boot: ready` line, and every run that starts under KVM is watched with the
//! same rules ([`judge`]) until the guest shows it is running; a failure there hands the run
//! to TCG. The verdicts are cached per machine ([`crate::kvm_cache`]).

use std::process::Command;
use std::thread;
use std::time::Duration;

use crate::console::SENTINEL;
use crate::kvm_cache::Verdict;
use crate::machine::Machine;

/// How long the probe may take to reach `boot: ready` (a working KVM needs a few seconds).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a run under KVM may go without output from the loader or the kernel before
/// its vCPU is taken as stuck.
pub const GRACE: Duration = Duration::from_secs(30);

/// The known point: the kernel's last boot record.
pub const KNOWN_POINT: &str = "boot: ready";

/// Where a launch under KVM stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Nothing decided yet.
    Wait,
    /// The kernel printed `boot: ready` or its exit sentinel.
    Reached,
    /// No known point yet, but the loader or kernel has printed and the grace time passed.
    Running,
    /// QEMU ended after the guest had printed (the run's own business).
    Exited,
    /// KVM failed; why, in one line.
    Failed(String),
}

/// Decides a launch under KVM from what it has shown so far: the console (ANSI-stripped),
/// QEMU's stderr, QEMU's exit (`Some(code)`, `Some(None)` for a signal) and the time since
/// it started.
pub fn judge(
    console: &str,
    stderr: &str,
    exit: Option<Option<i32>>,
    elapsed: Duration,
    grace: Duration,
) -> Progress {
    if let Some(why) = failure_in_stderr(stderr) {
        return Progress::Failed(why);
    }
    if console.contains(KNOWN_POINT) || console.contains(SENTINEL) {
        return Progress::Reached;
    }
    let printed = guest_printed(console);
    match exit {
        Some(_) if printed => Progress::Exited,
        Some(code) => Progress::Failed(format!(
            "QEMU ended ({}) before the loader or kernel printed anything{}",
            code.map_or_else(|| "killed by a signal".to_string(), |c| format!("exit {c}")),
            first_line(stderr).map_or_else(String::new, |l| format!(": {l}"))
        )),
        None if elapsed < grace => Progress::Wait,
        None if printed => Progress::Running,
        None => Progress::Failed(format!(
            "no output from the loader or kernel within {:.1} s",
            grace.as_secs_f64()
        )),
    }
}

/// The line that explains a KVM failure on QEMU's stderr, if it reports one: QEMU's own
/// `KVM internal error` / emulation-failure dump, a vCPU abort in the KVM code, `kvm run
/// failed`, or an error loading vCPU state (the first error line is the reason).
pub fn failure_in_stderr(stderr: &str) -> Option<String> {
    let says_kvm = stderr.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        !l.contains("warning:") && (l.contains("kvm") || l.contains("emulation failure"))
    });
    if !says_kvm {
        return None;
    }
    first_line(stderr)
}

/// The first stderr line that is not a warning, without QEMU's `qemu-system-*: ` prefix.
fn first_line(stderr: &str) -> Option<String> {
    stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.contains("warning:"))
        .map(|l| match l.split_once(": ") {
            Some((prog, rest)) if prog.starts_with("qemu-system-") => rest,
            _ => l,
        })
        .map(|l| l.strip_prefix("error: ").unwrap_or(l).to_string())
        .next()
}

/// Whether the console shows output from the loader or kernel, not only the firmware's
/// boot manager (`BdsDxe: loading Boot0001 ...` is OVMF's and AAVMF's).
pub fn guest_printed(console: &str) -> bool {
    console
        .lines()
        .map(str::trim)
        .any(|l| !l.is_empty() && !l.starts_with("BdsDxe:"))
}

/// Runs `kvm_command` (an image booting under KVM) until [`judge`] decides: reaching the
/// known point within `timeout` makes KVM usable, anything else is the reason it is not.
pub fn probe_command(kvm_command: Command, timeout: Duration) -> Verdict {
    let mut machine = match Machine::spawn_command(kvm_command, timeout * 2, false, None) {
        Ok(m) => m,
        Err(e) => return Verdict::Broken(format!("{e:#}")),
    };
    let verdict = loop {
        match machine.kvm_progress(timeout) {
            Progress::Wait => thread::sleep(Duration::from_millis(50)),
            Progress::Reached => break Verdict::Usable,
            Progress::Failed(why) => break Verdict::Broken(why),
            Progress::Running => {
                break Verdict::Broken(format!(
                    "no `{KNOWN_POINT}` within {} s under KVM",
                    timeout.as_secs()
                ));
            }
            Progress::Exited => {
                break Verdict::Broken(format!("QEMU ended before `{KNOWN_POINT}` under KVM"));
            }
        }
    };
    machine.kill();
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);
    const GRACE_1S: Duration = Duration::from_secs(1);

    #[test]
    fn an_emulation_failure_in_the_firmware_is_a_failure() {
        let stderr = "KVM internal error. Suberror: 1\nextra data[0]: 0x0000000000000001\n\
                      emulation failure\nRAX=0000000000000000 RBX=0000000000000000\n";
        assert_eq!(
            judge("", stderr, None, Duration::ZERO, GRACE_1S),
            Progress::Failed("KVM internal error. Suberror: 1".into())
        );
    }

    #[test]
    fn a_vcpu_register_abort_names_the_error_line() {
        let stderr = "qemu-system-x86_64: error: failed to set MSR 0x10a to 0xc000069\n\
                      qemu-system-x86_64: ../target/i386/kvm/kvm.c:3849: kvm_buf_set_msrs: \
                      Assertion `ret == cpu->kvm_msr_buf->nmsrs' failed.\n";
        assert_eq!(
            judge("", stderr, Some(None), S, GRACE_1S),
            Progress::Failed("failed to set MSR 0x10a to 0xc000069".into())
        );
    }

    #[test]
    fn warnings_are_not_failures() {
        let stderr = "qemu-system-x86_64: warning: host doesn't support requested feature: \
                      CPUID.01H:ECX.pni [bit 0]\n";
        assert_eq!(failure_in_stderr(stderr), None);
        assert_eq!(
            judge("", stderr, None, Duration::ZERO, GRACE_1S),
            Progress::Wait
        );
    }

    #[test]
    fn the_known_point_or_the_sentinel_is_reached() {
        let boot = "BdsDxe: loading Boot0001\nhotmem-boot 0.1.0\nboot: ready arch=x86_64\n";
        assert_eq!(judge(boot, "", None, S, GRACE_1S), Progress::Reached);
        assert_eq!(
            judge("@@EXIT status=1\n", "", Some(Some(3)), S, GRACE_1S),
            Progress::Reached
        );
    }

    #[test]
    fn a_vcpu_that_never_reaches_the_loader_fails_after_the_grace_time() {
        let firmware_only = "BdsDxe: loading Boot0001 \"UEFI Misc Device\"\n";
        assert_eq!(
            judge(firmware_only, "", None, S / 2, GRACE_1S),
            Progress::Wait
        );
        assert_eq!(
            judge(firmware_only, "", None, S * 2, GRACE_1S),
            Progress::Failed("no output from the loader or kernel within 1.0 s".into())
        );
        let loader = "BdsDxe: loading Boot0001\nhotmem-boot: entering /boot/kernel\n";
        assert_eq!(judge(loader, "", None, S * 2, GRACE_1S), Progress::Running);
    }

    #[test]
    fn an_early_exit_without_output_is_a_failure_and_with_output_is_not() {
        assert_eq!(
            judge(
                "",
                "qemu-system-x86_64: something broke\n",
                Some(Some(1)),
                S,
                GRACE_1S
            ),
            Progress::Failed(
                "QEMU ended (exit 1) before the loader or kernel printed anything: something broke"
                    .into()
            )
        );
        assert_eq!(
            judge(
                "[ 0.1] INFO kernel: panic\n",
                "",
                Some(Some(1)),
                S,
                GRACE_1S
            ),
            Progress::Exited
        );
    }

    /// A shell script standing in for QEMU under a broken KVM: the probe reads QEMU's
    /// error and says why, without waiting for the timeout.
    #[test]
    fn the_probe_reports_what_a_broken_kvm_printed() {
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "echo 'KVM internal error. Suberror: 1' >&2; echo 'emulation failure' >&2; exec sleep 30",
        ]);
        let start = std::time::Instant::now();
        let verdict = probe_command(cmd, Duration::from_secs(20));
        assert_eq!(
            verdict,
            Verdict::Broken("KVM internal error. Suberror: 1".into())
        );
        assert!(start.elapsed() < Duration::from_secs(10));
        let mut ok = Command::new("sh");
        ok.args([
            "-c",
            "echo hotmem-boot; echo 'boot: ready arch=x86_64'; exec sleep 30",
        ]);
        assert_eq!(probe_command(ok, Duration::from_secs(20)), Verdict::Usable);
        let mut silent = Command::new("sh");
        silent.args(["-c", "exec sleep 30"]);
        assert!(matches!(
            probe_command(silent, Duration::from_millis(500)),
            Verdict::Broken(why) if why.contains("no output")
        ));
    }
}
