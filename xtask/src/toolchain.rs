//! The pinned toolchain: what `rust-toolchain.toml` asks for, and whether rustup has it
//! (channel, components, targets). Read with a few lines of parsing instead of a TOML crate.

use std::fs;
use std::process::Command;

use anyhow::{Context, Result};

/// The fields of `rust-toolchain.toml` that doctor checks.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pinned {
    pub channel: String,
    pub components: Vec<String>,
    pub targets: Vec<String>,
}

/// Reads the workspace's `rust-toolchain.toml`.
pub fn pinned() -> Result<Pinned> {
    let path = qemu::cargo::workspace_root().join("rust-toolchain.toml");
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    parse(&text).with_context(|| format!("no `channel` in {}", path.display()))
}

/// Parses `channel = "..."` and the `components` / `targets` arrays (possibly multi-line).
pub fn parse(text: &str) -> Option<Pinned> {
    let strings = |key: &str| -> Vec<String> {
        let mut lines = text.lines();
        let Some(first) = lines.find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == key).then_some(v)
        }) else {
            return Vec::new();
        };
        let mut value = first.to_string();
        for line in lines {
            if !value.contains('[') || value.contains(']') {
                break;
            }
            value.push_str(line);
        }
        let value = value.split(']').next().unwrap_or_default();
        value
            .split('"')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    };
    let channel = strings("channel").into_iter().next()?;
    Some(Pinned {
        channel,
        components: strings("components"),
        targets: strings("targets"),
    })
}

/// Output of a rustup-proxied tool run in the workspace with the outer cargo's environment
/// removed (so the pinned toolchain answers).
pub fn tool_output(program: &str, args: &[&str]) -> Result<String> {
    let mut cmd: Command = qemu::cargo::tool_command(program);
    let out = cmd
        .args(args)
        .output()
        .with_context(|| format!("cannot run {program}"))?;
    if !out.status.success() {
        anyhow::bail!(
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

    const FILE: &str = r#"[toolchain]
channel = "nightly-2026-05-20"
components = ["rust-src", "llvm-tools", "clippy", "rustfmt"]
targets = [
    "x86_64-unknown-none",
    "aarch64-unknown-none-softfloat",
]
profile = "minimal"
"#;

    #[test]
    fn parses_the_toolchain_file() {
        let p = parse(FILE).unwrap();
        assert_eq!(p.channel, "nightly-2026-05-20");
        assert_eq!(
            p.components,
            ["rust-src", "llvm-tools", "clippy", "rustfmt"]
        );
        assert_eq!(
            p.targets,
            ["x86_64-unknown-none", "aarch64-unknown-none-softfloat"]
        );
        assert_eq!(parse("[toolchain]\n"), None);
    }

    #[test]
    fn the_real_toolchain_file_parses() {
        let p = pinned().unwrap();
        assert!(p.channel.starts_with("nightly-"));
        assert!(p.components.iter().any(|c| c == "rust-src"));
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
