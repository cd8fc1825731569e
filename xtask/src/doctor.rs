//! `cargo xtask doctor`: every host prerequisite with OK / MISSING / INFO and, for anything
//! missing, the exact command that fixes it. Exits non-zero when something required is
//! missing.

use anyhow::{Result, bail};
use qemu::accel::kvm_status;
use qemu::arch::BootKind;
use qemu::{Arch, BootImage};

use crate::setup::{self, install_commands};
use crate::toolchain;

/// One report line.
struct Item {
    status: Status,
    what: String,
    fix: Option<String>,
}

#[derive(PartialEq, Eq)]
enum Status {
    Ok,
    Missing,
    /// Optional or informational: never fails doctor.
    Info,
}

pub fn run() -> Result<()> {
    let mut items = Vec::new();
    host_items(&mut items);
    toolchain_items(&mut items);
    other_items(&mut items);
    for item in &items {
        let tag = match item.status {
            Status::Ok => "OK     ",
            Status::Missing => "MISSING",
            Status::Info => "INFO   ",
        };
        println!("{tag} {}", item.what);
        if let (Some(fix), false) = (&item.fix, item.status == Status::Ok) {
            for (i, line) in fix.lines().enumerate() {
                let label = if i == 0 { "fix:" } else { "    " };
                println!("        {label} {line}");
            }
        }
    }
    let missing = items.iter().filter(|i| i.status == Status::Missing).count();
    if missing > 0 {
        bail!("{missing} prerequisite(s) missing");
    }
    println!("all prerequisites present");
    Ok(())
}

fn host_items(items: &mut Vec<Item>) {
    for arch in Arch::ALL {
        for check in setup::checks(arch) {
            let (status, what) = match check.problem {
                None => (Status::Ok, check.what),
                Some(why) => (Status::Missing, format!("{}: {why}", check.what)),
            };
            let fix = Some(install_commands(&[check.package]).join("\n"));
            items.push(Item { status, what, fix });
        }
    }
}

fn toolchain_items(items: &mut Vec<Item>) {
    let host = qemu::cargo::tool_command("rustc").arg("-V").output();
    let what = match host {
        Ok(out) if out.status.success() => format!(
            "host crates (xtask, qemu, tests, host tests) build with {}",
            String::from_utf8_lossy(&out.stdout).trim()
        ),
        _ => "host rustc not found".to_string(),
    };
    items.push(Item {
        status: Status::Info,
        what,
        fix: None,
    });
    for check in toolchain::checks() {
        let (status, what) = match check.problem {
            None => (Status::Ok, check.what),
            Some(why) => (Status::Missing, format!("{}: {why}", check.what)),
        };
        let fix = Some(check.fix);
        items.push(Item { status, what, fix });
    }
}

fn other_items(items: &mut Vec<Item>) {
    for arch in Arch::ALL.into_iter().filter(|a| a.is_host_arch()) {
        let status = kvm_status(arch, built_image(arch).as_ref());
        let what = format!("KVM for {arch}: {status} (TCG is used otherwise)");
        items.push(Item {
            status: Status::Info,
            what,
            fix: None,
        });
    }
    let gdb = std::process::Command::new("gdb-multiarch")
        .arg("--version")
        .output();
    let (status, what) = match gdb {
        Ok(out) if out.status.success() => (Status::Ok, "gdb-multiarch (for `cargo xtask gdb`)"),
        _ => (
            Status::Info,
            "gdb-multiarch not found (optional, for `cargo xtask gdb`)",
        ),
    };
    let fix = Some("apt-get install -y gdb-multiarch".to_string());
    items.push(Item {
        status,
        what: what.to_string(),
        fix,
    });
    let root = qemu::cargo::workspace_root();
    for arch in Arch::ALL {
        let what = match arch.ensure_ported(&root) {
            Ok(()) => format!("{arch} port present"),
            Err(e) => format!("{e} (skipped by `cargo xtask test`)"),
        };
        items.push(Item {
            status: Status::Info,
            what,
            fix: None,
        });
    }
}

/// The debug image of `arch` as the last build left it, for the KVM probe (doctor builds
/// nothing).
fn built_image(arch: Arch) -> Option<BootImage> {
    let target = qemu::cargo::target_dir();
    let kernel = arch.kernel_path(&target, false);
    let esp = match arch.boot_kind() {
        BootKind::Uefi(_) => Some(target.join("esp").join(arch.name())),
        BootKind::DirectKernel => None,
    };
    let complete = kernel.is_file() && esp.as_ref().is_none_or(|e| e.join("boot/kernel").is_file());
    complete.then_some(BootImage {
        arch,
        kernel,
        esp,
        loader: None,
    })
}
