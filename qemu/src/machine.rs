//! A running QEMU: spawned with its console on pipes, watched by a timeout, killed on drop.
//! Tests type with [`Machine::send_line`], read with [`Machine::expect`] and end with
//! [`Machine::wait_exit`], which decodes the exit protocol into an [`Outcome`]. A machine
//! started under KVM is watched until its guest shows it runs; when KVM fails first, the
//! same machine is started again under TCG ([`Machine::spawn`], one line says why).

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::accel::Accel;
use crate::cmdline::render;
use crate::console::{Capture, Wait, parse_sentinel};
use crate::kvm::{self, Progress};
use crate::profile::{Profile, RunOptions, command};
use crate::qmp::Qmp;

/// How a run ended, by the exit protocol (the sentinel line is the source of truth).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `@@EXIT status=0`.
    Pass,
    /// `@@EXIT status=N` with N != 0.
    Fail(i32),
    /// QEMU ended without a sentinel; its exit code (`None`: killed by a signal).
    NoSentinel(Option<i32>),
    /// The timeout passed first; QEMU was killed.
    Timeout,
}

impl Outcome {
    /// Decodes a finished run's console text.
    pub fn from_console(console: &str, qemu_exit: Option<i32>) -> Outcome {
        match parse_sentinel(console) {
            Some(0) => Outcome::Pass,
            Some(status) => Outcome::Fail(status),
            None => Outcome::NoSentinel(qemu_exit),
        }
    }

    pub fn is_pass(self) -> bool {
        self == Outcome::Pass
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Pass => f.write_str("PASS"),
            Outcome::Fail(status) => write!(f, "FAIL (status {status})"),
            Outcome::NoSentinel(Some(code)) => write!(f, "FAIL (no @@EXIT line; QEMU exit {code})"),
            Outcome::NoSentinel(None) => f.write_str("FAIL (no @@EXIT line; QEMU killed)"),
            Outcome::Timeout => f.write_str("TIMEOUT"),
        }
    }
}

/// A QEMU process and its captured console.
pub struct Machine {
    child: Arc<Mutex<Child>>,
    stdin: Option<ChildStdin>,
    console: Arc<Capture>,
    stderr: Arc<Capture>,
    readers: Vec<JoinHandle<()>>,
    /// Console bytes before this offset were consumed by `expect`.
    cursor: usize,
    started: Instant,
    deadline: Instant,
    killed_by_watchdog: Arc<AtomicBool>,
    _watchdog: Sender<()>,
    command_line: String,
    qmp: Option<PathBuf>,
    exit: Option<ExitStatus>,
}

impl Machine {
    /// Starts QEMU for `profile` with `opts` (console on pipes, whatever `opts.console` says
    /// about the monitor), and a watchdog that kills it after `opts.timeout`. Under KVM it
    /// returns once the guest shows it runs (`boot: ready` on a working KVM); if KVM fails
    /// before that, the verdict is cached for this machine and the run starts over under
    /// TCG, with one line saying why.
    pub fn spawn(profile: &Profile, opts: &RunOptions) -> Result<Machine> {
        crate::limine_conf::prepare(opts)?;
        let cmd = command(profile, opts)?;
        let machine = Machine::spawn_command(cmd, opts.timeout, opts.echo, opts.qmp.clone())?;
        if opts.accel != Accel::Kvm {
            return Ok(machine);
        }
        machine.unless_kvm_fails(kvm::GRACE, |why| {
            crate::accel::kvm_failed_at_run_time(profile.arch, why);
            let mut tcg = opts.clone();
            tcg.accel = Accel::Tcg;
            let cmd = command(profile, &tcg)?;
            Machine::spawn_command(cmd, tcg.timeout, tcg.echo, tcg.qmp.clone())
        })
    }

    /// Waits until this machine (started under KVM) shows its guest runs, and returns it;
    /// when [`kvm::judge`] finds that KVM failed first, kills it and returns `fallback(why)`.
    pub fn unless_kvm_fails(
        mut self,
        grace: Duration,
        fallback: impl FnOnce(&str) -> Result<Machine>,
    ) -> Result<Machine> {
        loop {
            match self.kvm_progress(grace) {
                Progress::Wait => thread::sleep(Duration::from_millis(50)),
                Progress::Failed(why) => {
                    self.kill();
                    return fallback(&why);
                }
                Progress::Reached | Progress::Running | Progress::Exited => return Ok(self),
            }
        }
    }

    /// Where this machine stands by [`kvm::judge`], as if started under KVM.
    pub fn kvm_progress(&mut self, grace: Duration) -> Progress {
        let exit = match self.exit {
            Some(status) => Some(status),
            None => lock(&self.child).try_wait().ok().flatten(),
        };
        if let Some(status) = exit {
            self.exit = Some(status);
            // Let the readers drain the pipes so the verdict sees QEMU's last words.
            for reader in self.readers.drain(..) {
                let _ = reader.join();
            }
        }
        kvm::judge(
            &self.console.text(),
            &self.stderr.text(),
            exit.map(|s| s.code()),
            self.started.elapsed(),
            grace,
        )
    }

    /// Starts any command as a machine (its stdin/stdout are the console); `qmp` names the
    /// socket the command was told to create.
    pub fn spawn_command(
        mut cmd: Command,
        timeout: Duration,
        echo: bool,
        qmp: Option<PathBuf>,
    ) -> Result<Machine> {
        let command_line = render(&cmd);
        if let Some(qmp) = &qmp {
            let _ = std::fs::remove_file(qmp);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {command_line}"))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().context("no stdout pipe")?;
        let stderr = child.stderr.take().context("no stderr pipe")?;
        let (console, console_reader) = Capture::spawn(stdout, echo);
        let (stderr, stderr_reader) = Capture::spawn(stderr, echo);
        let child = Arc::new(Mutex::new(child));
        let killed_by_watchdog = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let deadline = started + timeout;
        let watchdog = spawn_watchdog(&child, &killed_by_watchdog, deadline);
        Ok(Machine {
            child,
            stdin,
            console,
            stderr,
            readers: vec![console_reader, stderr_reader],
            cursor: 0,
            started,
            deadline,
            killed_by_watchdog,
            _watchdog: watchdog,
            command_line,
            qmp,
            exit: None,
        })
    }

    /// The QEMU command line, shell-quoted.
    pub fn command_line(&self) -> &str {
        &self.command_line
    }

    /// The QMP socket, when the run has one.
    pub fn qmp_path(&self) -> Option<&Path> {
        self.qmp.as_deref()
    }

    /// Connects a QMP client (QEMU creates the socket early; this retries for up to 10 s).
    pub fn qmp(&self) -> Result<Qmp> {
        let path = self
            .qmp
            .as_deref()
            .context("this machine was started without QMP")?;
        Qmp::connect(path, Duration::from_secs(10))
    }

    /// Waits until the console shows `pattern` after the previous match and returns the text
    /// from there up to and including it.
    pub fn expect(&mut self, pattern: &str, timeout: Duration) -> Result<String> {
        let start = Instant::now();
        let deadline = (start + timeout).min(self.deadline);
        match self.console.wait_for(self.cursor, pattern, deadline) {
            Wait::Found(end) => {
                let text = self.console.slice(self.cursor, end);
                self.cursor = end;
                Ok(text)
            }
            Wait::Closed => {
                let status = self.try_status();
                Err(self.failure(&format!(
                    "QEMU ended ({status}) before {pattern:?} appeared"
                )))
            }
            Wait::TimedOut => Err(self.failure(&format!(
                "no {pattern:?} on the console within {:.1?}",
                deadline.duration_since(start)
            ))),
        }
    }

    /// Types `line` and a newline on the console.
    pub fn send_line(&mut self, line: &str) -> Result<()> {
        let stdin = self
            .stdin
            .as_mut()
            .context("console input already closed")?;
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|()| stdin.flush())
            .with_context(|| format!("typing {line:?}: QEMU console input closed"))
    }

    /// Types raw bytes on the console (no newline added).
    pub fn send_bytes(&mut self, bytes: &[u8]) -> Result<()> {
        let stdin = self
            .stdin
            .as_mut()
            .context("console input already closed")?;
        stdin
            .write_all(bytes)
            .and_then(|()| stdin.flush())
            .context("typing raw bytes: QEMU console input closed")
    }

    /// Types `line`, waits for `prompt`, and returns what was printed in between (the prompt
    /// itself removed).
    pub fn run_command(&mut self, line: &str, prompt: &str, timeout: Duration) -> Result<String> {
        self.send_line(line)?;
        let text = self.expect(prompt, timeout)?;
        Ok(text[..text.len() - prompt.len()].to_string())
    }

    /// Waits for QEMU to end (killing it after `timeout`, or at the overall deadline) and
    /// decodes the exit protocol.
    pub fn wait_exit(&mut self, timeout: Duration) -> Outcome {
        let deadline = (Instant::now() + timeout).min(self.deadline);
        let status = loop {
            if let Some(status) = self
                .exit
                .or_else(|| lock(&self.child).try_wait().ok().flatten())
            {
                break Some(status);
            }
            if Instant::now() >= deadline {
                self.kill();
                break None;
            }
            thread::sleep(Duration::from_millis(20));
        };
        self.exit = self.exit.or(status);
        self.stdin = None;
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        if status.is_none() || self.killed_by_watchdog.load(Ordering::SeqCst) {
            return Outcome::Timeout;
        }
        Outcome::from_console(&self.console.text(), status.and_then(|s| s.code()))
    }

    /// QEMU's own exit code once it has ended (`None` while running or if killed).
    pub fn exit_code(&self) -> Option<i32> {
        self.exit.and_then(|s| s.code())
    }

    /// Everything the console printed so far (ANSI and CR stripped).
    pub fn console(&self) -> String {
        self.console.text()
    }

    /// What QEMU printed on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.text()
    }

    /// Kills QEMU now (idempotent).
    pub fn kill(&mut self) {
        let mut child = lock(&self.child);
        if self.exit.is_none() {
            let _ = child.kill();
            self.exit = child.wait().ok();
        }
    }

    fn try_status(&self) -> String {
        match lock(&self.child).try_wait() {
            Ok(Some(status)) => status.to_string(),
            _ => "pipe closed".to_string(),
        }
    }

    /// An error that carries the command line and the last console and stderr lines.
    fn failure(&self, what: &str) -> anyhow::Error {
        let console = self.console.text();
        let stderr = self.stderr.text();
        anyhow::anyhow!(
            "{what}\n--- command\n{}\n--- console (last 40 lines)\n{}\n--- QEMU stderr\n{}",
            self.command_line,
            last_lines(&console, 40),
            last_lines(&stderr, 20)
        )
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        self.stdin = None;
        self.kill();
        if let Some(qmp) = &self.qmp {
            let _ = std::fs::remove_file(qmp);
        }
    }
}

/// Kills the child at `deadline` unless the sender is dropped first.
fn spawn_watchdog(
    child: &Arc<Mutex<Child>>,
    fired: &Arc<AtomicBool>,
    deadline: Instant,
) -> Sender<()> {
    let (tx, rx) = mpsc::channel::<()>();
    let child = Arc::clone(child);
    let fired = Arc::clone(fired);
    thread::spawn(move || {
        let wait = deadline.saturating_duration_since(Instant::now());
        if rx.recv_timeout(wait) == Err(RecvTimeoutError::Timeout) {
            let mut child = lock(&child);
            if matches!(child.try_wait(), Ok(None)) {
                fired.store(true, Ordering::SeqCst);
                let _ = child.kill();
            }
        }
    });
    tx
}

fn lock(child: &Mutex<Child>) -> MutexGuard<'_, Child> {
    child.lock().unwrap_or_else(|p| p.into_inner())
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A fresh QMP socket path in the temp directory, unique per process and call.
pub fn temp_qmp_path(tag: &str) -> PathBuf {
    use std::sync::atomic::AtomicU32;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("hotmem-{tag}-{}-{n}.qmp", std::process::id()))
}

/// Fails unless `outcome` is `expected`, quoting the console tail.
pub fn ensure_outcome(machine: &Machine, outcome: Outcome, expected: Outcome) -> Result<()> {
    if outcome != expected {
        bail!(
            "{}",
            machine.failure(&format!("expected {expected}, got {outcome}"))
        );
    }
    Ok(())
}

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;
