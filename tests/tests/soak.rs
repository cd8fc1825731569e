//! A short soak per arch, through the same `qemu::soak` as `cargo xtask soak`: a few
//! cycles of random pc-dimm and virtio-mem hot-add and hot-remove (fixed seed) must end
//! with the kernel's counters where they started and its hotplug view equal to QEMU's
//! after every step.

use anyhow::{Result, bail, ensure};
use qemu::Arch;
use qemu::soak::{self, Options, Verdict};
use tests::selected;

const SEED: u64 = 0x5eed;

fn short_soak(arch: Arch, cycles: u32) -> Result<()> {
    if !selected(arch) {
        eprintln!("skipped: {arch} not in HOTMEM_ARCHES");
        return Ok(());
    }
    let opts = Options::new(cycles, SEED);
    match soak::run(tests::image(arch)?, &opts, &mut |line| eprintln!("{line}"))? {
        Verdict::Clean(summary) => {
            eprintln!("{summary}");
            ensure!(summary.cycles == cycles, "{summary}");
            ensure!(summary.last.mm == summary.start.mm, "{summary}");
            Ok(())
        }
        Verdict::Drift(stopped) => bail!("{stopped}"),
    }
}

#[test]
fn s390x_virtio_mem_soak_ends_without_drift() -> Result<()> {
    short_soak(Arch::S390x, 10)
}

#[test]
fn x86_64_dimm_and_virtio_mem_soak_ends_without_drift() -> Result<()> {
    short_soak(Arch::X86_64, 8)
}

#[test]
fn aarch64_dimm_and_virtio_mem_soak_ends_without_drift() -> Result<()> {
    short_soak(Arch::Aarch64, 6)
}
