//! Scale and heap exhaustion (issue 18), on every arch in QEMU.
//!
//! - Large hot-adds, far past what the old fixed 4 MiB heap allowed (s390x died near
//!   30 GiB): a 64 GiB pc-dimm on x86_64 and aarch64, a virtio-mem-ccw device grown to
//!   48 GiB and shrunk to 0 on s390x. Backends are `reserve=off`: the host only backs the
//!   memmap the guest writes (16 MiB per GiB). The kernel's range is QEMU's, the pages
//!   onlined are the size less the self-hosted memmap, and after the remove every `mem.mm`
//!   counter is back, with free pages exactly balanced against the pages the heap took
//!   from the buddy allocator (`mem.heap buddy.pages=`).
//! - Heap exhaustion: with every heap allocation failing (`inject heap 1 always`), a
//!   hot-add through `probe` (and a pc-dimm through ACPI, with `_OST` failure) is refused
//!   with `reason=mm errno=-12` and changes nothing; on s390x virtio-mem stops growing
//!   with `reason=no-memory`. The shell keeps answering, and once the rule is cleared the
//!   same adds go through.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use qemu::hotplug::{self, add_pc_dimm};
use qemu::profile::{GIB, MIB};
use qemu::{Arch, Machine, Memory, Outcome, Profile};
use serde_json::json;
use tests::hotplug::{BLOCK_MEMMAP_PAGES, EVENT_TIMEOUT, PAGE, command_output, ost_matches};
use tests::{PROMPT, boot_to_prompt, fields, line, number, selected, shell};

const MACHINE_TIMEOUT: Duration = Duration::from_secs(600);
/// From the QMP command to the last record of a large add or remove.
const LARGE_TIMEOUT: Duration = Duration::from_secs(300);

fn skip(arch: Arch) -> bool {
    if selected(arch) {
        return false;
    }
    eprintln!("skipped: {arch} not in HOTMEM_ARCHES");
    true
}

/// The figures a large add must give back, from `mem`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Counters {
    /// Free pages plus the pages the heap holds from the buddy allocator.
    free_and_heap: u64,
    managed: u64,
    sections: u64,
    present: u64,
    tables: u64,
    leaves: u64,
}

/// `(counters, heap bytes in use)`.
fn counters(m: &mut Machine) -> Result<(Counters, u64)> {
    let out = command_output(m, "mem", "mem.mm ")?;
    let mm = fields(line(&out, "mem.mm ")?);
    let heap = fields(line(&out, "mem.heap ")?);
    let c = Counters {
        free_and_heap: number(&mm, "free")? + number(&heap, "buddy.pages")?,
        managed: number(&mm, "managed")?,
        sections: number(&mm, "sections")?,
        present: number(&mm, "present")?,
        tables: number(&mm, "vmemmap.tables")?,
        leaves: number(&mm, "vmemmap.leaves")?,
    };
    Ok((c, number(&heap, "used")?))
}

/// Reads console lines until `done` holds for the `hotplug: ` records seen; fails on a
/// refusal, a panic or an error record.
fn records_until(
    m: &mut Machine,
    timeout: Duration,
    done: impl Fn(&[String]) -> bool,
) -> Result<Vec<String>> {
    let deadline = Instant::now() + timeout;
    let mut records = Vec::new();
    while !done(&records) {
        let left = deadline.saturating_duration_since(Instant::now());
        let text = m.expect("\n", left)?;
        let text = text.trim().trim_start_matches(PROMPT).trim();
        if text.starts_with("panic") || text.contains("hotplug: refuse") || text.contains("ERROR") {
            bail!("kernel: {text}");
        }
        if let Some(rest) = text.strip_prefix("hotplug: ") {
            records.push(rest.to_string());
        }
    }
    Ok(records)
}

/// Bytes covered by the records of `kind` (`add`, `online`, `remove`, ...).
fn bytes_of(records: &[String], kind: &str) -> u64 {
    records
        .iter()
        .filter(|r| r.split_whitespace().next() == Some(kind))
        .filter_map(|r| {
            let f = fields(r);
            let (lo, hi) = f.get("range")?.split_once('-')?;
            let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok();
            Some(hex(hi)? - hex(lo)?)
        })
        .sum()
}

/// Pages onlined by the `online` records.
fn pages_onlined(records: &[String]) -> Result<u64> {
    records
        .iter()
        .filter(|r| r.starts_with("online "))
        .map(|r| number(&fields(r), "pages"))
        .sum()
}

/// Runs a command whose output is unique, so later `shell` calls do not match a prompt
/// printed after hotplug records.
fn sync(m: &mut Machine) -> Result<()> {
    m.send_line("cmdline")?;
    m.expect("cmdline: ", tests::COMMAND_TIMEOUT)?;
    m.expect(PROMPT, tests::COMMAND_TIMEOUT)?;
    Ok(())
}

fn poweroff(mut m: Machine) -> Result<()> {
    m.send_line("poweroff")?;
    let outcome = m.wait_exit(Duration::from_secs(60));
    qemu::machine::ensure_outcome(&m, outcome, Outcome::Pass)
}

/// One `size` pc-dimm on a `reserve=off` backend: added, checked against QEMU, removed,
/// every counter restored; prints the times and the heap in use with the DIMM online.
fn large_dimm(arch: Arch, ram: u64, size: u64) -> Result<()> {
    let profile =
        Profile::new(arch).with_memory(Memory::ram(ram).with_slots(2).with_maxmem(ram + size));
    let mut m = boot_to_prompt(&profile, "", MACHINE_TIMEOUT)?;
    let mut qmp = m.qmp()?;
    qmp.set_command_timeout(LARGE_TIMEOUT);
    let (before, _) = counters(&mut m)?;
    let args =
        json!({"qom-type": "memory-backend-ram", "id": "big", "size": size, "reserve": false});
    qmp.execute("object-add", args)?;
    let t0 = Instant::now();
    add_pc_dimm(&mut qmp, "dimm0", "big")?;
    let added = records_until(&mut m, LARGE_TIMEOUT, |r| bytes_of(r, "online") >= size)?;
    let add_time = t0.elapsed();
    sync(&mut m)?;
    qmp.wait_event_where("ACPI_DEVICE_OST", EVENT_TIMEOUT, |d| {
        ost_matches(d, Some("dimm0"), 1, 0)
    })?;
    let dev = hotplug::query_memory_devices(&mut qmp)?
        .into_iter()
        .find(|d| d.id.as_deref() == Some("dimm0"))
        .context("dimm0 missing from query-memory-devices")?;
    let add = added
        .iter()
        .find(|r| r.starts_with("add "))
        .context("no add record")?;
    let want = format!("range={:#x}-{:#x} ", dev.addr, dev.addr + dev.size);
    ensure!(
        dev.size == size && add.contains(&want),
        "QEMU {dev:?} vs {add}"
    );
    let blocks = size / tests::hotplug::BLOCK;
    ensure!(
        number(&fields(add), "altmap.alloc")? == blocks * BLOCK_MEMMAP_PAGES,
        "{add}"
    );
    ensure!(
        pages_onlined(&added)? == size / PAGE - blocks * BLOCK_MEMMAP_PAGES,
        "{added:?}"
    );
    let (online, heap_used) = counters(&mut m)?;
    ensure!(
        online.present == before.present + size / PAGE,
        "{before:?} -> {online:?}"
    );
    let t1 = Instant::now();
    qmp.execute("device_del", json!({"id": "dimm0"}))?;
    let removed = records_until(&mut m, LARGE_TIMEOUT, |r| bytes_of(r, "remove") >= size)?;
    let remove_time = t1.elapsed();
    sync(&mut m)?;
    qmp.wait_event_where("DEVICE_DELETED", EVENT_TIMEOUT, |d| d["device"] == "dimm0")?;
    for r in removed.iter().filter(|r| r.starts_with("remove ")) {
        let f = fields(r);
        ensure!(
            number(&f, "altmap.alloc")? == 0 && number(&f, "altmap.align")? == 0,
            "{r}"
        );
    }
    let (after, _) = counters(&mut m)?;
    ensure!(after == before, "not restored: {before:?} -> {after:?}");
    eprintln!(
        "{arch} pc-dimm {} GiB: add {add_time:?} remove {remove_time:?} heap.used={heap_used} with it online",
        size / GIB
    );
    poweroff(m)
}

#[test]
fn x86_64_a_64g_pc_dimm_goes_online_and_away_with_every_counter_restored() -> Result<()> {
    if skip(Arch::X86_64) {
        return Ok(());
    }
    large_dimm(Arch::X86_64, 512 * MIB, 64 * GIB)
}

#[test]
fn aarch64_a_64g_pc_dimm_goes_online_and_away_with_every_counter_restored() -> Result<()> {
    if skip(Arch::Aarch64) {
        return Ok(());
    }
    large_dimm(Arch::Aarch64, GIB, 64 * GIB)
}

/// s390x: virtio-mem-ccw grown to 48 GiB (192 memory blocks with 4 KiB memmap leaves:
/// the old kernel died near 30 GiB) and shrunk to 0, in sub-block mode with the memmap
/// in boot RAM.
#[test]
fn s390x_virtio_mem_grows_to_48g_and_shrinks_to_0_with_every_counter_restored() -> Result<()> {
    const ARCH: Arch = Arch::S390x;
    const SIZE: u64 = 48 * GIB;
    if skip(ARCH) {
        return Ok(());
    }
    // Sub-block mode (1 MiB sub-blocks in 256 MiB memory blocks) keeps the memmap in
    // boot RAM, as Linux's driver does: 16 MiB per GiB, 768 MiB for 48 GiB.
    let ram = 1536 * MIB;
    let profile = Profile::new(ARCH)
        .with_memory(Memory::ram(ram).with_maxmem(ram + SIZE))
        .with_object(format!(
            "memory-backend-ram,id=vmem0,size={SIZE},reserve=off"
        ))
        .with_device(format!(
            "{},id=vm0,memdev=vmem0,requested-size=0",
            hotplug::virtio_mem_driver(ARCH)
        ));
    let mut m = boot_to_prompt(&profile, "", MACHINE_TIMEOUT)?;
    let mut qmp = m.qmp()?;
    let (before, _) = counters(&mut m)?;
    let t0 = Instant::now();
    hotplug::set_requested_size(&mut qmp, "vm0", SIZE)?;
    let grown = records_until(&mut m, LARGE_TIMEOUT, |r| bytes_of(r, "online") >= SIZE)?;
    let grow_time = t0.elapsed();
    hotplug::wait_plugged_size(&mut qmp, "vm0", SIZE, LARGE_TIMEOUT)?;
    sync(&mut m)?;
    let blocks = SIZE / (256 * MIB);
    ensure!(pages_onlined(&grown)? == SIZE / PAGE, "onlined pages");
    // A 256 MiB block's memmap: 65536 struct pages of 64 bytes = 1024 pages, from RAM.
    let memmap_pages: u64 = grown
        .iter()
        .filter(|r| r.starts_with("add "))
        .map(|r| number(&fields(r), "memmap.ram_pages"))
        .sum::<Result<u64>>()?;
    ensure!(
        memmap_pages == blocks * 1024,
        "memmap pages from RAM: {memmap_pages}"
    );
    let (online, heap_used) = counters(&mut m)?;
    ensure!(
        online.present == before.present + SIZE / PAGE,
        "{before:?} -> {online:?}"
    );
    let t1 = Instant::now();
    hotplug::set_requested_size(&mut qmp, "vm0", 0)?;
    records_until(&mut m, LARGE_TIMEOUT, |r| bytes_of(r, "remove") >= SIZE)?;
    let shrink_time = t1.elapsed();
    hotplug::wait_plugged_size(&mut qmp, "vm0", 0, LARGE_TIMEOUT)?;
    sync(&mut m)?;
    let (after, _) = counters(&mut m)?;
    ensure!(after == before, "not restored: {before:?} -> {after:?}");
    eprintln!(
        "s390x virtio-mem 48 GiB: grow {grow_time:?} shrink {shrink_time:?} heap.used={heap_used} at 48 GiB"
    );
    poweroff(m)
}

/// With every heap allocation failing: `probe` is refused with `-ENOMEM` and changes
/// nothing; other commands still answer; after `inject clear` the same probe works.
fn refused_probe(m: &mut Machine, probe: &str) -> Result<()> {
    let armed = shell(m, "inject heap 1 always")?;
    line(&armed, "inject: kind=heap nth=1 mode=always")?;
    let before = shell(m, "mem")?;
    let refused = shell(m, probe)?;
    let r = fields(line(&refused, "hotplug: refuse op=add ")?);
    ensure!(
        r.get("reason") == Some(&"mm") && r.get("errno") == Some(&"-12"),
        "{refused}"
    );
    let after = shell(m, "mem")?;
    ensure!(
        line(&after, "mem.mm ")? == line(&before, "mem.mm ")?,
        "a refused add changed mem:\n{before}\n{after}"
    );
    let heap = fields(line(&after, "mem.heap ")?);
    ensure!(number(&heap, "injected")? > 0, "{after}");
    let list = shell(m, "hotplug")?;
    line(&list, "hotplug.summary ranges=0 ")?;
    Ok(())
}

fn accepted_probe(m: &mut Machine, probe: &str) -> Result<()> {
    let cleared = shell(m, "inject clear")?;
    line(&cleared, "inject: cleared")?;
    let added = shell(m, probe)?;
    line(&added, "hotplug: online ")?;
    let removed = shell(m, &probe.replacen("probe", "unprobe", 1))?;
    line(&removed, "hotplug: remove ")?;
    Ok(())
}

/// x86_64 and aarch64: `probe` and a pc-dimm under `inject heap 1 always`.
fn heap_refusal_with_dimm(arch: Arch, ram: u64, append: &str, probe: &str) -> Result<()> {
    let profile =
        Profile::new(arch).with_memory(Memory::ram(ram).with_slots(4).with_maxmem(8 * GIB));
    let mut m = boot_to_prompt(&profile, append, MACHINE_TIMEOUT)?;
    let mut qmp = m.qmp()?;
    refused_probe(&mut m, probe)?;
    hotplug::add_ram_backend(&mut qmp, "mem-d0", 128 * MIB)?;
    add_pc_dimm(&mut qmp, "d0", "mem-d0")?;
    let refusal = tests::hotplug::record(&mut m, "hotplug: refuse op=add ")?;
    ensure!(
        refusal.contains("errno=-12") && refusal.contains("via=dimm"),
        "{refusal}"
    );
    qmp.wait_event_where("ACPI_DEVICE_OST", EVENT_TIMEOUT, |d| {
        ost_matches(d, Some("d0"), 1, 1)
    })?;
    sync(&mut m)?;
    accepted_probe(&mut m, probe)?;
    // The refused DIMM never came online: its eject goes through at once.
    qmp.execute("device_del", json!({"id": "d0"}))?;
    qmp.wait_event_where("DEVICE_DELETED", EVENT_TIMEOUT, |d| d["device"] == "d0")?;
    poweroff(m)
}

#[test]
fn x86_64_heap_exhaustion_refuses_adds_and_changes_nothing() -> Result<()> {
    if skip(Arch::X86_64) {
        return Ok(());
    }
    heap_refusal_with_dimm(Arch::X86_64, GIB, "mem=512M", "probe 0x20000000 0x10000000")
}

#[test]
fn aarch64_heap_exhaustion_refuses_adds_and_changes_nothing() -> Result<()> {
    if skip(Arch::Aarch64) {
        return Ok(());
    }
    heap_refusal_with_dimm(
        Arch::Aarch64,
        GIB,
        "mem=1536M",
        "probe 0x60000000 0x10000000",
    )
}

/// s390x: `probe`, and a virtio-mem resize, under `inject heap 1 always`.
#[test]
fn s390x_heap_exhaustion_refuses_adds_and_changes_nothing() -> Result<()> {
    const ARCH: Arch = Arch::S390x;
    if skip(ARCH) {
        return Ok(());
    }
    let profile = Profile::new(ARCH)
        .with_memory(Memory::ram(GIB).with_maxmem(4 * GIB))
        .with_object(format!("memory-backend-ram,id=vmem0,size={}", GIB))
        .with_device(format!(
            "{},id=vm0,memdev=vmem0,requested-size=0",
            hotplug::virtio_mem_driver(ARCH)
        ));
    let mut m = boot_to_prompt(&profile, "mem=512M", MACHINE_TIMEOUT)?;
    let mut qmp = m.qmp()?;
    let probe = "probe 0x20000000 0x10000000";
    refused_probe(&mut m, probe)?;
    hotplug::set_requested_size(&mut qmp, "vm0", 256 * MIB)?;
    let stop = tests::hotplug::record(&mut m, "virtio-mem: stop dev=0 op=grow ")?;
    ensure!(stop.contains("reason=no-memory"), "{stop}");
    sync(&mut m)?;
    let plugged = hotplug::query_memory_devices(&mut qmp)?;
    ensure!(
        plugged.iter().all(|d| d.size == 0),
        "nothing may be plugged: {plugged:?}"
    );
    accepted_probe(&mut m, probe)?;
    // A new request resumes growing once the heap serves again.
    hotplug::set_requested_size(&mut qmp, "vm0", 512 * MIB)?;
    records_until(&mut m, LARGE_TIMEOUT, |r| {
        bytes_of(r, "online") >= 512 * MIB
    })?;
    hotplug::wait_plugged_size(&mut qmp, "vm0", 512 * MIB, LARGE_TIMEOUT)?;
    sync(&mut m)?;
    poweroff(m)
}
