//! `run` and `gdb`: build, then QEMU on the terminal (console muxed with the HMP monitor,
//! QMP on a socket, the console also logged to `target/qemu/<arch>.console.log`).
//!
//! QEMU runs as a child with the terminal as its console; its stderr passes through this
//! process, which watches a KVM start with [`qemu::kvm::judge`] and, when KVM fails before
//! the guest runs, quits that QEMU over QMP and starts the same machine under TCG (one line
//! says why). When QEMU ends, the exit status is the kernel's: the `@@EXIT status=N` line of
//! the console log; without one, a line says so and the status is 1.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use qemu::accel::{self, Accel, AccelChoice};
use qemu::arch::BootPath;
use qemu::console::{parse_sentinel, strip};
use qemu::kvm::{self, Progress};
use qemu::{Arch, ConsoleMode, Profile, RunOptions, cmdline, profile};

/// What `run` and `gdb` share.
pub struct Interactive {
    pub arch: Arch,
    pub limine: Option<PathBuf>,
    pub fdt: bool,
    /// `None`: the arch's default ([`Arch::default_boot`]: Limine on x86_64 and aarch64).
    pub boot: Option<BootPath>,
    pub hotplug: bool,
    pub accel: AccelChoice,
    pub append: Option<String>,
    pub release: bool,
    pub gdb: bool,
    pub qemu_args: Vec<String>,
}

/// Runs the machine and ends this process with the kernel's exit status.
pub fn run(args: Interactive) -> Result<()> {
    let boot = args.boot.unwrap_or_else(|| args.arch.default_boot());
    args.arch.ensure_boot(boot)?;
    crate::setup::ensure(&[args.arch])?;
    let image = qemu::build_with(args.arch, args.release, args.limine.as_deref())?;
    match (boot, &image.loader) {
        (BootPath::Limine, Some(loader)) => println!("{}", loader.describe()),
        (BootPath::Direct, _) => println!("boot: direct (QEMU -kernel, no firmware)"),
        (BootPath::Limine, None) => {}
    }
    let accel = match args.gdb {
        true => Accel::Tcg, // breakpoints are dead under KVM (prior-art §8.7)
        false => accel::resolve(args.accel, &image)?,
    };
    let qmp = qmp_socket(args.arch);
    let kernel = image.kernel.clone();
    let mut opts = RunOptions::new(image);
    opts.append = args.append;
    opts.accel = accel;
    opts.console = ConsoleMode::Interactive;
    opts.qmp = Some(qmp.clone());
    opts.gdb = args.gdb;
    opts.extra_args = args.qemu_args;
    opts.console_log = Some(console_log(args.arch));
    let mut profile = Profile::new(args.arch).with_boot(boot);
    if args.fdt {
        if args.arch != Arch::Aarch64 {
            anyhow::bail!("--fdt is for aarch64 (x86_64 boots with ACPI, s390x with SCLP)");
        }
        profile = profile.with_device_tree();
    }
    if args.hotplug {
        profile = profile.with_hotplug();
    }
    qemu::limine_conf::prepare(&opts)?;
    println!("QMP socket: {}", qmp.display());
    if args.hotplug {
        println!(
            "Hotplug from another terminal: cargo xtask qmp --arch {} add-dimm 128M | del-dimm dimm0 | add-nvdimm 256M | vmem 512M | info",
            args.arch
        );
    }
    println!("Console on this terminal; Ctrl-A c toggles the QEMU monitor, Ctrl-A x quits.");
    if args.gdb {
        println!("QEMU waits for gdb on :1234. Attach with:");
        println!(
            "    gdb-multiarch {} -ex 'target remote :1234'",
            cmdline::quote(&kernel)
        );
        println!("(use `hbreak` for breakpoints before the kernel has been loaded)");
    }
    // Only `auto` falls back: an explicit `--accel kvm` shows what KVM does.
    let fallback = args.accel == AccelChoice::Auto;
    let status = launch(&profile, &opts, fallback)?;
    let log = opts.console_log.as_deref().unwrap_or(Path::new(""));
    let console = strip(&String::from_utf8_lossy(
        &std::fs::read(log).unwrap_or_default(),
    ));
    let (code, line) = exit_code(parse_sentinel(&console), status);
    if let Some(line) = line {
        eprintln!("{line}");
    }
    std::process::exit(code)
}

/// This process's exit status for the kernel's sentinel status (`None`: no sentinel line),
/// and the line that explains a non-zero one.
pub fn exit_code(sentinel: Option<i32>, qemu: ExitStatus) -> (i32, Option<String>) {
    match sentinel {
        Some(0) => (0, None),
        Some(n) => {
            let code = if (1..=255).contains(&n) { n } else { 1 };
            let line =
                format!("run: the kernel exited with status {n} (@@EXIT); exit status {code}");
            (code, Some(line))
        }
        None => (
            1,
            Some(format!(
                "run: QEMU ended ({qemu}) without an `@@EXIT status=N` line on the console; exit status 1"
            )),
        ),
    }
}

/// Starts QEMU on the terminal and waits for it; under KVM with `fallback`, starts it over
/// under TCG when [`kvm::judge`] finds that KVM failed before the guest ran.
fn launch(profile: &Profile, opts: &RunOptions, fallback: bool) -> Result<ExitStatus> {
    let mut cmd = profile::command(profile, opts)?;
    if let Some(qmp) = &opts.qmp {
        let _ = std::fs::remove_file(qmp);
    }
    if let Some(log) = &opts.console_log {
        let _ = std::fs::remove_file(log);
    }
    println!("$ {}", cmdline::render(&cmd));
    let mut child = cmd
        .stdin(Stdio::inherit())
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped())
        .spawn()
        .context("could not start QEMU")?;
    let watch = opts.accel == Accel::Kvm && fallback;
    let stderr = Arc::new(Mutex::new(Stderr {
        hold: watch,
        ..Stderr::default()
    }));
    let forwarder = forward_stderr(&mut child, &stderr);
    if watch {
        let started = Instant::now();
        loop {
            let log = opts.console_log.as_deref().unwrap_or(Path::new(""));
            let console = strip(&String::from_utf8_lossy(
                &std::fs::read(log).unwrap_or_default(),
            ));
            let exit = child.try_wait().context("waiting for QEMU")?;
            let err = lock(&stderr).text.clone();
            let exit = exit.map(|s| s.code());
            match kvm::judge(&console, &err, exit, started.elapsed(), kvm::GRACE) {
                Progress::Wait => thread::sleep(Duration::from_millis(100)),
                Progress::Failed(why) => {
                    // QEMU's own dump (registers, code bytes) stays out: one line says why.
                    quit(&mut child, opts.qmp.as_deref());
                    let _ = forwarder.join();
                    accel::kvm_failed_at_run_time(profile.arch, &why);
                    let mut tcg = opts.clone();
                    tcg.accel = Accel::Tcg;
                    return launch(profile, &tcg, false);
                }
                Progress::Reached | Progress::Running | Progress::Exited => break,
            }
        }
        lock(&stderr).release();
    }
    let status = child.wait().context("waiting for QEMU")?;
    let _ = forwarder.join();
    Ok(status)
}

/// QEMU's stderr as seen so far; while `hold`, lines are kept back from the terminal.
#[derive(Default)]
struct Stderr {
    text: String,
    forwarded: usize,
    hold: bool,
}

impl Stderr {
    fn push(&mut self, line: &str) {
        self.text.push_str(line);
        if !self.hold {
            self.flush();
        }
    }

    /// Stops holding lines back and prints those held.
    fn release(&mut self) {
        self.hold = false;
        self.flush();
    }

    fn flush(&mut self) {
        let _ = std::io::stderr().write_all(&self.text.as_bytes()[self.forwarded..]);
        self.forwarded = self.text.len();
    }
}

fn lock(stderr: &Mutex<Stderr>) -> std::sync::MutexGuard<'_, Stderr> {
    stderr.lock().unwrap_or_else(|p| p.into_inner())
}

/// Reads QEMU's stderr line by line into `seen` (which passes it on to ours).
fn forward_stderr(child: &mut Child, seen: &Arc<Mutex<Stderr>>) -> JoinHandle<()> {
    let pipe = child.stderr.take();
    let seen = Arc::clone(seen);
    thread::spawn(move || {
        let Some(pipe) = pipe else {
            return;
        };
        let mut reader = BufReader::new(pipe);
        let mut line = String::new();
        while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
            lock(&seen).push(&line);
            line.clear();
        }
    })
}

/// Ends QEMU cleanly (QMP `quit`, so it gives the terminal back as it found it), killing
/// it when that does not work within a few seconds.
fn quit(child: &mut Child, qmp: Option<&Path>) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    if let Some(mut q) = qmp.and_then(|p| qemu::Qmp::connect(p, Duration::from_secs(2)).ok()) {
        let _ = q.execute("quit", serde_json::json!({}));
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = Command::new("stty")
        .arg("sane")
        .stderr(Stdio::null())
        .status();
}

/// `target/qemu/<arch>.qmp` (stable, so scripts can find it), or the temp directory when that
/// path is too long for a Unix socket.
pub fn qmp_socket(arch: Arch) -> PathBuf {
    let dir = qemu::cargo::target_dir().join("qemu");
    let path = dir.join(format!("{arch}.qmp"));
    if path.as_os_str().len() < 100 && std::fs::create_dir_all(&dir).is_ok() {
        path
    } else {
        qemu::machine::temp_qmp_path(arch.name())
    }
}

/// `target/qemu/<arch>.console.log`: the console of the last `run`, for `qmp info`.
pub fn console_log(arch: Arch) -> PathBuf {
    let dir = qemu::cargo::target_dir().join("qemu");
    let _ = std::fs::create_dir_all(&dir);
    dir.join(format!("{arch}.console.log"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn the_exit_status_is_the_kernels_sentinel() {
        // x86_64's isa-debug-exit makes QEMU exit 33 after a clean poweroff.
        let qemu_33 = ExitStatus::from_raw(33 << 8);
        assert_eq!(exit_code(Some(0), qemu_33), (0, None));
        let (code, line) = exit_code(Some(3), ExitStatus::from_raw(0));
        assert_eq!(code, 3);
        assert!(line.unwrap().contains("status 3"));
        assert_eq!(exit_code(Some(256), qemu_33).0, 1, "never 0 by truncation");
        assert_eq!(exit_code(Some(-1), qemu_33).0, 1);
    }

    #[test]
    fn no_sentinel_is_non_zero_with_a_line() {
        let (code, line) = exit_code(None, ExitStatus::from_raw(0));
        assert_eq!(code, 1);
        assert!(line.unwrap().contains("without an `@@EXIT status=N` line"));
    }
}
