//! `cargo xtask lint`: rustfmt and clippy (`-D warnings`) over the host crates and over
//! every ported kernel and UEFI loader on its own target, so target-only code is linted too.
//! All of it runs on the pinned toolchain (`kernel-toolchain.toml`, installed first when
//! missing): one rustfmt and one clippy give the same verdict on every machine, whatever
//! the machine's own toolchain has.

use anyhow::{Result, bail};
use qemu::Arch;
use qemu::arch::BootKind;

use crate::pipeline::kernel_cargo;

pub fn run() -> Result<()> {
    crate::toolchain::ensure()?;
    let root = qemu::cargo::workspace_root();
    let mut failed = Vec::new();
    let mut check = |name: String, args: Vec<&str>| {
        println!("==> {name}");
        if let Err(e) = kernel_cargo(&args) {
            eprintln!("xtask: {name} failed: {e:#}");
            failed.push(name);
        }
    };
    check("rustfmt".into(), vec!["fmt", "--all", "--check"]);
    check(
        "clippy (host)".into(),
        vec![
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    );
    // The fuzz crate has a workspace of its own (the root manifest `exclude`s it), so
    // `--all` and `--workspace` miss it; libFuzzer's build script needs a C++ compiler.
    let fuzz = "fuzz/Cargo.toml";
    check(
        "rustfmt (fuzz)".into(),
        vec!["fmt", "--manifest-path", fuzz, "--check"],
    );
    if let Err(e) = crate::fuzz::ensure_cxx() {
        eprintln!("xtask: {e:#}");
    }
    check(
        "clippy (fuzz)".into(),
        vec![
            "clippy",
            "--manifest-path",
            fuzz,
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    );
    for arch in Arch::ALL.into_iter().filter(|a| a.is_ported(&root)) {
        let mut args = vec!["clippy"];
        args.extend(arch.kernel_build_args());
        args.extend(["--", "-D", "warnings"]);
        check(format!("clippy ({arch} kernel)"), args);
        if let BootKind::Uefi(loader) = arch.boot_kind() {
            let args = vec![
                "clippy",
                "-p",
                loader.crate_name,
                "--bin",
                loader.crate_name,
                "--target",
                loader.triple,
                "--",
                "-D",
                "warnings",
            ];
            check(format!("clippy ({arch} loader)"), args);
        }
    }
    if !failed.is_empty() {
        bail!("lint failed: {}", failed.join(", "));
    }
    println!("lint: clean");
    Ok(())
}
