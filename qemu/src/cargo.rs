//! Building the kernels: the workspace location, cargo commands cleaned of the outer
//! cargo's environment (one for host crates on the caller's toolchain, one for the target
//! builds on the pinned toolchain), and the per-arch build (plus the ESP for UEFI ports).
//!
//! xtask and the integration tests both call [`build`], so `cargo xtask build` and a bare
//! `cargo test -p tests` produce the same files.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::arch::{Arch, BootKind, UefiLoader};
use crate::esp::{Esp, EspSpec, LoaderKind};

/// What a build produced for one arch.
#[derive(Clone, Debug)]
pub struct BootImage {
    pub arch: Arch,
    /// The kernel ELF (also what gdb loads symbols from).
    pub kernel: PathBuf,
    /// The ESP directory handed to QEMU as `fat:rw:` (UEFI ports only).
    pub esp: Option<PathBuf>,
    /// Which loader the ESP boots (UEFI ports only).
    pub loader: Option<LoaderKind>,
}

/// Root of the cargo workspace (the parent of this crate's manifest directory).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Cargo's target directory: `$CARGO_TARGET_DIR` if set, else `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => workspace_root().join(dir),
        _ => workspace_root().join("target"),
    }
}

/// `cargo` for host crates (tests, tools): through the rustup proxy, run in the workspace,
/// without the variables an outer `cargo run`/`cargo test` leaves behind, on the toolchain
/// the outer cargo ran with (`RUSTUP_TOOLCHAIN` is kept; else rustup's default).
pub fn cargo_command() -> Command {
    tool_command("cargo")
}

/// Like [`cargo_command`] for any rustup-proxied tool (`rustc`, `rustup`, ...).
pub fn tool_command(tool: &str) -> Command {
    let mut cmd = Command::new(rustup_proxy(tool));
    cmd.current_dir(workspace_root());
    for (key, _) in std::env::vars_os() {
        if !keep_for_inner_cargo(&key) {
            cmd.env_remove(&key);
        }
    }
    cmd
}

/// `cargo` on the pinned toolchain (`kernel-toolchain.toml`): kernel, loader and fuzz
/// builds and the lint. rustup does not install it on demand (`RUSTUP_AUTO_INSTALL=0` on
/// machines of our kind): `cargo xtask` installs it first (`xtask/src/toolchain.rs`).
pub fn kernel_cargo_command() -> Command {
    kernel_tool_command("cargo")
}

/// Like [`kernel_cargo_command`] for any rustup-proxied tool.
pub fn kernel_tool_command(tool: &str) -> Command {
    let mut cmd = tool_command(tool);
    cmd.env("RUSTUP_TOOLCHAIN", crate::toolchain::channel());
    cmd
}

/// Builds the kernel (and, for UEFI ports, the loader and ESP) of `arch`; the ESP takes
/// Limine's loader when one is installed (see [`crate::esp::find_limine`]).
pub fn build(arch: Arch, release: bool) -> Result<BootImage> {
    build_with(arch, release, None)
}

/// Like [`build`], with an explicit Limine data directory (`--limine DIR`).
pub fn build_with(arch: Arch, release: bool, limine: Option<&Path>) -> Result<BootImage> {
    let workspace = workspace_root();
    arch.ensure_ported(&workspace)?;
    let target = target_dir();
    let mut cmd = kernel_cargo_command();
    cmd.arg("build").args(arch.kernel_build_args());
    cmd.arg("--target-dir").arg(&target);
    if release {
        cmd.arg("--release");
    }
    run(&mut cmd).with_context(|| {
        format!(
            "building the {arch} kernel with {} (`cargo xtask doctor` checks the toolchain)",
            crate::toolchain::channel()
        )
    })?;
    let kernel = arch.kernel_path(&target, release);
    if !kernel.is_file() {
        bail!("cargo succeeded but {} does not exist", kernel.display());
    }
    let (esp, loader) = match arch.boot_kind() {
        BootKind::DirectKernel => (None, None),
        BootKind::Uefi(loader) => {
            let esp = build_esp(arch, loader, &kernel, release, limine)?;
            (Some(esp.dir), Some(esp.loader))
        }
    };
    Ok(BootImage {
        arch,
        kernel,
        esp,
        loader,
    })
}

/// Builds the UEFI loader and lays out `target/esp/<arch>/` with the loader, kernel and
/// `limine.conf` (DESIGN.md §4).
fn build_esp(
    arch: Arch,
    loader: UefiLoader,
    kernel: &Path,
    release: bool,
    limine: Option<&Path>,
) -> Result<Esp> {
    let workspace = workspace_root();
    for needed in ["boot/Cargo.toml", "boot/limine.conf"] {
        if !workspace.join(needed).is_file() {
            bail!("{needed} not written yet (the {arch} ESP needs it)");
        }
    }
    let target = target_dir();
    let mut cmd = kernel_cargo_command();
    cmd.args(["build", "-p", loader.crate_name, "--bin", loader.crate_name]);
    cmd.args(["--target", loader.triple]);
    cmd.arg("--target-dir").arg(&target);
    if release {
        cmd.arg("--release");
    }
    run(&mut cmd).context("building the UEFI loader")?;
    let profile = if release { "release" } else { "debug" };
    let efi = target
        .join(loader.triple)
        .join(profile)
        .join(format!("{}.efi", loader.crate_name));
    let spec = EspSpec {
        efi_name: loader.efi_name,
        our_loader: &efi,
        kernel,
        conf: &workspace.join("boot/limine.conf"),
        limine_dir: limine,
    };
    crate::esp::build_esp(&target.join("esp").join(arch.name()), &spec)
}

fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("starting {:?}", cmd.get_program()))?;
    if !status.success() {
        bail!("{} failed with {status}", crate::cmdline::render(cmd));
    }
    Ok(())
}

/// The rustup proxy in `$CARGO_HOME/bin` when it exists, else `tool` from `PATH`.
fn rustup_proxy(tool: &str) -> PathBuf {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    match home.map(|h| h.join("bin").join(tool)) {
        Some(proxy) if proxy.is_file() => proxy,
        _ => PathBuf::from(tool),
    }
}

/// Hermit's `sanitize()`, narrowed: drop what the outer cargo and rustup set for *their*
/// build (package metadata, target, flags), keep user settings that only describe the
/// machine (homes, network, terminal) and the toolchain the outer cargo ran with (kernel
/// commands override it with the pin).
fn keep_for_inner_cargo(key: &OsString) -> bool {
    let Some(key) = key.to_str() else {
        return true;
    };
    const KEEP: [&str; 9] = [
        "CARGO_HOME",
        "CARGO_TERM_",
        "CARGO_NET_",
        "CARGO_HTTP_",
        "CARGO_REGISTRIES_",
        "CARGO_REGISTRY_",
        "RUSTUP_HOME",
        "RUSTUP_AUTO_INSTALL",
        "RUSTUP_TOOLCHAIN",
    ];
    if KEEP
        .iter()
        .any(|k| key == *k || (k.ends_with('_') && key.starts_with(k)))
    {
        return true;
    }
    let drop = key.starts_with("CARGO")
        || key.starts_with("__CARGO")
        || key.starts_with("RUSTC")
        || key.starts_with("RUSTDOC")
        || key.starts_with("RUSTFLAGS")
        || key.starts_with("RUSTUP_")
        || key == "RUST_RECURSION_COUNT"
        || key == "LD_LIBRARY_PATH";
    !drop
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keep(key: &str) -> bool {
        keep_for_inner_cargo(&OsString::from(key))
    }

    #[test]
    fn sanitizes_outer_cargo_environment() {
        for dropped in [
            "CARGO",
            "CARGO_MANIFEST_DIR",
            "CARGO_PKG_NAME",
            "CARGO_BUILD_TARGET",
            "CARGO_ENCODED_RUSTFLAGS",
            "CARGO_TARGET_DIR",
            "RUSTFLAGS",
            "RUSTC",
            "RUSTC_WRAPPER",
            "RUSTDOCFLAGS",
            "RUSTUP_TOOLCHAIN_SOURCE",
            "RUST_RECURSION_COUNT",
            "LD_LIBRARY_PATH",
        ] {
            assert!(!keep(dropped), "{dropped} should be removed");
        }
        for kept in [
            "PATH",
            "HOME",
            "CARGO_HOME",
            "RUSTUP_HOME",
            "RUSTUP_AUTO_INSTALL",
            "RUSTUP_TOOLCHAIN",
            "CARGO_TERM_COLOR",
            "CARGO_NET_OFFLINE",
            "RUST_BACKTRACE",
        ] {
            assert!(keep(kept), "{kept} should be kept");
        }
    }

    #[test]
    fn kernel_builds_select_the_pinned_toolchain() {
        let cmd = kernel_cargo_command();
        let pin = cmd
            .get_envs()
            .find(|(k, _)| *k == "RUSTUP_TOOLCHAIN")
            .and_then(|(_, v)| v);
        assert_eq!(pin, Some(std::ffi::OsStr::new(crate::toolchain::channel())));
        let host = cargo_command();
        assert!(
            !host
                .get_envs()
                .any(|(k, v)| k == "RUSTUP_TOOLCHAIN" && v.is_some()),
            "host commands keep the caller's toolchain"
        );
    }

    #[test]
    fn workspace_root_has_the_workspace_manifest() {
        assert!(workspace_root().join("Cargo.toml").is_file());
        assert!(workspace_root().join("qemu").is_dir());
    }
}
