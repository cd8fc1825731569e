//! `cargo xtask soak --arch A --cycles N [--seed S] [--debug]`: hot-add and hot-remove
//! memory of random sizes through QMP for N cycles (pc-dimm and virtio-mem on x86_64 and
//! aarch64, virtio-mem on s390x), holding the kernel's counters against their values at
//! boot and its hotplug view against QEMU's `query-memory-devices` after every step.
//! The first drift stops the soak with the cycle number and both views; the exit status
//! is then non-zero. The cycles themselves live in `qemu::soak`.
//!
//! Release kernels by default: their onlining is several times faster under TCG, and the
//! counters compared are the same in both profiles.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use qemu::soak::{self, Options, Verdict};
use qemu::{Arch, BootImage};

/// `cargo xtask soak` options.
#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    pub arch: Arch,
    #[arg(long, default_value_t = 50)]
    pub cycles: u32,
    /// Replay a soak: the seed its first line printed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Use the debug kernel instead of the release one.
    #[arg(long)]
    pub debug: bool,
    /// Kernel command line (e.g. `hotplug.notify=poll`).
    #[arg(long)]
    pub append: Option<String>,
    /// Hot-add DIMMs with the vCPUs stopped (keeps the guest out of a QEMU TCG race that
    /// the kernel otherwise rides out with config re-reads; see docs/tooling.md).
    #[arg(long)]
    pub pause: bool,
    /// Large sizes: pc-dimms up to 64 GiB and a 64 GiB virtio-mem device, on
    /// `reserve=off` backends (the host backs only the memmap the guest writes).
    #[arg(long)]
    pub large: bool,
    /// limine or direct (default: direct on x86_64 and s390x, limine on aarch64, whose
    /// pc-dimm hotplug needs the firmware's GED).
    #[arg(long)]
    pub boot: Option<qemu::arch::BootPath>,
    /// Extra QEMU arguments, after `--`.
    #[arg(last = true)]
    pub qemu_args: Vec<String>,
}

pub fn run(args: Args) -> Result<()> {
    let boot = args.boot.unwrap_or_else(|| soak::default_boot(args.arch));
    soak::check_boot(args.arch, boot)?;
    crate::setup::ensure(&[args.arch])?;
    let release = !args.debug;
    let image = private_esp(qemu::build(args.arch, release)?)?;
    let seed = args.seed.unwrap_or_else(soak::random_seed);
    let dir = qemu::cargo::target_dir().join("soak");
    std::fs::create_dir_all(&dir)?;
    let log = dir.join(format!("{}.console.log", args.arch));
    println!(
        "soak: arch={} boot={boot} cycles={} seed={seed} kernel={} (replay with --seed {seed}{}) console log {}",
        args.arch,
        args.cycles,
        if release { "release" } else { "debug" },
        if release { "" } else { " --debug" },
        log.display()
    );
    let mut opts = Options::new(args.cycles, seed);
    opts.append = args.append;
    opts.qemu_args = args.qemu_args;
    opts.console_log = Some(log.clone());
    opts.pause_for_dimms = args.pause;
    opts.large = args.large;
    opts.boot = args.boot;
    let started = Instant::now();
    let mut progress = |line: &str| {
        println!("{line}");
        let _ = std::io::stdout().flush();
    };
    match soak::run(image, &opts, &mut progress)? {
        Verdict::Clean(summary) => {
            println!("soak: counters at start: {}", summary.start.line());
            println!("soak: counters at end:   {}", summary.last.line());
            println!("{summary}");
            Ok(())
        }
        Verdict::Drift(stopped) => {
            println!("{stopped}");
            println!("soak: console log {}", log.display());
            bail!(
                "soak: drift at cycle {} after {:.1} s (seed {seed})",
                stopped.cycle,
                started.elapsed().as_secs_f64()
            )
        }
    }
}

/// A copy of the ESP under `target/soak/esp/<arch>/` with this build's kernel, so a test
/// or build running beside the soak cannot swap the kernel under it.
fn private_esp(mut image: BootImage) -> Result<BootImage> {
    let Some(esp) = image.esp.clone() else {
        return Ok(image);
    };
    let dir = qemu::cargo::target_dir()
        .join("soak")
        .join("esp")
        .join(image.arch.name());
    let _ = std::fs::remove_dir_all(&dir);
    copy_tree(&esp, &dir).with_context(|| format!("copying {}", esp.display()))?;
    std::fs::copy(&image.kernel, dir.join("boot/kernel"))
        .with_context(|| format!("copying {}", image.kernel.display()))?;
    image.esp = Some(dir);
    Ok(image)
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target: PathBuf = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}
