//! s390x virtio-mem-ccw hotplug, driven through QMP: grow and shrink `requested-size`,
//! then hold the kernel's records against QEMU's `query-memory-devices` and the kernel's
//! own free-page and page-table counters.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use qemu::hotplug::{self, MemoryDevice};
use qemu::profile::{GIB, MIB};
use qemu::qmp::Qmp;
use qemu::{Arch, Machine, Memory, Profile};
use tests::{PROMPT, boot_to_prompt, fields, line, number, selected, shell};

const ARCH: Arch = Arch::S390x;
/// Overall limit of one machine (ten grow/shrink cycles fit easily).
const MACHINE_TIMEOUT: Duration = Duration::from_secs(240);
/// From `qom-set` to the last record of a resize.
const RESIZE_TIMEOUT: Duration = Duration::from_secs(60);
const DEVICE: &str = "vm0";
/// The s390x memory block (section): the unit plugged with its memmap inside it.
const MEMORY_BLOCK: u64 = 256 * MIB;

fn skip() -> bool {
    if selected(ARCH) {
        return false;
    }
    eprintln!("skipped: {ARCH} not in HOTMEM_ARCHES");
    true
}

/// A machine with a 2 GiB virtio-mem-ccw device at `requested` bytes, and its QMP.
fn start(requested: u64) -> Result<(Machine, Qmp)> {
    let profile = Profile::new(ARCH)
        .with_memory(Memory::ram(512 * MIB).with_maxmem(4 * GIB))
        .with_object(format!("memory-backend-ram,id=vmem0,size={}", 2 * GIB))
        .with_device(format!(
            "{},id={DEVICE},memdev=vmem0,requested-size={requested}",
            hotplug::virtio_mem_driver(ARCH)
        ));
    let m = boot_to_prompt(&profile, "", MACHINE_TIMEOUT)?;
    let qmp = m.qmp()?;
    Ok((m, qmp))
}

/// The kernel's free pages and page-table pages (`mem`'s `mem.mm` record).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Counters {
    free: u64,
    tables: u64,
}

fn counters(m: &mut Machine) -> Result<Counters> {
    let mem = shell(m, "mem")?;
    let mm = fields(line(&mem, "mem.mm ")?);
    Ok(Counters {
        free: number(&mm, "free")?,
        tables: number(&mm, "vmemmap.tables")?,
    })
}

fn device(qmp: &mut Qmp) -> Result<MemoryDevice> {
    hotplug::query_memory_devices(qmp)?
        .into_iter()
        .find(|d| d.id.as_deref() == Some(DEVICE))
        .context("vm0 missing from query-memory-devices")
}

/// One `hotplug: ...` record of the engine.
#[derive(Clone, Debug)]
struct Record {
    kind: String,
    start: u64,
    end: u64,
    text: String,
}

impl Record {
    fn parse(text: &str) -> Option<Record> {
        let rest = text.trim().strip_prefix("hotplug: ")?;
        let kind = rest.split_whitespace().next()?.to_string();
        let f = fields(rest);
        let (start, end) = f.get("range")?.split_once('-')?;
        let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok();
        Some(Record {
            kind,
            start: hex(start)?,
            end: hex(end)?,
            text: rest.to_string(),
        })
    }

    fn len(&self) -> u64 {
        self.end - self.start
    }

    fn number(&self, key: &str) -> Result<u64> {
        number(&fields(&self.text), key)
    }

    fn field(&self, key: &str) -> Option<String> {
        fields(&self.text).get(key).map(|s| s.to_string())
    }
}

/// What one resize produced on the console.
struct Resize {
    records: Vec<Record>,
    /// From the `qom-set` reply to the record that completed the resize.
    latency: Duration,
}

impl Resize {
    fn of(&self, kind: &str) -> Vec<&Record> {
        self.records.iter().filter(|r| r.kind == kind).collect()
    }
}

/// Sets `requested-size` and reads console records until `done` says the kernel finished
/// (e.g. the online records add up); then waits for QEMU's plugged size to be `target`
/// and consumes the shell prompt the records left behind.
fn resize(
    m: &mut Machine,
    qmp: &mut Qmp,
    target: u64,
    done: impl Fn(&[Record]) -> bool,
) -> Result<Resize> {
    hotplug::set_requested_size(qmp, DEVICE, target)?;
    let t0 = Instant::now();
    let mut records = Vec::new();
    let deadline = t0 + RESIZE_TIMEOUT;
    while !done(&records) {
        let left = deadline.saturating_duration_since(Instant::now());
        let text = m.expect("\n", left)?;
        let text = text.trim_start_matches(PROMPT);
        if text.contains("ERROR") || text.starts_with("panic") {
            anyhow::bail!("kernel error during resize to {target:#x}: {text}");
        }
        records.extend(Record::parse(text));
    }
    let latency = t0.elapsed();
    hotplug::wait_plugged_size(qmp, DEVICE, target, RESIZE_TIMEOUT)?;
    sync(m)?;
    Ok(Resize { records, latency })
}

/// Runs a command whose output is unique, so the next `shell` call cannot match a prompt
/// printed after earlier hotplug records.
fn sync(m: &mut Machine) -> Result<()> {
    m.send_line("cmdline")?;
    m.expect("cmdline: ", tests::COMMAND_TIMEOUT)?;
    m.expect(PROMPT, tests::COMMAND_TIMEOUT)?;
    Ok(())
}

/// `done` for a grow by `bytes`: the online records add up to it.
fn onlined(bytes: u64) -> impl Fn(&[Record]) -> bool {
    move |r| {
        r.iter()
            .filter(|r| r.kind == "online")
            .map(Record::len)
            .sum::<u64>()
            >= bytes
    }
}

/// `done` for a shrink by `bytes`: the remove records add up to it.
fn removed(bytes: u64) -> impl Fn(&[Record]) -> bool {
    move |r| {
        r.iter()
            .filter(|r| r.kind == "remove")
            .map(Record::len)
            .sum::<u64>()
            >= bytes
    }
}

/// Grows from nothing to `target` and checks every figure; returns the online records.
fn grow_checked(m: &mut Machine, qmp: &mut Qmp, target: u64, before: Counters) -> Result<Resize> {
    let grown = resize(m, qmp, target, onlined(target))?;
    let dev = device(qmp)?;
    ensure!(dev.size == target, "QEMU plugged {:#x}", dev.size);
    let online = grown.of("online");
    let added: u64 = online.iter().map(|r| r.len()).sum();
    ensure!(
        added == dev.size,
        "kernel added {added:#x}, QEMU plugged {:#x}",
        dev.size
    );
    let window = dev.addr..dev.addr + dev.max_size.context("max-size")?;
    // Every add is verified in full after its online record (before the prompt that
    // `resize` consumed): every data page and every memmap leaf.
    let console = m.console();
    for r in &online {
        let prefix = format!("verify: range={:#x}-{:#x} ", r.start, r.end);
        // The last one: a range may come and go in earlier cycles.
        let verify = console
            .lines()
            .rev()
            .find(|l| l.trim().starts_with(&prefix))
            .with_context(|| format!("no {prefix:?} record"))?
            .trim();
        let v = fields(verify);
        ensure!(v.get("result") == Some(&"pass"), "{verify}");
        ensure!(
            number(&v, "pages")? == r.number("pages")?,
            "{verify} / {}",
            r.text
        );
        ensure!(number(&v, "leaves.wrong")? == 0, "{verify}");
    }
    for r in &online {
        ensure!(
            window.contains(&r.start) && r.end <= window.end,
            "{:#x}-{:#x} outside the device {window:x?}",
            r.start,
            r.end
        );
        ensure!(r.text.contains("via=virtio-mem device=0"), "{}", r.text);
    }
    // Free pages grow by the onlined pages less what the add took from RAM (`ram.pages`):
    // at least the new page-table pages, plus the memmap itself when it is not inside the
    // block.
    let mut expected_free = before.free;
    for add in grown.of("add") {
        let on = online
            .iter()
            .find(|o| o.start == add.start && o.end == add.end)
            .with_context(|| format!("no online record for {}", add.text))?;
        let whole = add.start.is_multiple_of(MEMORY_BLOCK) && add.len() == MEMORY_BLOCK;
        let memmap = add.field("memmap").unwrap_or_default();
        ensure!(
            memmap == if whole { "altmap" } else { "ram" },
            "unit of {:#x} bytes has memmap={memmap}: {}",
            add.len(),
            add.text
        );
        // 64-byte struct pages: a RAM memmap takes 8 pages per 2 MiB.
        let memmap_pages = if whole {
            ensure!(add.number("altmap.alloc")? > 0, "{}", add.text);
            0
        } else {
            add.len() / 4096 * 64 / 4096
        };
        let ram_pages = on.number("ram.pages")?;
        ensure!(
            ram_pages >= add.number("tables.new")? + memmap_pages,
            "ram.pages={ram_pages} for {} / {}",
            add.text,
            on.text
        );
        expected_free += on.number("pages")? - ram_pages;
    }
    let after = counters(m)?;
    ensure!(
        after.free == expected_free,
        "free {} -> {}, expected {expected_free}",
        before.free,
        after.free
    );
    Ok(grown)
}

/// Shrinks everything away and checks the counters come back to `start`.
fn shrink_checked(m: &mut Machine, qmp: &mut Qmp, from: u64, start: Counters) -> Result<()> {
    let shrunk = resize(m, qmp, 0, removed(from))?;
    for r in shrunk.of("remove") {
        ensure!(r.number("altmap.alloc")? == 0, "{}", r.text);
    }
    ensure!(device(qmp)?.size == 0, "QEMU still has memory plugged");
    let after = counters(m)?;
    ensure!(after == start, "counters {start:?} -> {after:?}");
    Ok(())
}

#[test]
fn grow_to_1g_and_shrink_to_0_match_qemu_and_the_counters() -> Result<()> {
    if skip() {
        return Ok(());
    }
    let (mut m, mut qmp) = start(0)?;
    let start_counters = counters(&mut m)?;
    let dev = device(&mut qmp)?;
    ensure!(dev.size == 0 && dev.addr == GIB, "{dev:?}");

    let grown = grow_checked(&mut m, &mut qmp, GIB, start_counters)?;
    // 1 GiB at a section-aligned address is four memory blocks, each with its memmap inside.
    let adds = grown.of("add");
    ensure!(adds.len() == 4, "{} adds", adds.len());
    ensure!(adds.iter().all(|a| a.text.contains("memmap=altmap")));
    eprintln!(
        "s390x virtio-mem: 1 GiB grow, qom-set -> last online record: {:?}",
        grown.latency
    );
    let list = shell(&mut m, "hotplug")?;
    let describe = fields(line(&list, "virtio-mem dev=0")?);
    ensure!(number(&describe, "plugged")? == GIB, "{list}");
    ensure!(number(&describe, "kernel")? == GIB, "{list}");

    shrink_checked(&mut m, &mut qmp, GIB, start_counters)?;
    let list = shell(&mut m, "hotplug")?;
    ensure!(
        line(&list, "hotplug.summary ranges=0")?.contains("sources=1"),
        "{list}"
    );
    // With nothing requested the driver also shrank the usable region (UNPLUG_ALL).
    ensure!(
        number(&fields(line(&list, "virtio-mem dev=0")?), "usable")? == 0,
        "{list}"
    );
    Ok(())
}

#[test]
fn ten_grow_shrink_cycles_end_at_the_starting_counters() -> Result<()> {
    if skip() {
        return Ok(());
    }
    let (mut m, mut qmp) = start(0)?;
    let start_counters = counters(&mut m)?;
    for cycle in 0..10 {
        // Alternate whole memory blocks and a size that needs a device-block remainder.
        let target = if cycle % 2 == 0 { 512 * MIB } else { 300 * MIB };
        grow_checked(&mut m, &mut qmp, target, start_counters)
            .with_context(|| format!("cycle {cycle}: grow to {target:#x}"))?;
        shrink_checked(&mut m, &mut qmp, target, start_counters)
            .with_context(|| format!("cycle {cycle}: shrink from {target:#x}"))?;
    }
    Ok(())
}

#[test]
fn a_size_off_the_memory_block_grid_plugs_at_boot_in_mixed_units() -> Result<()> {
    if skip() {
        return Ok(());
    }
    // Requested at boot: the kernel plugs during its first poll, before the prompt.
    let (mut m, mut qmp) = start(300 * MIB)?;
    hotplug::wait_plugged_size(&mut qmp, DEVICE, 300 * MIB, RESIZE_TIMEOUT)?;
    let list = shell(&mut m, "hotplug")?;
    let ranges: Vec<_> = list
        .lines()
        .filter(|l| l.trim().starts_with("hotplug.range "))
        .map(|l| fields(l.trim()))
        .collect();
    ensure!(ranges.len() == 2, "{list}");
    ensure!(
        ranges[0].get("range") == Some(&"0x40000000-0x50000000"),
        "{list}"
    );
    ensure!(ranges[0].get("memmap") == Some(&"altmap"), "{list}");
    // The 44 MiB rest is 22 device blocks in one unit, memmap from RAM.
    ensure!(
        ranges[1].get("range") == Some(&"0x50000000-0x52c00000"),
        "{list}"
    );
    ensure!(ranges[1].get("memmap") == Some(&"ram"), "{list}");
    let before = counters(&mut m)?;
    // Shrinking to 100 MiB can only give back the 44 MiB unit: the 256 MiB block stays,
    // so the plugged size never drops below the request.
    hotplug::set_requested_size(&mut qmp, DEVICE, 100 * MIB)?;
    m.expect(
        "hotplug: remove range=0x50000000-0x52c00000",
        RESIZE_TIMEOUT,
    )?;
    m.expect("reason=no-unit-fits", RESIZE_TIMEOUT)?;
    hotplug::wait_plugged_size(&mut qmp, DEVICE, 256 * MIB, RESIZE_TIMEOUT)?;
    sync(&mut m)?;
    let after = counters(&mut m)?;
    ensure!(after.free < before.free, "{before:?} -> {after:?}");
    Ok(())
}

#[test]
fn busy_memory_is_not_unplugged_until_it_is_free_and_the_request_changes() -> Result<()> {
    if skip() {
        return Ok(());
    }
    let (mut m, mut qmp) = start(0)?;
    let start_counters = counters(&mut m)?;
    grow_checked(&mut m, &mut qmp, 256 * MIB, start_counters)?;
    // Take a page from the middle of the hot-added block.
    let pfn = (GIB + 128 * MIB) / 4096;
    let taken = shell(&mut m, &format!("alloc 1 {pfn:#x}"))?;
    ensure!(taken.contains("alloc: pages=1"), "{taken}");

    hotplug::set_requested_size(&mut qmp, DEVICE, 0)?;
    let refused = m.expect("reason=busy", RESIZE_TIMEOUT)?;
    ensure!(refused.contains("hotplug: refuse op=remove"), "{refused}");
    m.expect("op=shrink", RESIZE_TIMEOUT)?;
    std::thread::sleep(Duration::from_millis(500));
    ensure!(
        device(&mut qmp)?.size == 256 * MIB,
        "busy memory was unplugged"
    );
    sync(&mut m)?;

    // Freed, but the request is the same: no retry in a loop.
    let freed = shell(&mut m, "free")?;
    ensure!(freed.contains("free: pages=1"), "{freed}");
    let quiet = shell(&mut m, "hotplug")?;
    ensure!(!quiet.contains("hotplug: remove"), "{quiet}");
    ensure!(device(&mut qmp)?.size == 256 * MIB);

    // A new request retries (once the kernel has seen it: it polls every millisecond).
    hotplug::set_requested_size(&mut qmp, DEVICE, 256 * MIB)?;
    std::thread::sleep(Duration::from_millis(300));
    shrink_checked(&mut m, &mut qmp, 256 * MIB, start_counters)?;
    Ok(())
}
