//! `cargo xtask`: build, run, test, doctor and gdb for the hotmem kernels.
//!
//! The heavy lifting (arch table, QEMU profiles, launcher) lives in the `qemu` crate, shared
//! with the integration tests; this binary is the command line and the host set-up.

mod apt;
mod doctor;
mod pipeline;
mod run;
mod setup;
mod toolchain;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
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
    /// Boot one arch interactively: console on this terminal, HMP monitor on Ctrl-A c.
    Run {
        #[arg(long)]
        arch: Arch,
        /// auto (KVM when usable), kvm or tcg.
        #[arg(long, default_value = "auto")]
        accel: AccelChoice,
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
    },
    /// Check QEMU, devices, firmware, toolchain and KVM; print fixes.
    Doctor,
    /// Like run, but stopped at the first instruction with a gdb stub on :1234 (TCG).
    Gdb {
        #[arg(long)]
        arch: Arch,
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
            let image = qemu::build(arch, release)?;
            println!("{}", image.kernel.display());
            if let Some(esp) = image.esp {
                println!("{}", esp.display());
            }
            Ok(())
        }
        Cmd::Run {
            arch,
            accel,
            append,
            release,
            qemu_args,
        } => {
            let gdb = false;
            run::run(run::Interactive {
                arch,
                accel,
                append,
                release,
                gdb,
                qemu_args,
            })
        }
        Cmd::Test { arch, release } => pipeline::run(arch, release),
        Cmd::Doctor => doctor::run(),
        Cmd::Gdb {
            arch,
            append,
            release,
            qemu_args,
        } => {
            let accel = AccelChoice::Tcg;
            let gdb = true;
            run::run(run::Interactive {
                arch,
                accel,
                append,
                release,
                gdb,
                qemu_args,
            })
        }
    }
}
