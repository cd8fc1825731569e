//! The virtio-mem walk shared by the three arches: resize one device step by step and,
//! at every step, hold QEMU's plugged size (`query-memory-devices`) against the request
//! and the kernel's counters against what the step must have cost.
//!
//! The kernel's side, read from `hotplug` and `mem`: the device config's `plugged`, the
//! driver's own count, the online pages of the device's hot-added memory blocks (their
//! memmap is in RAM, as Linux's virtio-mem adds it, so every plugged byte is online), the
//! blocks themselves (whole memory blocks, each one of the driver's units), and the free
//! pages: exactly the start's plus the online pages, less the blocks' memmap and the new
//! page-table pages, both taken from RAM; and every block's full verification passed.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use qemu::Machine;
use qemu::hotplug::{query_memory_devices, set_requested_size, wait_plugged_size};
use qemu::qmp::Qmp;

use crate::hotplug::{PAGE, command_output, range};
use crate::{fields, line, number};

/// How long QEMU, then the kernel, may take to settle on one size.
const SETTLE: Duration = Duration::from_secs(180);

/// `mem.mm` figures of one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counters {
    /// Free pages (both allocators).
    pub free: u64,
    /// Pages of struct pages of every present subsection.
    pub memmap_pages: u64,
    /// vmemmap page-table pages.
    pub tables: u64,
    /// Pages managed by the movable allocator (hot-added RAM).
    pub movable_managed: u64,
}

/// Reads `mem.mm`.
pub fn counters(m: &mut Machine) -> Result<Counters> {
    let out = command_output(m, "mem", "mem.mm ")?;
    let f = fields(line(&out, "mem.mm ")?);
    Ok(Counters {
        free: number(&f, "free")?,
        memmap_pages: number(&f, "memmap.pages")?,
        tables: number(&f, "vmemmap.tables")?,
        movable_managed: number(&f, "movable.managed")?,
    })
}

/// The kernel's view of one virtio-mem device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct View {
    /// `plugged` of the device config.
    pub plugged: u64,
    /// The driver's own count.
    pub driver: u64,
    /// Online bytes of the hot-added ranges via this device.
    pub online: u64,
    /// Those ranges.
    pub ranges: Vec<(u64, u64)>,
    /// The `hotplug.range` lines of those whose full verification did not pass (yet).
    pub unverified: Vec<String>,
    /// The driver's units.
    pub units: Vec<(u64, u64)>,
    /// Units with nothing plugged (the driver removes them on its next poll).
    pub empty_units: usize,
    /// The unit size (`unit=`) and mode (`mode=`).
    pub unit: u64,
    pub mode: String,
}

/// Reads `hotplug` for device `dev`.
pub fn view(m: &mut Machine, dev: u32) -> Result<View> {
    let text = command_output(m, "hotplug", "hotplug.summary")?;
    let head = format!("virtio-mem dev={dev} ");
    let d = fields(line(&text, &head)?);
    let via = format!("via=virtio-mem device={dev}");
    let mut ranges = Vec::new();
    let mut unverified = Vec::new();
    let mut online = 0;
    for l in text.lines().map(str::trim) {
        if l.starts_with("hotplug.range ") && l.ends_with(&via) {
            let f = fields(l);
            ranges.push(range(&f, "range")?);
            online += number(&f, "online.pages")? * PAGE;
            if f.get("verify") != Some(&"pass") {
                unverified.push(l.to_string());
            }
        }
    }
    let unit_head = format!("virtio-mem.unit dev={dev} ");
    let unit_lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with(&unit_head))
        .collect();
    let units = unit_lines
        .iter()
        .map(|l| range(&fields(l), "range"))
        .collect::<Result<Vec<_>>>()?;
    let empty_units = unit_lines
        .iter()
        .map(|l| number(&fields(l), "plugged"))
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .filter(|&p| p == 0)
        .count();
    Ok(View {
        plugged: number(&d, "plugged")?,
        driver: number(&d, "kernel")?,
        online,
        ranges,
        unverified,
        units,
        empty_units,
        unit: number(&d, "unit")?,
        mode: d.get("mode").copied().unwrap_or("?").to_string(),
    })
}

/// Sets `id`'s requested size to `target`, waits for QEMU's plugged size to be exactly
/// that and for the kernel to agree, then checks every counter against `start` (the
/// counters with nothing plugged). `memmap_per_block` is the struct-page pages one
/// memory block's memmap takes. Returns how long QEMU took.
pub fn resize_checked(
    m: &mut Machine,
    qmp: &mut Qmp,
    (id, dev): (&str, u32),
    target: u64,
    start: Counters,
    memmap_per_block: u64,
) -> Result<Duration> {
    let t0 = Instant::now();
    set_requested_size(qmp, id, target)?;
    wait_plugged_size(qmp, id, target, SETTLE)?;
    let took = t0.elapsed();
    let deadline = Instant::now() + SETTLE;
    let v = loop {
        let v = view(m, dev)?;
        // Settled: the sizes agree and no emptied block is still waiting for removal.
        if (v.plugged, v.driver, v.online) == (target, target, target) && v.empty_units == 0 {
            break v;
        }
        ensure!(
            Instant::now() < deadline,
            "{id} -> {target:#x}: kernel plugged={:#x} driver={:#x} online={:#x}",
            v.plugged,
            v.driver,
            v.online
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let qemu = query_memory_devices(qmp)?
        .into_iter()
        .find(|d| d.id.as_deref() == Some(id))
        .with_context(|| format!("no {id}"))?;
    ensure!(qemu.size == target, "QEMU plugged {:#x}", qemu.size);
    ensure!(
        v.ranges == v.units,
        "ranges {:x?} vs units {:x?}",
        v.ranges,
        v.units
    );
    for &(s, e) in &v.ranges {
        ensure!(
            e - s == v.unit && s.is_multiple_of(v.unit),
            "{s:#x}-{e:#x} is not one whole unit of {:#x}",
            v.unit
        );
        let region = qemu.addr..qemu.addr + qemu.max_size.unwrap_or(0);
        ensure!(
            region.contains(&s) && e <= region.end,
            "{s:#x}-{e:#x} outside {region:x?}"
        );
    }
    // Every block was verified in full (every struct page, every memmap leaf) once its
    // event was done.
    ensure!(v.unverified.is_empty(), "not verified: {:?}", v.unverified);
    let console = m.console();
    ensure!(
        !console.contains("hazard:") && !console.contains("teardown=hazard"),
        "a remove left something behind:\n{console}"
    );
    let now = counters(m)?;
    let blocks = v.ranges.len() as u64;
    let online = target / PAGE;
    ensure!(
        now.memmap_pages - start.memmap_pages == blocks * memmap_per_block,
        "memmap pages {} -> {} for {blocks} blocks",
        start.memmap_pages,
        now.memmap_pages
    );
    ensure!(
        now.movable_managed - start.movable_managed == online,
        "movable managed {} -> {}, online {online}",
        start.movable_managed,
        now.movable_managed
    );
    let tables = now.tables - start.tables;
    let expected = start.free + online - blocks * memmap_per_block - tables;
    ensure!(
        now.free == expected,
        "free {} -> {} at {target:#x}: expected {expected} ({online} online, {blocks} blocks \
         of {memmap_per_block} memmap pages, {tables} table pages)",
        start.free,
        now.free
    );
    eprintln!(
        "virtio-mem {id} -> {target:#x}: mode={} blocks={blocks} tables=+{tables} free={} qemu={took:?}",
        v.mode, now.free
    );
    Ok(took)
}
