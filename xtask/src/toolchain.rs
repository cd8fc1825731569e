//! The pinned kernel toolchain on this machine (`kernel-toolchain.toml`, read by
//! [`qemu::toolchain`]): whether rustup has it with every component and target, one
//! [`Check`] per piece for doctor, and [`ensure`], which installs what is missing with one
//! `rustup toolchain install` before any kernel build (rustup's auto-install is off on
//! machines of our kind, and the host crates build on the stable toolchain).

use std::process::Command;

use anyhow::{Context, Result, bail};
use qemu::toolchain::Pinned;

/// One piece of the toolchain and, when it is missing, why and the command that fixes it.
pub struct Check {
    pub what: String,
    /// `None` when present.
    pub problem: Option<String>,
    pub fix: String,
}

/// Every piece of the pinned toolchain, checked through rustup.
pub fn checks() -> Vec<Check> {
    let pin = qemu::toolchain::pinned();
    if let Err(e) = tool_output(rustup(), &["--version"]) {
        return vec![Check {
            what: "rustup".to_string(),
            problem: Some(format!("{e:#}")),
            fix: format!(
                "install rustup with its stable toolchain, then: {}",
                pin.install_command()
            ),
        }];
    }
    let rustc = tool_output(qemu::cargo::kernel_tool_command("rustc"), &["-V"]).ok();
    let list = |what: &str| {
        let args = [what, "list", "--installed", "--toolchain", &pin.channel];
        tool_output(rustup(), &args).ok()
    };
    let components = list("component");
    let targets = list("target");
    problems_with(
        pin,
        rustc.as_deref(),
        components.as_deref(),
        targets.as_deref(),
    )
}

/// The checks from what rustup answered (`None`: the query failed, e.g. no such toolchain).
fn problems_with(
    pin: &Pinned,
    rustc_version: Option<&str>,
    components: Option<&str>,
    targets: Option<&str>,
) -> Vec<Check> {
    let channel = &pin.channel;
    let install = pin.install_command();
    let mut out = Vec::new();
    let (what, problem) = match rustc_version {
        Some(v) if rustc_matches(channel, v) => (format!("{} ({channel})", v.trim()), None),
        Some(v) => (
            format!("toolchain {channel}"),
            Some(format!("rustc is {}", v.trim())),
        ),
        None => (
            format!("toolchain {channel}"),
            Some("not installed".to_string()),
        ),
    };
    out.push(Check {
        what,
        problem,
        fix: install.clone(),
    });
    let mut piece = |kind: &str, name: &str, installed: Option<&str>| {
        let ok = installed.is_some_and(|list| listed(list, name));
        out.push(Check {
            what: format!("{kind} {name}"),
            problem: (!ok).then(|| format!("not installed for {channel}")),
            fix: install.clone(),
        });
    };
    for c in &pin.components {
        piece("component", c, components);
    }
    for t in &pin.targets {
        piece("target", t, targets);
    }
    out
}

/// Installs the pinned toolchain, its components and targets when any is missing (one
/// `rustup toolchain install`, which also completes an installed toolchain); fails naming
/// what is still missing.
pub fn ensure() -> Result<()> {
    let missing: Vec<Check> = checks()
        .into_iter()
        .filter(|c| c.problem.is_some())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let pin = qemu::toolchain::pinned();
    let names: Vec<&str> = missing.iter().map(|c| c.what.as_str()).collect();
    if missing.iter().any(|c| c.what == "rustup") {
        bail!("rustup not found; {}", missing[0].fix);
    }
    eprintln!(
        "xtask: the kernel toolchain ({}) lacks {}; installing it",
        qemu::toolchain::FILE_NAME,
        names.join(", ")
    );
    let mut cmd = rustup();
    cmd.args(pin.install_args());
    eprintln!("$ {}", qemu::cmdline::render(&cmd));
    let status = cmd.status().context("starting rustup")?;
    if !status.success() {
        bail!("{} failed with {status}", pin.install_command());
    }
    let still: Vec<String> = checks()
        .into_iter()
        .filter(|c| c.problem.is_some())
        .map(|c| c.what)
        .collect();
    if !still.is_empty() {
        bail!("still missing after installing: {}", still.join(", "));
    }
    Ok(())
}

/// rustup, without the outer cargo's environment.
fn rustup() -> Command {
    qemu::cargo::tool_command("rustup")
}

/// Output of `cmd args`, or why it failed.
fn tool_output(mut cmd: Command, args: &[&str]) -> Result<String> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let out = cmd
        .args(args)
        .output()
        .with_context(|| format!("cannot run {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether `rustc -V` (e.g. `rustc 1.97.0-nightly (e50aa6fba 2026-05-19)`) is the build of
/// `channel` (e.g. `nightly-2026-05-20`): a nightly is dated the day after its commit.
pub fn rustc_matches(channel: &str, rustc_version: &str) -> bool {
    let Some(date) = channel.strip_prefix("nightly-") else {
        return rustc_version.contains(channel);
    };
    let commit_date = rustc_version
        .trim()
        .trim_end_matches(')')
        .rsplit(' ')
        .next()
        .unwrap_or_default();
    match (days(date), days(commit_date)) {
        (Some(pinned), Some(built)) => pinned - built == 1 || pinned == built,
        _ => false,
    }
}

/// Days since 1970-01-01 of `YYYY-MM-DD` (Howard Hinnant's `days_from_civil`).
fn days(date: &str) -> Option<i64> {
    let mut parts = date.split('-').map(str::parse::<i64>);
    let (y, m, d) = (
        parts.next()?.ok()?,
        parts.next()?.ok()?,
        parts.next()?.ok()?,
    );
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || parts.next().is_some() {
        return None;
    }
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

/// Whether `rustup ... list --installed` output has `name` (bare or with a host suffix).
pub fn listed(installed: &str, name: &str) -> bool {
    installed.lines().map(str::trim).any(|line| {
        line == name
            || line
                .strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('-') && rest.contains("-unknown-"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_and_the_docs_name_the_pinned_toolchain() {
        let root = qemu::cargo::workspace_root();
        let channel = qemu::toolchain::channel();
        for doc in ["README.md", "docs/tooling.md"] {
            let text = std::fs::read_to_string(root.join(doc)).unwrap();
            assert!(text.contains(channel), "{doc} does not name {channel}");
            assert!(
                text.contains(qemu::toolchain::FILE_NAME),
                "{doc} does not point to {}",
                qemu::toolchain::FILE_NAME
            );
            for line in text.lines().filter(|l| l.contains("nightly-20")) {
                assert!(line.contains(channel), "{doc}: stale pin in {line:?}");
            }
        }
        assert!(
            !root.join("rust-toolchain.toml").exists(),
            "a rust-toolchain.toml makes the first cargo call need the nightly"
        );
    }

    #[test]
    fn checks_name_one_install_command_for_everything() {
        let pin = qemu::toolchain::pinned();
        let missing = problems_with(pin, None, None, None);
        assert!(missing.len() >= 1 + pin.components.len() + pin.targets.len());
        assert!(missing.iter().all(|c| c.problem.is_some()));
        let components = pin.components.join("\n") + "\n";
        let targets: String = pin.targets.iter().map(|t| format!("{t}\n")).collect();
        let version = format!(
            "rustc 1.97.0-nightly (e50aa6fba {})\n",
            pin.channel.trim_start_matches("nightly-")
        );
        let none = problems_with(pin, Some(&version), Some(&components), Some(&targets));
        assert!(
            none.iter().all(|c| c.problem.is_none()),
            "{:?}",
            none.iter().map(|c| &c.what).collect::<Vec<_>>()
        );
        let no_src = components.replace("rust-src\n", "");
        let some = problems_with(pin, Some(&version), Some(&no_src), Some(&targets));
        let bad: Vec<&str> = some
            .iter()
            .filter(|c| c.problem.is_some())
            .map(|c| c.what.as_str())
            .collect();
        assert_eq!(bad, ["component rust-src"]);
    }

    #[test]
    fn nightly_is_dated_the_day_after_its_commit() {
        let v = "rustc 1.97.0-nightly (e50aa6fba 2026-05-19)\n";
        assert!(rustc_matches("nightly-2026-05-20", v));
        assert!(rustc_matches("nightly-2026-05-19", v));
        assert!(!rustc_matches("nightly-2026-05-22", v));
        assert!(rustc_matches(
            "nightly-2026-03-01",
            "rustc 1.9 (abc 2026-02-28)"
        ));
        assert!(!rustc_matches(
            "nightly-2026-05-20",
            "rustc 1.95.0 (abc 2026-04-01)"
        ));
        assert!(rustc_matches(
            "1.95.0",
            "rustc 1.95.0 (59807616e 2026-04-14)"
        ));
    }

    #[test]
    fn finds_installed_components_and_targets() {
        let installed = "cargo-x86_64-unknown-linux-gnu\nclippy-x86_64-unknown-linux-gnu\n\
                         llvm-tools-x86_64-unknown-linux-gnu\nrust-src\n";
        assert!(listed(installed, "rust-src"));
        assert!(listed(installed, "clippy"));
        assert!(listed(installed, "llvm-tools"));
        assert!(!listed(installed, "rustfmt"));
        assert!(listed("x86_64-unknown-none\n", "x86_64-unknown-none"));
        assert!(!listed("x86_64-unknown-none\n", "x86_64-unknown-uefi"));
    }
}
