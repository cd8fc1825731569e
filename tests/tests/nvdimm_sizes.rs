//! x86_64 NVDIMMs of every size the Linux comparison covers, in one guest: section
//! multiples, partly covered last sections (whose memmap Linux's x86 `vmemmap_populate`
//! maps from RAM base pages, ignoring the altmap), 16 MiB (only a sub-section span), one
//! with a 128 KiB label area, and one under 16 MiB that is refused as Linux refuses it.
//! Each accepted region's verification must pass with every leaf from the source the
//! policy chose: the whole sections' 2 MiB leaves from the altmap, the partial section's
//! base pages from RAM.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use qemu::profile::{GIB, MIB};
use qemu::{Arch, Memory, Outcome, Profile};
use tests::{boot_to_prompt, fields, number, selected};

const ARCH: Arch = Arch::X86_64;
const PAGE: u64 = 4096;
const SECTION: u64 = 128 * MIB;
const LABEL: u64 = 128 * 1024;

/// (backend size, with a label area)
const NVDIMMS: [(u64, bool); 12] = [
    (16 * MIB, false),
    (129 * MIB, false),
    (130 * MIB, false),
    (256 * MIB, false),
    (258 * MIB, false),
    (512 * MIB, false),
    (514 * MIB, false),
    (770 * MIB, false),
    (GIB, false),
    (1026 * MIB, false),
    (256 * MIB, true),
    (8 * MIB, false),
];

fn profile() -> Result<Profile> {
    let dir: PathBuf = qemu::cargo::target_dir().join("nvdimm");
    std::fs::create_dir_all(&dir)?;
    let memory = Memory::ram(512 * MIB).with_slots(16).with_maxmem(8 * GIB);
    let mut profile = Profile::new(ARCH).with_memory(memory);
    for (i, (size, label)) in NVDIMMS.iter().enumerate() {
        let file = dir.join(format!("sizes-{i}.img"));
        let _ = std::fs::remove_file(&file);
        let label = if *label {
            format!(",label-size={LABEL}")
        } else {
            String::new()
        };
        profile = profile
            .with_object(format!(
                "memory-backend-file,id=nvmem{i},share=on,mem-path={},size={size},align=2M",
                file.display()
            ))
            .with_device(format!("nvdimm,id=nvdimm{i},memdev=nvmem{i}{label}"));
    }
    Ok(profile)
}

/// Whole 128 MiB sections in `[start, end)` and the bytes in partly covered ones.
fn sections(start: u64, end: u64) -> (u64, u64) {
    let (mut full, mut partial, mut at) = (0, 0, start);
    while at < end {
        let stop = ((at / SECTION + 1) * SECTION).min(end);
        if stop - at == SECTION {
            full += 1;
        } else {
            partial += stop - at;
        }
        at = stop;
    }
    (full, partial)
}

#[test]
fn verify_passes_on_every_nvdimm_size_with_leaves_from_the_policys_source() -> Result<()> {
    if !selected(ARCH) {
        eprintln!("skipped: {ARCH} not in HOTMEM_ARCHES");
        return Ok(());
    }
    let mut m = boot_to_prompt(&profile()?, "", Duration::from_secs(300))?;
    let mut qmp = m.qmp()?;
    let devices = qemu::hotplug::query_memory_devices(&mut qmp)?;
    let console = m.console();
    for (i, (backend, _)) in NVDIMMS.iter().enumerate() {
        let id = format!("nvdimm{i}");
        let dev = devices
            .iter()
            .find(|d| d.id.as_deref() == Some(id.as_str()))
            .with_context(|| format!("QEMU has no {id}"))?;
        if *backend < 16 * MIB {
            let reject = console
                .lines()
                .find(|l| {
                    l.starts_with("region: reject")
                        && l.contains(&format!("range={:#x}-", dev.addr))
                })
                .with_context(|| format!("{id} under 16 MiB not refused:\n{console}"))?;
            let f = fields(reject);
            ensure!(f.get("reason") == Some(&"too-small"), "{reject}");
            ensure!(f.get("minimum") == Some(&"0x1000000"), "{reject}");
            continue;
        }
        let add = console
            .lines()
            .map(fields)
            .find(|f| f.get("source") == Some(&"nfit") && number(f, "start").ok() == Some(dev.addr))
            .with_context(|| format!("no region for {id} at {:#x}:\n{console}", dev.addr))?;
        let region = add.get("id").copied().unwrap_or_default();
        let verify = console
            .lines()
            .find(|l| l.starts_with(&format!("verify: id={region} ")))
            .with_context(|| format!("no verify record for {id}:\n{console}"))?;
        let v = fields(verify);
        ensure!(
            v.get("result") == Some(&"pass"),
            "{id} ({backend:#x}): {verify}"
        );
        ensure!(number(&v, "leaves.other")? == 0, "{verify}");
        let mapped = dev.size - (dev.addr + dev.size) % (2 * MIB);
        let (full, partial) = sections(dev.addr, dev.addr + mapped);
        ensure!(number(&v, "leaves.altmap")? == full, "{id}: {verify}");
        ensure!(
            number(&v, "leaves.ram")? == partial / PAGE * 64 / PAGE,
            "{id}: the partial section's base pages come from RAM: {verify}"
        );
        ensure!(
            number(&v, "memmap.pages")? == mapped / PAGE * 64 / PAGE,
            "{id}: {verify}"
        );
    }
    m.send_line("poweroff")?;
    let outcome = m.wait_exit(Duration::from_secs(60));
    qemu::machine::ensure_outcome(&m, outcome, Outcome::Pass)
}
