//! `cargo xtask linux --arch A [run's options]`: a stock Debian Linux kernel in the very
//! QEMU machine `cargo xtask run` starts (same profile, memory, devices, firmware, extra
//! arguments), with an initramfs of our own whose /init prints `linux...` key=value
//! records and answers `dump`, `online`, `dmesg` and `poweroff` on the console. QMP is on
//! the same socket as `run`'s, so `cargo xtask qmp --arch A ...` hot-adds into it.
//!
//! - [`kit`]: the Debian packages (private apt lists) and the initramfs;
//! - [`modules`]: module dependencies from `.modinfo`; [`cpio`]: the newc writer;
//! - [`guest`]: the driver `compare` and `bench --vs-linux` use on a piped console;
//!   [`online`]: the hot-add watch the benchmark times.

pub mod cpio;
pub mod guest;
pub mod kit;
pub mod modules;
pub mod online;

use std::os::unix::process::CommandExt;

use anyhow::{Context, Result, bail};
use clap::Parser;
use qemu::accel::{self, AccelChoice};
use qemu::linux::DirectLinux;
use qemu::{Arch, BootImage, ConsoleMode, Profile, RunOptions, cmdline, profile};

/// `cargo xtask linux` options: those of `run`, plus `--fetch-only`.
#[derive(Parser)]
pub struct Args {
    #[arg(long)]
    pub arch: Arch,
    /// auto (KVM when usable), kvm or tcg.
    #[arg(long, default_value = "auto")]
    pub accel: AccelChoice,
    /// aarch64: describe the machine with a device tree instead of ACPI (`acpi=off`).
    #[arg(long)]
    pub fdt: bool,
    /// Room for memory hotplug: maxmem, DIMM slots, nvdimm=on, and virtio-mem `vm0`.
    #[arg(long)]
    pub hotplug: bool,
    /// Added to Linux's command line (after the console argument).
    #[arg(long)]
    pub append: Option<String>,
    /// Only fetch the packages and build the initramfs; print where they are.
    #[arg(long)]
    pub fetch_only: bool,
    /// Extra QEMU arguments, after `--`.
    #[arg(last = true)]
    pub qemu_args: Vec<String>,
}

pub fn run(args: Args) -> Result<()> {
    crate::setup::ensure(&[args.arch])?;
    let kit = kit::prepare(args.arch)?;
    println!(
        "linux: kernel={} version={} initrd={}",
        kit.kernel.display(),
        kit.version,
        kit.initrd.display()
    );
    println!(
        "linux: modules loaded={} builtin={} absent={}",
        names(kit.modules.load.iter().map(|m| m.name.as_str())),
        names(kit.modules.builtin.iter().map(String::as_str)),
        names(kit.modules.absent.iter().map(String::as_str)),
    );
    if args.fetch_only {
        return Ok(());
    }
    let mut profile = Profile::new(args.arch);
    if args.fdt {
        if args.arch != Arch::Aarch64 {
            bail!("--fdt is for aarch64 (x86_64 boots with ACPI, s390x with SCLP)");
        }
        profile = profile.with_device_tree();
    }
    if args.hotplug {
        profile = profile.with_hotplug();
    }
    let image = BootImage {
        arch: args.arch,
        kernel: kit.kernel.clone(),
        esp: None,
        loader: None,
    };
    let qmp = crate::run::qmp_socket(args.arch);
    let mut opts = RunOptions::new(image);
    opts.linux = Some(DirectLinux {
        kernel: kit.kernel.clone(),
        initrd: kit.initrd.clone(),
    });
    opts.append = Some(kit.cmdline(args.append.as_deref()));
    // `auto` means TCG here: the KVM probe (qemu::kvm) proves KVM with our image, not with
    // Linux; `--accel kvm` is taken as asked.
    let choice = match args.accel {
        AccelChoice::Auto => AccelChoice::Tcg,
        other => other,
    };
    opts.accel = accel::resolve(choice, &opts.image)?;
    opts.console = ConsoleMode::Interactive;
    opts.qmp = Some(qmp.clone());
    opts.extra_args = args.qemu_args;
    opts.console_log = Some(crate::run::console_log(args.arch));
    let mut cmd = profile::command(&profile, &opts)?;
    let _ = std::fs::remove_file(&qmp);
    println!("$ {}", cmdline::render(&cmd));
    println!("QMP socket: {}", qmp.display());
    println!(
        "Console commands once `linux: ready` shows: dump | online | dmesg | poweroff. \
         Ctrl-A c toggles the QEMU monitor, Ctrl-A x quits."
    );
    let err = cmd.exec();
    Err(err).context("could not exec QEMU")
}

fn names<'a>(list: impl Iterator<Item = &'a str>) -> String {
    let all: Vec<&str> = list.collect();
    if all.is_empty() {
        "-".to_string()
    } else {
        all.join(",")
    }
}
