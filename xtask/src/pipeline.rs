//! `cargo xtask test`: prerequisites (the pinned kernel toolchain, QEMU and firmware: what
//! `doctor` checks, installed or named with its fix), host tests, kernel builds, then the
//! QEMU tests with the kernels handed over in `HOTMEM_KERNEL_<ARCH>` (and `--boot` in
//! `HOTMEM_BOOT`). Every stage is timed; any failure fails the whole command.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use qemu::arch::BootPath;
use qemu::{Arch, cmdline};

/// One stage's result for the summary (`None`: skipped).
struct Stage {
    name: String,
    took: Duration,
    result: Option<Result<()>>,
}

pub fn run(arch: Option<Arch>, release: bool, boot: Option<BootPath>) -> Result<()> {
    let root = qemu::cargo::workspace_root();
    let arches: Vec<Arch> = match arch {
        Some(a) => {
            a.ensure_ported(&root)?;
            vec![a]
        }
        None => Arch::ALL
            .into_iter()
            .filter(|a| a.is_ported(&root))
            .collect(),
    };
    let names: Vec<&str> = arches.iter().map(|a| a.name()).collect();
    println!("xtask test: arches {}", names.join(", "));
    let mut stages = Vec::new();
    // `None` records the stage as skipped.
    let mut stage = |name: &str, f: Option<&mut dyn FnMut() -> Result<()>>| {
        let Some(f) = f else {
            println!("==> {name}: skipped");
            stages.push(Stage {
                name: name.to_string(),
                took: Duration::ZERO,
                result: None,
            });
            return false;
        };
        println!("==> {name}");
        let start = Instant::now();
        let result = f();
        if let Err(e) = &result {
            eprintln!("xtask: {name} failed: {e:#}");
        }
        let ok = result.is_ok();
        stages.push(Stage {
            name: name.to_string(),
            took: start.elapsed(),
            result: Some(result),
        });
        ok
    };
    // Everything doctor checks, before any build: the toolchain gates the kernel builds,
    // QEMU and the firmware gate the QEMU tests.
    let mut toolchain_ready = false;
    let ready = stage(
        "prerequisites",
        Some(&mut || {
            let toolchain = crate::toolchain::ensure();
            toolchain_ready = toolchain.is_ok();
            let host = crate::setup::ensure_host(&arches);
            match (toolchain, host) {
                (Ok(()), host) => host,
                (Err(e), Ok(())) => Err(e),
                (Err(e), Err(host)) => Err(e.context(format!("{host:#}"))),
            }
        }),
    );
    stage(
        "host tests (cargo test)",
        Some(&mut || cargo(&["test"], &[])),
    );
    let mut kernels: Vec<(Arch, PathBuf)> = Vec::new();
    for &arch in &arches {
        if !toolchain_ready {
            stage(&format!("build {arch} kernel (no pinned toolchain)"), None);
            continue;
        }
        stage(
            &format!("build {arch} kernel"),
            Some(&mut || {
                kernels.push((arch, qemu::build(arch, release)?.kernel));
                Ok(())
            }),
        );
    }
    if ready && !kernels.is_empty() {
        let mut env: Vec<(String, String)> = kernels
            .iter()
            .map(|(a, k)| (a.kernel_env_var(), k.display().to_string()))
            .collect();
        let built: Vec<&str> = kernels.iter().map(|(a, _)| a.name()).collect();
        env.push(("HOTMEM_ARCHES".into(), built.join(",")));
        if let Some(boot) = boot {
            // Read by `tests::default_boot`: every test that does not pin its path.
            env.push(("HOTMEM_BOOT".into(), boot.name().into()));
        }
        if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
            // Failed tests return anyhow errors; their message is the useful part.
            env.push(("RUST_LIB_BACKTRACE".into(), "0".into()));
        }
        stage(
            "QEMU tests (cargo test -p tests)",
            Some(&mut || cargo(&["test", "-p", "tests", "--", "--test-threads=1"], &env)),
        );
    } else {
        stage(
            "QEMU tests (no kernel built or prerequisites missing)",
            None,
        );
    }
    summarize(&stages)
}

/// `cargo ARGS` on the caller's toolchain (host crates), echoed, failing on a non-zero exit.
pub(crate) fn cargo(args: &[&str], env: &[(String, String)]) -> Result<()> {
    run_cargo(qemu::cargo::cargo_command(), args, env)
}

/// `cargo ARGS` on the pinned kernel toolchain.
pub(crate) fn kernel_cargo(args: &[&str]) -> Result<()> {
    run_cargo(qemu::cargo::kernel_cargo_command(), args, &[])
}

fn run_cargo(mut cmd: Command, args: &[&str], env: &[(String, String)]) -> Result<()> {
    cmd.args(args).envs(env.iter().map(|(k, v)| (k, v)));
    let env_text: Vec<String> = env
        .iter()
        .map(|(k, v)| format!("{k}={}", cmdline::quote(v)))
        .collect();
    println!("$ {} {}", env_text.join(" "), cmdline::render(&cmd));
    let status = cmd.status()?;
    if !status.success() {
        bail!("{status}");
    }
    Ok(())
}

fn summarize(stages: &[Stage]) -> Result<()> {
    println!("\n==> summary");
    let mut total = Duration::ZERO;
    for s in stages {
        let verdict = match &s.result {
            Some(Ok(())) => "ok     ",
            Some(Err(_)) => "FAILED ",
            None => "skipped",
        };
        println!("{verdict} {:>7.1}s  {}", s.took.as_secs_f64(), s.name);
        total += s.took;
    }
    println!("        {:>7.1}s  total", total.as_secs_f64());
    let failed: Vec<&str> = stages
        .iter()
        .filter(|s| matches!(s.result, Some(Err(_))))
        .map(|s| s.name.as_str())
        .collect();
    if !failed.is_empty() {
        bail!("failed: {}", failed.join("; "));
    }
    Ok(())
}
