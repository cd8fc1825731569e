//! x86_64 memory hotplug driven from QMP (issue 7): pc-dimm add and remove through the
//! ACPI memory-hotplug controller with `_OST`, refusal of a busy remove, repeated cycles,
//! NVDIMM hot-add through the FIT mailbox, virtio-mem-pci grow and shrink. Every figure
//! the kernel prints is compared with QEMU's own (`query-memory-devices`, QMP events) or
//! with the kernel's figures before the change. The machines are entered directly (PVH);
//! pc-dimm add and remove runs on both boot paths, as the ACPI tables differ (QEMU's own
//! under SeaBIOS, OVMF's copies under UEFI).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use qemu::hotplug::query_memory_devices;
use qemu::profile::{GIB, MIB};
use qemu::qmp::Qmp;
use qemu::{Arch, Machine, Outcome, Profile};
use serde_json::json;
use tests::hotplug::{
    Added, BLOCK, BLOCK_MEMMAP_PAGES, EVENT_TIMEOUT, PAGE, add_dimm, command_output, mm_figures,
    ost_matches, qemu_range, range, record, settle,
};
use tests::{boot_to_prompt, fields, line, number, selected, shell};

const ARCH: Arch = Arch::X86_64;
const MACHINE_TIMEOUT: Duration = Duration::from_secs(300);
const RECORD_TIMEOUT: Duration = Duration::from_secs(60);

fn skip() -> bool {
    if selected(ARCH) {
        return false;
    }
    eprintln!("skipped: {ARCH} not in HOTMEM_ARCHES");
    true
}

/// The default x86 machine (q35, nvdimm=on, 512M, 4 slots, maxmem 8G), at the prompt.
fn machine(append: &str) -> Result<(Machine, Qmp)> {
    machine_on(&tests::profile(ARCH), append)
}

/// `profile`'s machine at the prompt, with its QMP connection.
fn machine_on(profile: &Profile, append: &str) -> Result<(Machine, Qmp)> {
    let m = boot_to_prompt(profile, append, MACHINE_TIMEOUT)?;
    let qmp = m.qmp()?;
    Ok((m, qmp))
}

/// `device_del`, then `_OST(3, 0x84)`, the kernel's offline and remove records and
/// `DEVICE_DELETED`; returns `(remove record, tables.freed)`.
fn remove_dimm(m: &mut Machine, qmp: &mut Qmp, id: &str, added: &Added) -> Result<u64> {
    qmp.execute("device_del", json!({"id": id}))?;
    let offline = record(m, "hotplug: offline ")?;
    let remove = record(m, "hotplug: remove ")?;
    settle(m)?;
    qmp.wait_event_where("ACPI_DEVICE_OST", EVENT_TIMEOUT, |d| {
        ost_matches(d, Some(id), 3, 0x84)
    })?;
    qmp.wait_event_where("DEVICE_DELETED", EVENT_TIMEOUT, |d| d["device"] == id)?;
    qmp.wait_event_where("ACPI_DEVICE_OST", EVENT_TIMEOUT, |d| {
        ost_matches(d, None, 3, 0)
    })?;
    let off = fields(&offline);
    ensure!(range(&off, "range")? == added.range, "{offline}");
    ensure!(number(&off, "pages")? == added.pages, "{offline}");
    let r = fields(&remove);
    ensure!(range(&r, "range")? == added.range, "{remove}");
    ensure!(number(&r, "altmap.alloc")? == 0, "{remove}");
    ensure!(number(&r, "altmap.align")? == 0, "{remove}");
    let freed = number(&r, "tables.freed")?;
    ensure!(
        freed == added.tables_new,
        "tables freed vs new: {remove} (new {})",
        added.tables_new
    );
    ensure!(qemu_range(qmp, id)?.is_none(), "{id} still in QEMU");
    qmp.execute("object-del", json!({"id": format!("mem-{id}")}))?;
    Ok(freed)
}

/// Every memory block of `[start, end)` hosts its own memmap: the first and last struct
/// page of the block translate (software walk of the live tables) into the block's
/// first 512 pages, the altmap.
fn check_memmap_inside(m: &mut Machine, (start, end): (u64, u64)) -> Result<()> {
    let text = command_output(m, "vmemmap", "vmemmap.stats ")?;
    for block in (start..end).step_by(BLOCK as usize) {
        let pfn = format!("pfn={:#x}-", block / PAGE);
        let r = text
            .lines()
            .find(|l| l.starts_with("vmemmap.range ") && l.contains(&pfn))
            .with_context(|| format!("no vmemmap range for {block:#x}:\n{text}"))?;
        let (va, va_end) = range(&fields(r), "va")?;
        for at in [va, va_end - 64] {
            let walk = command_output(m, &format!("walk {at:#x}"), "walk.result ")?;
            let w = fields(line(&walk, "walk.result ")?);
            let pa = number(&w, "pa")?;
            ensure!(
                (block..block + BLOCK_MEMMAP_PAGES * PAGE).contains(&pa),
                "struct page at {at:#x} lives at {pa:#x}, outside the block's altmap:\n{walk}"
            );
        }
    }
    Ok(())
}

fn poweroff(mut m: Machine) -> Result<()> {
    m.send_line("poweroff")?;
    let outcome = m.wait_exit(Duration::from_secs(30));
    qemu::machine::ensure_outcome(&m, outcome, Outcome::Pass)
}

/// pc-dimm add then remove: the range equals QEMU's, free pages grow by exactly the
/// onlined count (less the table pages the records name), the memmap is self-hosted
/// (altmap.alloc=512 per block), and the remove gives everything back. Entered directly
/// and through UEFI + the Limine-protocol loader.
#[test]
fn pc_dimm_add_and_remove_match_qemu_and_restore_the_figures() -> Result<()> {
    if skip() {
        return Ok(());
    }
    pc_dimm_add_and_remove(&tests::profile(ARCH))?;
    if tests::profile(ARCH).boot != tests::limine_profile(ARCH).boot {
        pc_dimm_add_and_remove(&tests::limine_profile(ARCH))?;
    }
    Ok(())
}

fn pc_dimm_add_and_remove(profile: &Profile) -> Result<()> {
    let (mut m, mut qmp) = machine_on(profile, "")?;
    let (free0, tables0) = mm_figures(&mut m)?;
    let added = add_dimm(&mut m, &mut qmp, "dimm1", BLOCK)?;
    let (free1, tables1) = mm_figures(&mut m)?;
    ensure!(free1 == added.free_after, "mem vs online record");
    ensure!(
        free1 == free0 + added.pages - added.ram_pages,
        "free {free0} -> {free1}, onlined {}, tables {}",
        added.pages,
        added.ram_pages
    );
    ensure!(
        tables1 == tables0 + added.tables_new,
        "{tables0} -> {tables1}"
    );
    let text = shell(&mut m, "hotplug")?;
    ensure!(
        text.contains("hotplug.slot source=acpi-mhpd slot=0 ")
            && text.contains("state=online")
            && text.contains("notify=sci"),
        "{text}"
    );
    remove_dimm(&mut m, &mut qmp, "dimm1", &added)?;
    ensure!(mm_figures(&mut m)? == (free0, tables0), "not restored");
    eprintln!(
        "pc-dimm 128M ({}): range={:#x}-{:#x} pages={} tables.new={} host_latency={:?} kernel_us={}",
        profile.boot,
        added.range.0,
        added.range.1,
        added.pages,
        added.tables_new,
        added.host_latency,
        added.kernel_us
    );
    poweroff(m)
}

/// A page of the DIMM in use: the remove is refused with `_OST(3, 0x82)` and the DIMM
/// stays; once the page is freed the same `device_del` goes through.
#[test]
fn busy_dimm_remove_is_refused_then_succeeds_after_free() -> Result<()> {
    if skip() {
        return Ok(());
    }
    let (mut m, mut qmp) = machine("")?;
    let (free0, tables0) = mm_figures(&mut m)?;
    let added = add_dimm(&mut m, &mut qmp, "dimm2", BLOCK)?;
    // One data page in the middle of the DIMM (its first 512 pages hold its memmap).
    let want = added.range.0 / PAGE + BLOCK_MEMMAP_PAGES + 1000;
    let out = shell(&mut m, &format!("alloc 1 {want:#x}"))?;
    let a = fields(line(&out, "alloc: ")?);
    let pfn = number(&a, "first_pfn")?;
    ensure!(pfn == want, "alloc did not take the DIMM's page: {out}");
    qmp.execute("device_del", json!({"id": "dimm2"}))?;
    let refuse = record(&mut m, "hotplug: refuse ")?;
    settle(&mut m)?;
    let r = fields(&refuse);
    ensure!(r.get("op") == Some(&"remove"), "{refuse}");
    ensure!(r.get("reason") == Some(&"busy"), "{refuse}");
    ensure!(number(&r, "pfn")? == pfn, "{refuse}");
    let ost = qmp.wait_event_where("ACPI_DEVICE_OST", EVENT_TIMEOUT, |d| {
        let s = d["info"]["status"].as_u64().unwrap_or(0);
        d["info"]["device"] == "dimm2" && d["info"]["source"] == 3 && s != 0 && s != 0x84
    })?;
    ensure!(
        ost["data"]["info"]["status"] == 0x82,
        "not device-busy: {ost}"
    );
    ensure!(
        qemu_range(&mut qmp, "dimm2")? == Some(added.range),
        "the DIMM must stay"
    );
    ensure!(
        !qmp.take_events()
            .iter()
            .any(|e| e["event"] == "DEVICE_DELETED"),
        "deleted although refused"
    );
    let hp = shell(&mut m, "hotplug")?;
    ensure!(hp.contains("state=online"), "{hp}");
    let (free_busy, _) = mm_figures(&mut m)?;
    ensure!(
        free_busy == added.free_after - 1,
        "kernel inconsistent after refusal"
    );
    let out = shell(&mut m, "free")?;
    ensure!(
        number(&fields(line(&out, "free: ")?), "pages")? == 1,
        "{out}"
    );
    remove_dimm(&mut m, &mut qmp, "dimm2", &added)?;
    ensure!(mm_figures(&mut m)? == (free0, tables0), "not restored");
    poweroff(m)
}

/// Ten add/remove cycles (128 MiB and 256 MiB DIMMs alternating) end with free pages and
/// vmemmap table pages exactly where they started; then a 1 GiB DIMM's latency from the
/// QMP return to the online record.
#[test]
fn ten_cycles_restore_the_figures_and_1g_latency() -> Result<()> {
    if skip() {
        return Ok(());
    }
    let (mut m, mut qmp) = machine("")?;
    let start = mm_figures(&mut m)?;
    for i in 0..10 {
        let size = if i % 2 == 0 { BLOCK } else { 2 * BLOCK };
        let id = format!("cyc{i}");
        let added = add_dimm(&mut m, &mut qmp, &id, size)?;
        remove_dimm(&mut m, &mut qmp, &id, &added)?;
        ensure!(
            mm_figures(&mut m)? == start,
            "cycle {i} left the figures changed"
        );
    }
    let added = add_dimm(&mut m, &mut qmp, "big", GIB)?;
    eprintln!(
        "pc-dimm 1G: range={:#x}-{:#x} pages={} host_latency={:?} kernel_us={}",
        added.range.0, added.range.1, added.pages, added.host_latency, added.kernel_us
    );
    remove_dimm(&mut m, &mut qmp, "big", &added)?;
    ensure!(
        mm_figures(&mut m)? == start,
        "1G cycle left the figures changed"
    );
    poweroff(m)
}

/// The polling fallback (`hotplug.notify=poll`) runs the same add/remove flow.
#[test]
fn polling_fallback_adds_and_removes() -> Result<()> {
    if skip() {
        return Ok(());
    }
    let (mut m, mut qmp) = machine("hotplug.notify=poll")?;
    let start = mm_figures(&mut m)?;
    let added = add_dimm(&mut m, &mut qmp, "pdimm", 2 * BLOCK)?;
    check_memmap_inside(&mut m, added.range)?;
    let hp = shell(&mut m, "hotplug")?;
    ensure!(hp.contains("notify=gpe-poll"), "{hp}");
    remove_dimm(&mut m, &mut qmp, "pdimm", &added)?;
    ensure!(mm_figures(&mut m)? == start, "not restored");
    poweroff(m)
}

/// NVDIMM hot-add: GPE0 bit 4, the FIT re-read through the DSM mailbox, and the new SPA
/// range becomes a ZONE_DEVICE region whose altmap matches Linux's nvdimm formula.
#[test]
fn nvdimm_hot_add_becomes_a_region_with_linux_altmap() -> Result<()> {
    if skip() {
        return Ok(());
    }
    let (mut m, mut qmp) = machine("")?;
    let dir = qemu::cargo::target_dir().join("nvdimm");
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("x86-hotplug-0.img");
    let _ = std::fs::remove_file(&file);
    let size = 256 * MIB;
    let backend = json!({
        "qom-type": "memory-backend-file", "id": "nvm-hot", "share": true,
        "mem-path": file.display().to_string(), "size": size + 128 * 1024,
    });
    qmp.execute("object-add", backend)?;
    let device =
        json!({"driver": "nvdimm", "id": "nvhot", "memdev": "nvm-hot", "label-size": 131072});
    qmp.execute("device_add", device)?;
    let add = record(&mut m, "hotplug: add-device ")?;
    settle(&mut m)?;
    let (start, end) = qemu_range(&mut qmp, "nvhot")?.context("QEMU lost nvhot")?;
    ensure!(end - start == size, "QEMU's NVDIMM is {start:#x}-{end:#x}");
    // The record ends `via=nvdimm range=N` (the FIT's SPA index), so take the first
    // `range=` (the physical range) and the region's own record for the figures.
    let mut a = fields(&add);
    let phys = add
        .split_whitespace()
        .find_map(|w| w.strip_prefix("range="));
    a.insert("range", phys.context("no range")?);
    ensure!(range(&a, "range")? == (start, end), "kernel vs QEMU: {add}");
    ensure!(a.get("via") == Some(&"nvdimm"), "{add}");
    let id = a.get("id").copied().context("no region id")?.to_string();
    let console = m.console();
    let region = line(&console, &format!("region: add id={id} "))?;
    let r = fields(region);
    ensure!(
        r.get("kind") == Some(&"pmem") && r.get("source") == Some(&"nfit"),
        "{region}"
    );
    ensure!(
        (number(&r, "start")?, number(&r, "size")?) == (start, size),
        "{region}"
    );
    tests::regions::check_altmap_and_verify(&mut m, &id, start, size)?;
    let hp = shell(&mut m, "hotplug")?;
    ensure!(
        hp.contains("name=acpi-nvdimm") && hp.contains("added=1"),
        "{hp}"
    );
    poweroff(m)
}

/// The kernel's view of virtio-mem device 0: `(plugged per the device config, the
/// driver's own count, bytes of hot-added ranges via virtio-mem)`.
fn virtio_mem_view(m: &mut Machine) -> Result<(u64, u64, u64)> {
    let text = command_output(m, "hotplug", "hotplug.summary")?;
    let dev = fields(line(&text, "virtio-mem dev=0 ")?);
    let ranges: u64 = text
        .lines()
        .filter(|l| l.starts_with("hotplug.range ") && l.contains("via=virtio-mem"))
        .map(|l| range(&fields(l), "range").map(|(s, e)| e - s))
        .sum::<Result<u64>>()?;
    Ok((number(&dev, "plugged")?, number(&dev, "kernel")?, ranges))
}

/// virtio-mem-pci (cold-plugged, requested-size 0): grow to 1 GiB and shrink to 0;
/// QEMU's plugged size equals the kernel's figure at each step, and shrinking gives
/// every page and table back.
#[test]
fn virtio_mem_pci_grows_to_1g_and_shrinks_to_0() -> Result<()> {
    if skip() {
        return Ok(());
    }
    let profile = tests::profile(ARCH)
        .with_object("memory-backend-ram,id=vmem0,size=2G")
        .with_device("virtio-mem-pci,id=vm0,memdev=vmem0,requested-size=0");
    let mut m = boot_to_prompt(&profile, "", MACHINE_TIMEOUT)?;
    let mut qmp = m.qmp()?;
    let start = mm_figures(&mut m)?;
    ensure!(virtio_mem_view(&mut m)? == (0, 0, 0), "not empty at boot");
    for target in [GIB, 0] {
        qemu::hotplug::set_requested_size(&mut qmp, "vm0", target)?;
        qemu::hotplug::wait_plugged_size(&mut qmp, "vm0", target, Duration::from_secs(120))?;
        // The driver may still be finishing its last block: ask until it settles.
        let deadline = Instant::now() + RECORD_TIMEOUT;
        let view = loop {
            let view = virtio_mem_view(&mut m)?;
            if view == (target, target, target) || Instant::now() > deadline {
                break view;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        let qemu_size = query_memory_devices(&mut qmp)?
            .into_iter()
            .find(|d| d.id.as_deref() == Some("vm0"))
            .context("no vm0")?
            .size;
        ensure!(
            view == (qemu_size, qemu_size, qemu_size),
            "QEMU plugged {qemu_size:#x}, kernel (config, driver, ranges) {view:x?}"
        );
    }
    ensure!(
        mm_figures(&mut m)? == start,
        "shrink to 0 did not restore the figures"
    );
    poweroff(m)
}
