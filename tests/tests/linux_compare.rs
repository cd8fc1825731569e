//! Side by side with Linux (DESIGN.md §5, tier 4): `cargo xtask compare` runs the same
//! scenario on a stock Debian kernel and on ours — NVDIMMs that are a section multiple,
//! partly cover their last section, carry a label area or are under 16 MiB, a hot-added
//! pc-dimm and a virtio-mem resize — in one Linux boot and one of ours per arch, and must
//! end with no undocumented difference. When Debian's packages cannot be fetched the test
//! says so and skips.

use std::process::Output;

use anyhow::{Result, bail, ensure};
use qemu::Arch;
use tests::selected;

/// The scenario of both arches.
const SCENARIO: [&str; 14] = [
    "--nvdimm",
    "256M",
    "--nvdimm",
    "130M",
    "--nvdimm",
    "256M:label",
    "--nvdimm",
    "8M",
    "--dimm",
    "128M",
    "--vmem",
    "256M",
    "--nvdimm",
    "514M",
];

fn xtask(args: &[&str]) -> Result<Output> {
    let mut cmd = qemu::cargo::cargo_command();
    cmd.arg("xtask").args(args);
    eprintln!("$ {}", qemu::cmdline::render(&cmd));
    Ok(cmd.output()?)
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn compare(arch: Arch) -> Result<()> {
    if !selected(arch) {
        eprintln!("skipped: {arch} not in HOTMEM_ARCHES");
        return Ok(());
    }
    let fetch = xtask(&["linux", "--arch", arch.name(), "--fetch-only"])?;
    if !fetch.status.success() {
        let all = text(&fetch);
        if all.contains("Linux packages unavailable") {
            eprintln!("skipped: the Debian packages for {arch} cannot be fetched:\n{all}");
            return Ok(());
        }
        bail!("cargo xtask linux --fetch-only failed:\n{all}");
    }
    let mut args = vec!["compare", "--arch", arch.name()];
    args.extend(SCENARIO);
    let out = xtask(&args)?;
    let all = text(&out);
    eprintln!("{all}");
    ensure!(out.status.success(), "compare failed:\n{all}");
    let table = String::from_utf8_lossy(&out.stdout);
    ensure!(table.contains(" undocumented=0"), "{table}");
    for row in [
        "nvdimm0 state",
        "nvdimm1 state",
        "nvdimm3 state",
        "nvdimm4 state",
    ] {
        let line = table
            .lines()
            .find(|l| l.starts_with(row))
            .ok_or_else(|| anyhow::anyhow!("no row {row:?}:\n{table}"))?;
        ensure!(line.trim_end().ends_with("same"), "{line}");
    }
    ensure!(
        table.lines().any(|l| l.starts_with("dimm0 range online")),
        "no DIMM row:\n{table}"
    );
    for row in ["vm0 plugged size", "nvdimm0 data start"] {
        ensure!(
            table
                .lines()
                .any(|l| l.starts_with(row) && l.trim_end().ends_with("same")),
            "{row} not the same as Linux:\n{table}"
        );
    }
    Ok(())
}

#[test]
fn x86_64_matches_linux_or_documents_why_not() -> Result<()> {
    compare(Arch::X86_64)
}

#[test]
fn aarch64_matches_linux_or_documents_why_not() -> Result<()> {
    compare(Arch::Aarch64)
}
