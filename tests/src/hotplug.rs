//! Helpers shared by the QEMU hotplug tests (x86_64 and aarch64 pc-dimm flows): reading
//! one kernel record, a command's output among event records, `lo-hi` range fields,
//! QEMU's placement of a memory device, matching `ACPI_DEVICE_OST` events, and one
//! checked pc-dimm hot-add.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use qemu::Machine;
use qemu::hotplug::{add_pc_dimm, add_ram_backend, query_memory_devices};
use qemu::profile::MIB;
use qemu::qmp::Qmp;
use serde_json::Value;

use crate::{fields, line, number};

/// How long one kernel record may take to appear.
const RECORD_TIMEOUT: Duration = Duration::from_secs(60);
/// How long QEMU may take to report an `_OST` event.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(30);
/// The base page size.
pub const PAGE: u64 = 4096;
/// The memory block (and section) size on x86_64 and aarch64.
pub const BLOCK: u64 = 128 * MIB;
/// A 128 MiB memory block's memmap: 32768 struct pages of 64 bytes = 512 pages.
pub const BLOCK_MEMMAP_PAGES: u64 = 512;

/// Types `command` and returns everything up to the prompt after its line `marker`
/// (event records printed between commands may come first; their prompts are skipped).
pub fn command_output(m: &mut Machine, command: &str, marker: &str) -> Result<String> {
    m.send_line(command)?;
    let head = m.expect(marker, RECORD_TIMEOUT)?;
    let tail = m.expect(crate::PROMPT, RECORD_TIMEOUT)?;
    Ok(head + &tail)
}

/// `(free pages, vmemmap table pages)` from `mem`.
pub fn mm_figures(m: &mut Machine) -> Result<(u64, u64)> {
    let out = command_output(m, "mem", "mem.mm ")?;
    let f = fields(line(&out, "mem.mm ")?);
    Ok((number(&f, "free")?, number(&f, "vmemmap.tables")?))
}

/// Every hot-added range the `hotplug` command lists has been verified in full (its
/// `verify:` record ran after its online record) and passed; returns how many there are.
pub fn ranges_verified(m: &mut Machine) -> Result<usize> {
    let out = command_output(m, "hotplug", "hotplug.summary ")?;
    let ranges: Vec<&str> = out
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("hotplug.range "))
        .collect();
    for r in &ranges {
        ensure!(
            fields(r).get("verify") == Some(&"pass"),
            "not verified: {r}"
        );
    }
    Ok(ranges.len())
}

/// Waits for the next console record starting with `prefix` and returns the whole line.
pub fn record(m: &mut Machine, prefix: &str) -> Result<String> {
    m.expect(prefix, RECORD_TIMEOUT)?;
    let rest = m.expect("\n", RECORD_TIMEOUT)?;
    Ok(format!("{prefix}{}", rest.trim_end()))
}

/// Consumes the prompt the shell prints again after a group of records.
pub fn settle(m: &mut Machine) -> Result<()> {
    m.expect(crate::PROMPT, RECORD_TIMEOUT)?;
    Ok(())
}

/// A `lo-hi` range field.
pub fn range(f: &HashMap<&str, &str>, key: &str) -> Result<(u64, u64)> {
    let text = f.get(key).with_context(|| format!("no {key} in {f:?}"))?;
    let (lo, hi) = text.split_once('-').context("range without '-'")?;
    let parse = |t: &str| u64::from_str_radix(t.trim_start_matches("0x"), 16);
    Ok((parse(lo)?, parse(hi)?))
}

/// QEMU's `[addr, addr + size)` of memory device `id`.
pub fn qemu_range(qmp: &mut Qmp, id: &str) -> Result<Option<(u64, u64)>> {
    Ok(query_memory_devices(qmp)?
        .into_iter()
        .find(|d| d.id.as_deref() == Some(id))
        .map(|d| (d.addr, d.addr + d.size)))
}

/// Whether an `ACPI_DEVICE_OST` event is for `device` (any, if `None`) with this source
/// (1 insert, 3 eject) and status.
pub fn ost_matches(data: &Value, device: Option<&str>, source: u64, status: u64) -> bool {
    let info = &data["info"];
    let device_ok = device.is_none_or(|d| info["device"] == d);
    device_ok && info["source"] == source && info["status"] == status
}

/// What one add told us.
pub struct Added {
    pub range: (u64, u64),
    pub pages: u64,
    pub tables_new: u64,
    pub ram_pages: u64,
    pub free_after: u64,
    pub host_latency: Duration,
    pub kernel_us: u64,
}

/// `object-add` + `device_add pc-dimm`, then the kernel's add and online records,
/// `_OST(1, 0)` and QEMU's placement. Checks the add record against QEMU.
pub fn add_dimm(m: &mut Machine, qmp: &mut Qmp, id: &str, size: u64) -> Result<Added> {
    let mem = format!("mem-{id}");
    add_ram_backend(qmp, &mem, size)?;
    add_pc_dimm(qmp, id, &mem)?;
    let returned = Instant::now();
    let add = record(m, "hotplug: add ")?;
    let online = record(m, "hotplug: online ")?;
    let host_latency = returned.elapsed();
    // The full verification runs after the online record (off the hot path).
    let verify = record(m, "verify: range=")?;
    settle(m)?;
    qmp.wait_event_where("ACPI_DEVICE_OST", EVENT_TIMEOUT, |d| {
        ost_matches(d, Some(id), 1, 0)
    })?;
    let (start, end) = qemu_range(qmp, id)?.with_context(|| format!("QEMU lost {id}"))?;
    ensure!(
        end - start == size,
        "QEMU placed {id} at {start:#x}-{end:#x}"
    );
    let a = fields(&add);
    ensure!(range(&a, "range")? == (start, end), "kernel vs QEMU: {add}");
    ensure!(a.get("via") == Some(&"dimm"), "{add}");
    let blocks = size / BLOCK;
    ensure!(number(&a, "sections")? == blocks, "{add}");
    ensure!(a.get("memmap") == Some(&"altmap"), "{add}");
    ensure!(
        number(&a, "altmap.alloc")? == blocks * BLOCK_MEMMAP_PAGES,
        "{add}"
    );
    ensure!(number(&a, "altmap.align")? == 0, "{add}");
    let o = fields(&online);
    ensure!(range(&o, "range")? == (start, end), "{online}");
    let pages = number(&o, "pages")?;
    ensure!(
        pages == size / PAGE - blocks * BLOCK_MEMMAP_PAGES,
        "onlined pages: {online}"
    );
    let v = fields(&verify);
    ensure!(range(&v, "range")? == (start, end), "{verify}");
    ensure!(v.get("result") == Some(&"pass"), "{verify}");
    ensure!(
        number(&v, "pages")? == pages,
        "every data page checked: {verify}"
    );
    ensure!(
        number(&v, "hosted")? == blocks * BLOCK_MEMMAP_PAGES,
        "every memmap page checked: {verify}"
    );
    ensure!(
        number(&v, "leaves.altmap")? == number(&v, "leaves")? && number(&v, "leaves.wrong")? == 0,
        "memmap leaves from the blocks' altmaps: {verify}"
    );
    let tables_new = number(&a, "tables.new")?;
    let ram_pages = number(&o, "ram.pages")?;
    ensure!(
        ram_pages == tables_new,
        "RAM went to something other than tables: {add} / {online}"
    );
    Ok(Added {
        range: (start, end),
        pages,
        tables_new,
        ram_pages,
        free_after: number(&o, "free")?,
        host_latency,
        kernel_us: number(&o, "us.total")?,
    })
}
