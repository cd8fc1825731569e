//! `run` and `gdb`: build, then replace this process with QEMU on the terminal (console
//! muxed with the HMP monitor, QMP on a socket), so the exit status is QEMU's own.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;

use anyhow::{Context, Result};
use qemu::accel::{self, Accel, AccelChoice};
use qemu::arch::BootPath;
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
        false => accel::resolve(args.accel, args.arch)?,
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
    let mut cmd = profile::command(&profile, &opts)?;
    let _ = std::fs::remove_file(&qmp);
    println!("$ {}", cmdline::render(&cmd));
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
    let err = cmd.exec();
    Err(err).context("could not exec QEMU")
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
