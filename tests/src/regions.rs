//! Shared checks for device regions (issue 6): cold-plugged NVDIMMs compared with QEMU's
//! own `query-memory-devices`, `memmap=` carving with refusals, and the altmap figures
//! against Linux's nvdimm pfn layout computed here, independently of the kernel.

use std::ops::Range;
use std::path::PathBuf;

use anyhow::{Result, anyhow, ensure};
use qemu::{Machine, Profile};

use crate::{fields, line, number, shell};

const PAGE: u64 = 4096;
const MIB: u64 = 1 << 20;

/// Linux's `nd_pfn_init` + `__nvdimm_setup_pfn` for a namespace at `start` of `size`
/// bytes with 2 MiB alignment: `(reserve, free, offset)` in pages.
pub fn linux_altmap(start: u64, size: u64) -> (u64, u64, u64) {
    let npfns = (size - 8192) / PAGE;
    let dataoff = (start + 8192 + 64 * npfns).next_multiple_of(2 * MIB) - start;
    let reserve = 2;
    (reserve, dataoff / PAGE - reserve, dataoff / PAGE)
}

/// `profile` plus one cold-plugged NVDIMM per size (backing files in the target
/// directory; each file holds the data plus the 128 KiB label area).
pub fn with_nvdimms(profile: Profile, tag: &str, sizes: &[u64]) -> Result<Profile> {
    let placed: Vec<(u64, Option<u64>)> = sizes.iter().map(|&s| (s, None)).collect();
    with_nvdimms_at(profile, tag, &placed)
}

/// As [`with_nvdimms`], each NVDIMM at the guest-physical address given (QEMU's `addr=`
/// property), or where QEMU puts it.
pub fn with_nvdimms_at(
    profile: Profile,
    tag: &str,
    nvdimms: &[(u64, Option<u64>)],
) -> Result<Profile> {
    let dir: PathBuf = qemu::cargo::target_dir().join("nvdimm");
    std::fs::create_dir_all(&dir)?;
    let mut profile = profile;
    for (i, (size, addr)) in nvdimms.iter().enumerate() {
        let file = dir.join(format!("{tag}-{i}.img"));
        let _ = std::fs::remove_file(&file);
        let backend = format!(
            "memory-backend-file,id=nvmem{i},share=on,mem-path={},size={}K",
            file.display(),
            (size + 128 * 1024) / 1024
        );
        let addr = addr.map(|a| format!(",addr={a:#x}")).unwrap_or_default();
        profile = profile.with_object(backend).with_device(format!(
            "nvdimm,id=nvdimm{i},memdev=nvmem{i},label-size=128K{addr}"
        ));
    }
    Ok(profile)
}

/// The NVDIMMs QEMU placed, as `[addr, addr + size)`, from QMP.
pub fn qemu_nvdimms(m: &mut Machine) -> Result<Vec<Range<u64>>> {
    let mut qmp = m.qmp()?;
    let devices = qemu::hotplug::query_memory_devices(&mut qmp)?;
    Ok(devices
        .iter()
        .filter(|d| d.kind == "nvdimm")
        .map(|d| d.addr..d.addr + d.size)
        .collect())
}

/// For every NVDIMM QEMU reports: a `region: add` record with the same address and size
/// from the NFIT, an altmap equal to Linux's formula with the memmap populated from it,
/// a passing verification with every leaf in the altmap, and `vmemmap` showing the range.
pub fn check_nvdimm_regions(m: &mut Machine, expected_count: usize) -> Result<()> {
    let nvdimms = qemu_nvdimms(m)?;
    ensure!(nvdimms.len() == expected_count, "QEMU reports {nvdimms:x?}");
    let console = m.console();
    for range in nvdimms {
        let add = console
            .lines()
            .map(fields)
            .find(|f| {
                f.get("source") == Some(&"nfit") && number(f, "start").ok() == Some(range.start)
            })
            .ok_or_else(|| anyhow!("no NFIT region at {:#x}:\n{console}", range.start))?;
        let size = range.end - range.start;
        ensure!(
            number(&add, "size")? == size,
            "size of {range:x?}:\n{console}"
        );
        let id = add.get("id").copied().unwrap_or_default();
        check_altmap_and_verify(m, id, range.start, size)?;
    }
    Ok(())
}

/// The altmap of region `id` (at `start`, `size` bytes) against Linux's layout, and its
/// verification record.
pub fn check_altmap_and_verify(m: &mut Machine, id: &str, start: u64, size: u64) -> Result<()> {
    let (reserve, free, offset) = linux_altmap(start, size);
    let text = shell(m, &format!("altmap {id}"))?;
    let a = fields(line(&text, "altmap: ")?);
    ensure!(number(&a, "base_pfn")? == start / PAGE, "{text}");
    ensure!(
        number(&a, "end_pfn")? == (start + size) / PAGE - 1,
        "{text}"
    );
    ensure!(number(&a, "reserve")? == reserve, "{text}");
    ensure!(number(&a, "free")? == free, "{text}");
    ensure!(number(&a, "offset")? == offset, "{text}");
    ensure!(
        number(&a, "alloc")? > 0,
        "memmap not populated from the altmap:\n{text}"
    );
    ensure!(a.get("state") == Some(&"live"), "{text}");
    let console = m.console();
    let verify = fields(line(&console, &format!("verify: id={id} "))?);
    ensure!(verify.get("result") == Some(&"pass"), "{console}");
    ensure!(
        number(&verify, "pages")? == size / PAGE - offset,
        "data pages:\n{console}"
    );
    ensure!(
        number(&verify, "leaves.other")? == 0,
        "a leaf outside the altmap:\n{console}"
    );
    ensure!(number(&verify, "leaves.altmap")? > 0, "{console}");
    // The reserve pfns' struct pages are mapped but never initialised (Linux's 2019
    // kpageflags bug): `page` refuses them in one line; the first data pfn is a device page.
    let base = start / PAGE;
    for pfn in [base, base + reserve - 1] {
        let out = shell(m, &format!("page {pfn:#x}"))?;
        ensure!(
            line(&out, "error: page: ")?.contains("never initialised"),
            "{out}"
        );
    }
    let out = shell(m, &format!("page {:#x}", base + offset))?;
    ensure!(line(&out, "page pfn=")?.contains("zone=Device"), "{out}");
    Ok(())
}

/// `memmap=` with one good range and three bad ones: the good one is carved, populated
/// from its altmap and verified; each bad one is refused with its reason.
pub fn check_memmap_refusals(
    m: &mut Machine,
    good: (u64, u64),
    refused: &[(&str, &str)],
) -> Result<()> {
    let console = m.console();
    let add = console
        .lines()
        .map(fields)
        .find(|f| f.get("source") == Some(&"memmap") && number(f, "start").ok() == Some(good.0))
        .ok_or_else(|| anyhow!("no memmap region at {:#x}:\n{console}", good.0))?;
    ensure!(number(&add, "size")? == good.1, "{console}");
    for (text, reason) in refused {
        let reject = console
            .lines()
            .find(|l| l.starts_with("region: reject") && l.contains(&format!("text={text} ")))
            .ok_or_else(|| anyhow!("no refusal for {text}:\n{console}"))?;
        ensure!(fields(reject).get("reason") == Some(reason), "{reject}");
    }
    let id = add.get("id").copied().unwrap_or_default();
    check_altmap_and_verify(m, id, good.0, good.1)?;
    let mem = shell(m, "mem")?;
    ensure!(
        number(&fields(line(&mem, "mem.total ")?), "reserved")? >= good.1,
        "{mem}"
    );
    Ok(())
}
