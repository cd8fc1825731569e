//! `cargo xtask fuzz`: runs the cargo-fuzz targets of `fuzz/` one after another, each for
//! a fixed time, and prints one summary line per target.
//!
//! cargo-fuzz is installed when missing (`cargo install cargo-fuzz --locked`), and a C++
//! compiler for libFuzzer (apt's `g++` when run as root). The targets are built once with
//! the pinned nightly (`kernel-toolchain.toml`, installed first when missing), without a sanitizer: the code under test is
//! safe Rust, and overflow checks and debug assertions stay on. Each target fuzzes a
//! scratch corpus, `target/fuzz-corpus/<target>/`, which the committed seeds
//! (`fuzz/seeds/<target>/`: text, or `.seed` descriptions of binary inputs assembled by
//! [`crate::seed`]) are put into and which grows from run to run; crashes go to
//! `target/fuzz-artifacts/<target>/`, libFuzzer's output to `target/fuzz-logs/<target>.log`.
//! Any crash fails the command, naming the artifact.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::setup::is_root;

/// The fuzz targets, in the order they run.
pub const TARGETS: [&str; 5] = [
    "nfit",
    "cmdline",
    "limine_conf",
    "region_carve",
    "mm_sequence",
];

/// What one run of one target did, read from libFuzzer's final statistics.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Inputs executed.
    pub runs: u64,
    /// Average executions per second.
    pub execs_per_sec: u64,
    /// The artifact libFuzzer wrote, if it stopped on a crash, leak, timeout or OOM.
    pub artifact: Option<String>,
}

/// `cargo xtask fuzz --seconds N [--target NAME]...`.
pub fn run(seconds: u64, targets: &[String]) -> Result<()> {
    let targets = select(targets)?;
    let root = qemu::cargo::workspace_root();
    let scratch = qemu::cargo::target_dir();
    crate::toolchain::ensure()?;
    ensure_cxx()?;
    ensure_cargo_fuzz()?;
    println!("==> building the fuzz targets");
    let status = cargo_fuzz(&["build", "-s", "none"])
        .status()
        .context("starting cargo fuzz build")?;
    if !status.success() {
        bail!("cargo fuzz build failed with {status}");
    }
    let mut failed = Vec::new();
    let mut lines = Vec::new();
    for target in targets {
        let corpus = scratch.join("fuzz-corpus").join(target);
        let artifacts = artifacts_dir(target);
        let logs = scratch.join("fuzz-logs");
        for dir in [&corpus, &artifacts, &logs] {
            fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let seeds = copy_seeds(&root.join("fuzz/seeds").join(target), &corpus)?;
        let log = logs.join(format!("{target}.log"));
        println!(
            "==> fuzz {target}: {seconds} s, {seeds} seeds, log {}",
            log.display()
        );
        let started = Instant::now();
        let stats = run_target(target, seconds, &corpus, &artifacts, &log)?;
        let took = started.elapsed().as_secs();
        let corpus_size = fs::read_dir(&corpus).map_or(0, Iterator::count);
        let verdict = match &stats.artifact {
            None => "ok".to_string(),
            Some(path) => {
                failed.push(target);
                print_failure(&log);
                format!("CRASH {path}")
            }
        };
        let line = format!(
            "fuzz {target:<13} {took:>5} s {:>11} runs {:>8} exec/s  corpus {corpus_size:>5}  {verdict}",
            stats.runs, stats.execs_per_sec
        );
        println!("{line}");
        lines.push(line);
    }
    println!("\n==> fuzz summary");
    lines.iter().for_each(|l| println!("{l}"));
    if !failed.is_empty() {
        bail!("fuzz targets crashed: {}", failed.join(", "));
    }
    Ok(())
}

/// The targets asked for (all when none), checked against [`TARGETS`].
fn select(asked: &[String]) -> Result<Vec<&'static str>> {
    if asked.is_empty() {
        return Ok(TARGETS.to_vec());
    }
    asked
        .iter()
        .map(|name| {
            TARGETS
                .iter()
                .find(|t| *t == name)
                .copied()
                .with_context(|| {
                    format!(
                        "unknown fuzz target {name:?} (known: {})",
                        TARGETS.join(", ")
                    )
                })
        })
        .collect()
}

/// `cargo fuzz ARGS` with the pinned toolchain, in the workspace.
fn cargo_fuzz(args: &[&str]) -> Command {
    let mut cmd = qemu::cargo::kernel_cargo_command();
    cmd.arg("fuzz").args(args);
    cmd
}

fn ensure_cargo_fuzz() -> Result<()> {
    let found = cargo_fuzz(&["--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return Ok(());
    }
    println!("==> installing cargo-fuzz");
    let status = qemu::cargo::kernel_cargo_command()
        .args(["install", "cargo-fuzz", "--locked"])
        .status()
        .context("starting cargo install")?;
    if !status.success() {
        bail!("cargo install cargo-fuzz --locked failed with {status}");
    }
    Ok(())
}

/// libFuzzer is C++: the `cc` crate needs `$CXX` or `c++`.
pub fn ensure_cxx() -> Result<()> {
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".to_string());
    let found = Command::new(&cxx)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return Ok(());
    }
    if !is_root() {
        bail!("no C++ compiler ({cxx}) for libFuzzer; run: apt-get install -y g++");
    }
    println!("==> installing g++ (libFuzzer is C++)");
    for args in [
        &["update"][..],
        &["install", "-y", "--no-install-recommends", "g++"][..],
    ] {
        let status = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .context("starting apt-get")?;
        if !status.success() {
            bail!("apt-get {} failed with {status}", args.join(" "));
        }
    }
    Ok(())
}

/// Puts the committed seeds into the scratch corpus (existing files are kept): text
/// seeds as they are, `NAME.seed` descriptions assembled into the bytes of `NAME`.
fn copy_seeds(seeds: &Path, corpus: &Path) -> Result<usize> {
    let mut n = 0;
    let entries = fs::read_dir(seeds).with_context(|| format!("reading {}", seeds.display()))?;
    for entry in entries {
        let path = entry?.path();
        if !path.is_file() {
            continue;
        }
        let name = path.file_name().context("seed without a name")?;
        if path.extension().is_some_and(|e| e == "seed") {
            let text = fs::read_to_string(&path)
                .with_context(|| format!("reading seed {}", path.display()))?;
            let bytes = crate::seed::assemble(&text)
                .with_context(|| format!("assembling seed {}", path.display()))?;
            let stem = path.file_stem().context("seed without a name")?;
            fs::write(corpus.join(stem), bytes)
                .with_context(|| format!("writing seed {}", path.display()))?;
        } else {
            fs::copy(&path, corpus.join(name))
                .with_context(|| format!("copying seed {}", path.display()))?;
        }
        n += 1;
    }
    Ok(n)
}

fn run_target(
    target: &str,
    seconds: u64,
    corpus: &Path,
    artifacts: &Path,
    log: &Path,
) -> Result<Stats> {
    let out = fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let err = out.try_clone()?;
    let time = format!("-max_total_time={seconds}");
    let prefix = format!("-artifact_prefix={}/", artifacts.display());
    let corpus = corpus.to_string_lossy();
    let status = cargo_fuzz(&["run", "-s", "none", target, &corpus, "--"])
        .args([time.as_str(), prefix.as_str(), "-print_final_stats=1"])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .status()
        .with_context(|| format!("starting cargo fuzz run {target}"))?;
    let text = fs::read_to_string(log).unwrap_or_default();
    let stats = parse_stats(&text);
    if !status.success() && stats.artifact.is_none() {
        print_failure(log);
        bail!("cargo fuzz run {target} failed with {status} and left no artifact");
    }
    Ok(stats)
}

/// Reads libFuzzer's `-print_final_stats=1` lines and the artifact it wrote, if any.
pub fn parse_stats(log: &str) -> Stats {
    let mut stats = Stats::default();
    for line in log.lines() {
        let stat = |key: &str| {
            line.strip_prefix(key)
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        if let Some(v) = stat("stat::number_of_executed_units:") {
            stats.runs = v;
        } else if let Some(v) = stat("stat::average_exec_per_sec:") {
            stats.execs_per_sec = v;
        } else if let Some((_, path)) = line.split_once("Test unit written to ") {
            stats.artifact = Some(path.trim().to_string());
        }
    }
    stats
}

/// The panic and the last lines of libFuzzer's output.
fn print_failure(log: &Path) {
    let text = fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let panic = lines.iter().position(|l| l.contains("panicked at"));
    let from = panic.unwrap_or(lines.len().saturating_sub(20));
    eprintln!("---- {} ----", log.display());
    for line in lines[from..]
        .iter()
        .filter(|l| !l.starts_with("   "))
        .take(40)
    {
        eprintln!("{line}");
    }
}

/// Where the crash artifacts of `target` go.
pub fn artifacts_dir(target: &str) -> PathBuf {
    qemu::cargo::target_dir()
        .join("fuzz-artifacts")
        .join(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_final_stats_and_the_artifact() {
        let log = "INFO: Seed: 1\n#2593901\tDONE   cov: 430 ft: 1090 corp: 317/106Kb exec/s: 123519\n\
                   Done 2593901 runs in 21 second(s)\n\
                   stat::number_of_executed_units: 2593901\n\
                   stat::average_exec_per_sec:     123519\n\
                   stat::new_units_added:          310\n";
        assert_eq!(
            parse_stats(log),
            Stats {
                runs: 2593901,
                execs_per_sec: 123519,
                artifact: None
            }
        );
        let crash = "thread '<unnamed>' panicked at fuzz_targets/x.rs:1:2:\n\
                     ==1== ERROR: libFuzzer: deadly signal\n\
                     artifact_prefix='/t/a/'; Test unit written to /t/a/crash-ee63\n\
                     stat::number_of_executed_units: 347\n";
        let stats = parse_stats(crash);
        assert_eq!(stats.artifact.as_deref(), Some("/t/a/crash-ee63"));
        assert_eq!(stats.runs, 347);
    }

    #[test]
    fn targets_are_checked_by_name() {
        assert_eq!(select(&[]).unwrap(), TARGETS);
        assert_eq!(
            select(&["mm_sequence".to_string(), "nfit".to_string()]).unwrap(),
            ["mm_sequence", "nfit"]
        );
        let err = select(&["nope".to_string()]).unwrap_err().to_string();
        assert!(err.contains("unknown fuzz target \"nope\""), "{err}");
        assert!(artifacts_dir("nfit").ends_with("fuzz-artifacts/nfit"));
    }
}
