//! The pinned kernel toolchain: `kernel-toolchain.toml` at the workspace root, embedded at
//! compile time, so xtask, doctor, the kernel builds of the integration tests and the
//! README (checked by a test in xtask) all read one file.
//!
//! Host crates (xtask, this crate, the tests, the host tests of the kernel library) build on
//! whatever toolchain runs `cargo` (the machine's stable is enough); only the target builds
//! select the pin, through `RUSTUP_TOOLCHAIN` (see [`crate::cargo::kernel_cargo_command`]).

use std::sync::OnceLock;

/// The file, as committed.
pub const FILE: &str = include_str!("../../kernel-toolchain.toml");

/// The file's name at the workspace root, for messages.
pub const FILE_NAME: &str = "kernel-toolchain.toml";

/// What the pin asks rustup for.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pinned {
    /// e.g. `nightly-2026-05-20`.
    pub channel: String,
    pub components: Vec<String>,
    pub targets: Vec<String>,
}

impl Pinned {
    /// The one rustup command that installs the toolchain with everything it needs (it also
    /// adds missing components and targets to an installed toolchain).
    pub fn install_args(&self) -> Vec<String> {
        let mut args: Vec<String> = [
            "toolchain",
            "install",
            &self.channel,
            "--profile",
            "minimal",
        ]
        .map(String::from)
        .to_vec();
        if !self.components.is_empty() {
            args.extend(["--component".to_string(), self.components.join(",")]);
        }
        if !self.targets.is_empty() {
            args.extend(["--target".to_string(), self.targets.join(",")]);
        }
        args
    }

    /// [`Pinned::install_args`] as a shell line.
    pub fn install_command(&self) -> String {
        format!("rustup {}", self.install_args().join(" "))
    }
}

/// The pin (parsed once). The file is part of the source: a unit test proves it parses.
pub fn pinned() -> &'static Pinned {
    static PINNED: OnceLock<Pinned> = OnceLock::new();
    PINNED.get_or_init(|| parse(FILE).unwrap_or_default())
}

/// The pinned channel, e.g. `nightly-2026-05-20`.
pub fn channel() -> &'static str {
    &pinned().channel
}

/// Parses `channel = "..."` and the `components` / `targets` arrays (possibly multi-line) of
/// a rust-toolchain-style `[toolchain]` table, with a few lines instead of a TOML crate.
pub fn parse(text: &str) -> Option<Pinned> {
    let strings = |key: &str| -> Vec<String> {
        let mut lines = text.lines().filter(|l| !l.trim_start().starts_with('#'));
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

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"# a comment with channel = "not-this"
[toolchain]
channel = "nightly-2026-05-20"
components = ["rust-src", "llvm-tools", "clippy", "rustfmt"]
targets = [
    "x86_64-unknown-none",
    "aarch64-unknown-none-softfloat",
]
profile = "minimal"
"#;

    #[test]
    fn parses_the_toolchain_table() {
        let p = parse(SAMPLE).unwrap();
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
    fn the_committed_pin_parses_and_has_what_the_builds_need() {
        let p = parse(FILE).expect("kernel-toolchain.toml has a channel");
        assert_eq!(pinned(), &p);
        assert!(
            p.channel.starts_with("nightly-"),
            "-Zbuild-std needs a nightly"
        );
        for c in ["rust-src", "llvm-tools", "clippy", "rustfmt"] {
            assert!(p.components.iter().any(|x| x == c), "{c} missing");
        }
        for arch in crate::Arch::ALL {
            if let crate::arch::BootKind::Uefi(loader) = arch.boot_kind() {
                assert!(p.targets.iter().any(|t| t == loader.triple));
                assert!(p.targets.iter().any(|t| t == arch.triple()));
            }
        }
    }

    #[test]
    fn one_install_command_brings_everything() {
        let p = parse(SAMPLE).unwrap();
        assert_eq!(
            p.install_command(),
            "rustup toolchain install nightly-2026-05-20 --profile minimal \
             --component rust-src,llvm-tools,clippy,rustfmt \
             --target x86_64-unknown-none,aarch64-unknown-none-softfloat"
        );
    }
}
