//! `cargo xtask`: build, run, test, doctor and gdb for the hotmem kernels.
//!
//! The heavy lifting (arch table, QEMU profiles, launcher) lives in the `qemu` crate, shared
//! with the integration tests; this binary is the command line and the host set-up.

mod apt;
mod bench;
mod bench_linux;
mod bench_plot;
mod bench_vs_table;
mod compare;
mod compare_table;
mod doctor;
mod fuzz;
mod lint;
mod linux;
mod pipeline;
mod qmp_cmd;
mod run;
mod seed;
mod setup;
mod soak;
mod toolchain;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use qemu::arch::BootPath;
use qemu::{AccelChoice, Arch};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Build, run and test the hotmem kernels in QEMU"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build one arch's kernel (and its UEFI loader and ESP, where the port boots that way).
    Build {
        /// x86_64, aarch64 or s390x.
        #[arg(long)]
        arch: Arch,
        #[arg(long)]
        release: bool,
    },
    /// Build the boot image: the ESP directory (and a BIOS/UEFI ISO when Limine's CD files
    /// and xorriso exist) for UEFI ports, the kernel ELF for s390x.
    Image {
        #[arg(long)]
        arch: Arch,
        #[arg(long)]
        release: bool,
        /// Limine data directory whose BOOT*.EFI replaces our loader.
        #[arg(long)]
        limine: Option<PathBuf>,
    },
    /// Boot one arch interactively: console on this terminal, HMP monitor on Ctrl-A c.
    Run {
        #[arg(long)]
        arch: Arch,
        /// Limine data directory whose BOOT*.EFI replaces our loader.
        #[arg(long)]
        limine: Option<PathBuf>,
        /// auto (KVM when usable), kvm or tcg.
        #[arg(long, default_value = "auto")]
        accel: AccelChoice,
        /// aarch64: describe the machine with a device tree instead of ACPI (`acpi=off`).
        #[arg(long)]
        fdt: bool,
        /// limine (UEFI firmware + the Limine-protocol loader; the default on x86_64 and
        /// aarch64) or direct (QEMU -kernel: PVH on x86_64, arm64 Image + DTB on aarch64,
        /// IPL on s390x).
        #[arg(long)]
        boot: Option<BootPath>,
        /// Room for memory hotplug: maxmem, DIMM slots, nvdimm=on, and virtio-mem `vm0`.
        #[arg(long)]
        hotplug: bool,
        /// Kernel command line.
        #[arg(long)]
        append: Option<String>,
        #[arg(long)]
        release: bool,
        /// Extra QEMU arguments, after `--`.
        #[arg(last = true)]
        qemu_args: Vec<String>,
    },
    /// Host tests, kernel builds, then the QEMU tests, for every ported arch (or one).
    Test {
        #[arg(long)]
        arch: Option<Arch>,
        #[arg(long)]
        release: bool,
        /// Boot every QEMU test that can take it this way (default: each test's own
        /// choice: direct, except the tests of the loader and of firmware ACPI).
        #[arg(long)]
        boot: Option<BootPath>,
    },
    /// Run each cargo-fuzz target (NFIT, memmap=/cmdline, limine.conf, region carving, mm
    /// sequences) for N seconds; a crash fails, naming its artifact.
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        /// Only this target (repeatable); all when omitted.
        #[arg(long)]
        target: Vec<String>,
    },
    /// Check QEMU, devices, firmware, toolchain and KVM; print fixes.
    Doctor,
    /// Boot a stock Debian Linux in the machine `run` would start; /init prints records.
    Linux(linux::Args),
    /// The same NVDIMM / pc-dimm / virtio-mem scenario on Linux and on our kernel: one
    /// table of figures; fails on any difference not documented in docs/linux-compare.md.
    Compare(compare::Args),
    /// Boot times and the in-kernel memmap benchmark per arch: tables, JSON, SVG plots.
    Bench {
        #[arg(long)]
        arch: Option<Arch>,
        /// Region sizes up to 1 GiB and two boots per arch (a few minutes in all).
        #[arg(long)]
        quick: bool,
        /// Only the large hot-add sizes (1 to 256 GiB; 1 and 8 GiB with --quick).
        #[arg(long)]
        scale_only: bool,
        /// Time only this boot path (default: both where the arch has both; the in-kernel
        /// benchmark runs on the direct path unless this says limine).
        #[arg(long)]
        boot: Option<BootPath>,
        /// Also take the same hot-add steps (pc-dimm, virtio-mem; 128 MiB and 1 GiB) on the
        /// stock Linux guest of `cargo xtask linux` in the same machine, five runs a size on
        /// each side, and print ours, Linux's and the ratio per row.
        #[arg(long)]
        vs_linux: bool,
    },
    /// Hot-add / hot-remove memory in the VM of `run --hotplug` (through its QMP socket).
    Qmp {
        #[arg(long)]
        arch: Arch,
        #[command(subcommand)]
        action: qmp_cmd::Action,
    },
    /// Hot-add and hot-remove random sizes through QMP for N cycles; any drift of the
    /// kernel's counters or of its view against QEMU's stops it (non-zero exit).
    Soak(soak::Args),
    /// rustfmt --check and clippy -D warnings, on the host and on every kernel target.
    Lint,
    /// Like run, but stopped at the first instruction with a gdb stub on :1234 (TCG).
    Gdb {
        #[arg(long)]
        arch: Arch,
        /// aarch64: describe the machine with a device tree instead of ACPI (`acpi=off`).
        #[arg(long)]
        fdt: bool,
        /// limine or direct (as for run).
        #[arg(long)]
        boot: Option<BootPath>,
        #[arg(long)]
        append: Option<String>,
        #[arg(long)]
        release: bool,
        #[arg(last = true)]
        qemu_args: Vec<String>,
    },
}

/// Errors are printed as one `error:` line with their causes (no backtrace dump).
fn main() -> ExitCode {
    match dispatch(Cli::parse().command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(command: Cmd) -> Result<()> {
    match command {
        Cmd::Build { arch, release } => {
            toolchain::ensure()?;
            let image = qemu::build(arch, release)?;
            println!("{}", image.kernel.display());
            if let Some(esp) = image.esp {
                println!("{}", esp.display());
            }
            Ok(())
        }
        Cmd::Image {
            arch,
            release,
            limine,
        } => image(arch, release, limine),
        Cmd::Run {
            arch,
            limine,
            accel,
            fdt,
            boot,
            hotplug,
            append,
            release,
            qemu_args,
        } => {
            let gdb = false;
            run::run(run::Interactive {
                arch,
                limine,
                fdt,
                boot,
                hotplug,
                accel,
                append,
                release,
                gdb,
                qemu_args,
            })
        }
        Cmd::Test {
            arch,
            release,
            boot,
        } => pipeline::run(arch, release, boot),
        Cmd::Fuzz { seconds, target } => fuzz::run(seconds, &target),
        Cmd::Doctor => doctor::run(),
        Cmd::Linux(args) => linux::run(args),
        Cmd::Compare(args) => compare::run(args),
        Cmd::Bench {
            arch,
            quick,
            scale_only,
            boot,
            vs_linux,
        } => bench::run(arch, quick, boot, scale_only, vs_linux),
        Cmd::Qmp { arch, action } => qmp_cmd::run(arch, action),
        Cmd::Soak(args) => soak::run(args),
        Cmd::Lint => lint::run(),
        Cmd::Gdb {
            arch,
            fdt,
            boot,
            append,
            release,
            qemu_args,
        } => {
            let accel = AccelChoice::Tcg;
            let gdb = true;
            run::run(run::Interactive {
                arch,
                limine: None,
                fdt,
                boot,
                hotplug: false,
                accel,
                append,
                release,
                gdb,
                qemu_args,
            })
        }
    }
}

/// `image`: build, lay out the ESP, and try the ISO when Limine is the loader.
fn image(arch: Arch, release: bool, limine: Option<PathBuf>) -> Result<()> {
    toolchain::ensure()?;
    let image = qemu::build_with(arch, release, limine.as_deref())?;
    println!("kernel: {}", image.kernel.display());
    if let (Some(esp), Some(loader)) = (&image.esp, &image.loader) {
        println!(
            "esp: {} (QEMU: -drive format=raw,file=fat:rw:<esp>)",
            esp.display()
        );
        println!("{}", loader.describe());
        if let qemu::esp::LoaderKind::Limine(dir) = loader {
            let iso = qemu::cargo::target_dir().join(format!("hotmem-{arch}.iso"));
            match qemu::esp::build_iso(dir, esp, &iso)? {
                Some(iso) => println!("iso: {}", iso.display()),
                None => println!("iso: skipped (needs limine-bios-cd.bin and xorriso)"),
            }
        }
    }
    Ok(())
}
