//! aarch64 memory hotplug driven from QMP (issue 7) on QEMU `virt`. Under AAVMF (the
//! GED exists only when firmware is loaded): pc-dimm add and remove through the GED
//! (selector, GIC INTID 41) and the memory-hotplug controller over MMIO with `_OST`,
//! refusal of a busy remove, repeated cycles, the polling fallback, NVDIMM hot-add
//! through the FIT mailbox, and virtio-mem-pci grow and shrink with ACPI. Entered
//! directly as an arm64 Image: virtio-mem-pci with a device tree (BARs placed by the
//! kernel). Every figure the kernel prints is compared with QEMU's own
//! (`query-memory-devices`, QMP events) or with the kernel's figures before the change.

use std::time::Duration;

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
use tests::{boot_to_prompt, fields, line, number, shell};

const ARCH: Arch = Arch::Aarch64;
const MACHINE_TIMEOUT: Duration = Duration::from_secs(400);
/// `_OST` status "device busy" (Linux's answer to a refused offline).
const OST_BUSY: u64 = 0x82;
const OST_EJECT_IN_PROGRESS: u64 = 0x84;

/// The default aarch64 machine (virt, nvdimm=on, AAVMF, 1G, 4 slots, maxmem 8G) plus
/// `extra` devices, at the prompt, with its QMP connection.
fn machine(profile: Profile, append: &str) -> Result<(Machine, Qmp)> {
    let m = boot_to_prompt(&profile, append, MACHINE_TIMEOUT)?;
    let qmp = m.qmp()?;
    Ok((m, qmp))
}

/// `device_del`, then `_OST(3, 0x84)`, the kernel's offline and remove records,
/// `DEVICE_DELETED` and `_OST(3, 0)`; checks the remove gave the altmap and tables back.
fn remove_dimm(m: &mut Machine, qmp: &mut Qmp, id: &str, added: &Added) -> Result<()> {
    qmp.execute("device_del", json!({"id": id}))?;
    let offline = record(m, "hotplug: offline ")?;
    let remove = record(m, "hotplug: remove ")?;
    settle(m)?;
    qmp.wait_event_where("ACPI_DEVICE_OST", EVENT_TIMEOUT, |d| {
        ost_matches(d, Some(id), 3, OST_EJECT_IN_PROGRESS)
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
    // The kernel's own check: altmap back to 0, nothing of the range present or mapped.
    ensure!(r.get("teardown") == Some(&"clean"), "{remove}");
    ensure!(number(&r, "altmap.align")? == 0, "{remove}");
    ensure!(
        number(&r, "tables.freed")? == added.tables_new,
        "tables freed vs new: {remove} (new {})",
        added.tables_new
    );
    ensure!(qemu_range(qmp, id)?.is_none(), "{id} still in QEMU");
    qmp.execute("object-del", json!({"id": format!("mem-{id}")}))?;
    Ok(())
}

fn poweroff(mut m: Machine) -> Result<()> {
    m.send_line("poweroff")?;
    let outcome = m.wait_exit(Duration::from_secs(30));
    qemu::machine::ensure_outcome(&m, outcome, Outcome::Pass)
}

/// pc-dimm add then remove (128 MiB, then 1 GiB): the range equals QEMU's, free pages
/// grow by exactly the onlined count, the memmap is self-hosted (altmap.alloc=512 per
/// block, align=0), the GED interrupt came through the GIC, and the remove gives
/// everything back.
#[test]
fn pc_dimm_add_and_remove_match_qemu_and_restore_the_figures() -> Result<()> {
    if tests::skipped(ARCH) {
        return Ok(());
    }
    let (mut m, mut qmp) = machine(tests::limine_profile(ARCH), "")?;
    let (free0, tables0) = mm_figures(&mut m)?;
    let added = add_dimm(&mut m, &mut qmp, "dimm1", BLOCK)?;
    let (free1, tables1) = mm_figures(&mut m)?;
    ensure!(free1 == added.free_after, "mem vs online record");
    ensure!(
        free1 == free0 + added.pages,
        "free {free0} -> {free1}, onlined {}",
        added.pages
    );
    ensure!(
        tables1 == tables0 + added.tables_new,
        "{tables0} -> {tables1}"
    );
    let text = shell(&mut m, "hotplug")?;
    let source = fields(line(&text, "hotplug.source name=acpi-mhpd ")?);
    ensure!(source.get("notify") == Some(&"irq"), "{text}");
    ensure!(
        number(&source, "ged.irqs")? >= 1,
        "no GED interrupt: {text}"
    );
    ensure!(
        text.contains("hotplug.slot source=acpi-mhpd slot=0 ") && text.contains("state=online"),
        "{text}"
    );
    remove_dimm(&mut m, &mut qmp, "dimm1", &added)?;
    ensure!(mm_figures(&mut m)? == (free0, tables0), "not restored");

    let big = add_dimm(&mut m, &mut qmp, "dimm1g", GIB)?;
    ensure!(
        mm_figures(&mut m)?.0 == free0 + big.pages,
        "1G: free pages vs onlined"
    );
    eprintln!(
        "aarch64 pc-dimm 1G: range={:#x}-{:#x} pages={} host_latency={:?} kernel_us={}",
        big.range.0, big.range.1, big.pages, big.host_latency, big.kernel_us
    );
    remove_dimm(&mut m, &mut qmp, "dimm1g", &big)?;
    ensure!(mm_figures(&mut m)? == (free0, tables0), "1G: not restored");
    poweroff(m)
}

/// Pages of the DIMM in use: the remove is refused with `_OST(3, 0x82)`, no
/// `DEVICE_DELETED`, the DIMM stays in QEMU and online in the kernel; once the pages are
/// freed the next `device_del` goes through.
#[test]
fn busy_dimm_remove_is_refused_then_succeeds_after_free() -> Result<()> {
    if tests::skipped(ARCH) {
        return Ok(());
    }
    let (mut m, mut qmp) = machine(tests::limine_profile(ARCH), "")?;
    let (free0, tables0) = mm_figures(&mut m)?;
    let added = add_dimm(&mut m, &mut qmp, "dimm2", BLOCK)?;
    // Frames in the middle of the DIMM's data (past its self-hosted memmap).
    let pfn = added.range.0 / PAGE + BLOCK_MEMMAP_PAGES + 1024;
    let out = shell(&mut m, &format!("alloc 16 {pfn:#x}"))?;
    let a = fields(line(&out, "alloc: ")?);
    ensure!(
        number(&a, "first_pfn")? == pfn && number(&a, "pages")? == 16,
        "{out}"
    );
    qmp.execute("device_del", json!({"id": "dimm2"}))?;
    let refuse = record(&mut m, "hotplug: refuse ")?;
    settle(&mut m)?;
    let r = fields(&refuse);
    ensure!(r.get("op") == Some(&"remove"), "{refuse}");
    ensure!(r.get("reason") == Some(&"busy"), "{refuse}");
    ensure!(number(&r, "pfn")? == pfn, "{refuse}");
    qmp.wait_event_where("ACPI_DEVICE_OST", EVENT_TIMEOUT, |d| {
        ost_matches(d, Some("dimm2"), 3, OST_EJECT_IN_PROGRESS)
    })?;
    let ost = qmp.wait_event_where("ACPI_DEVICE_OST", EVENT_TIMEOUT, |d| {
        let s = d["info"]["status"].as_u64().unwrap_or(0);
        d["info"]["device"] == "dimm2" && d["info"]["source"] == 3 && s != 0 && s != 0x84
    })?;
    ensure!(ost["data"]["info"]["status"] == OST_BUSY, "not busy: {ost}");
    ensure!(
        qmp.wait_event_where("DEVICE_DELETED", Duration::from_secs(2), |_| true)
            .is_err(),
        "deleted although refused"
    );
    ensure!(
        qemu_range(&mut qmp, "dimm2")? == Some(added.range),
        "the DIMM must stay"
    );
    let hp = shell(&mut m, "hotplug")?;
    ensure!(
        hp.contains("hotplug.slot source=acpi-mhpd slot=0 ") && hp.contains("state=online"),
        "{hp}"
    );
    let (free_busy, _) = mm_figures(&mut m)?;
    ensure!(
        free_busy == added.free_after - 16,
        "inconsistent after refusal"
    );
    let out = shell(&mut m, "free")?;
    ensure!(
        number(&fields(line(&out, "free: ")?), "pages")? == 16,
        "{out}"
    );
    remove_dimm(&mut m, &mut qmp, "dimm2", &added)?;
    ensure!(mm_figures(&mut m)? == (free0, tables0), "not restored");
    poweroff(m)
}

/// Ten add/remove cycles (128 MiB and 256 MiB DIMMs alternating) end with free pages,
/// vmemmap table pages and the hot-added list exactly where they started.
#[test]
fn ten_dimm_cycles_restore_the_figures() -> Result<()> {
    if tests::skipped(ARCH) {
        return Ok(());
    }
    let (mut m, mut qmp) = machine(tests::limine_profile(ARCH), "")?;
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
    let hp = shell(&mut m, "hotplug")?;
    let summary = fields(line(&hp, "hotplug.summary ")?);
    ensure!(number(&summary, "ranges")? == 0, "{hp}");
    let source = fields(line(&hp, "hotplug.source name=acpi-mhpd ")?);
    ensure!(
        number(&source, "inserts")? == 10 && number(&source, "ejects")? == 10,
        "{hp}"
    );
    poweroff(m)
}

/// `hotplug.notify=poll`: the GED line stays off, the selector is polled, and the same
/// add/remove flow works.
#[test]
fn ged_polling_fallback_adds_and_removes() -> Result<()> {
    if tests::skipped(ARCH) {
        return Ok(());
    }
    let (mut m, mut qmp) = machine(tests::limine_profile(ARCH), "hotplug.notify=poll")?;
    let start = mm_figures(&mut m)?;
    let added = add_dimm(&mut m, &mut qmp, "pdimm", 2 * BLOCK)?;
    let hp = shell(&mut m, "hotplug")?;
    let source = fields(line(&hp, "hotplug.source name=acpi-mhpd ")?);
    ensure!(source.get("notify") == Some(&"poll"), "{hp}");
    ensure!(number(&source, "ged.irqs")? == 0, "{hp}");
    remove_dimm(&mut m, &mut qmp, "pdimm", &added)?;
    ensure!(mm_figures(&mut m)? == start, "not restored");
    poweroff(m)
}

/// NVDIMM hot-add: GED bit 0x4, the FIT re-read through the DSM mailbox, and the new SPA
/// range becomes a ZONE_DEVICE region at QEMU's address with Linux's nvdimm altmap.
#[test]
fn nvdimm_hot_add_becomes_a_region_with_linux_altmap() -> Result<()> {
    if tests::skipped(ARCH) {
        return Ok(());
    }
    let (mut m, mut qmp) = machine(tests::limine_profile(ARCH), "")?;
    let dir = qemu::cargo::target_dir().join("nvdimm");
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("arm-hotadd.img");
    let _ = std::fs::remove_file(&file);
    let size = 256 * MIB;
    qmp.execute(
        "object-add",
        json!({"qom-type": "memory-backend-file", "id": "nvm-hot", "mem-path": file,
               "size": size + 128 * 1024, "share": true}),
    )?;
    qmp.execute(
        "device_add",
        json!({"driver": "nvdimm", "id": "nvhot", "memdev": "nvm-hot", "label-size": 131072}),
    )?;
    let add = record(&mut m, "region: add ")?;
    let populate = record(&mut m, "region: populate ")?;
    let done = record(&mut m, "hotplug: add-device ")?;
    // The full verification follows the add (off the hot path).
    let verify = record(&mut m, "verify: ")?;
    settle(&mut m)?;
    let (start, end) = qemu_range(&mut qmp, "nvhot")?.context("QEMU lost the NVDIMM")?;
    ensure!(end - start == size, "QEMU size {:#x}", end - start);
    let a = fields(&add);
    ensure!(
        number(&a, "start")? == start && number(&a, "end")? == end,
        "{add}"
    );
    ensure!(a.get("kind") == Some(&"pmem"), "{add}");
    // `via=nvdimm range=N` repeats the key, so match the text.
    ensure!(
        done.contains(&format!("range={start:#x}-{end:#x} via=nvdimm")),
        "{done}"
    );
    let (reserve, free, offset) = tests::regions::linux_altmap(start, size);
    let p = fields(&populate);
    let (alloc, align) = (number(&p, "altmap.alloc")?, number(&p, "altmap.align")?);
    ensure!(
        reserve + alloc + align == offset && alloc + align == free,
        "altmap vs Linux (reserve {reserve}, free {free}, offset {offset}): {populate}"
    );
    ensure!(fields(&verify).get("result") == Some(&"pass"), "{verify}");
    let regions = shell(&mut m, "regions")?;
    ensure!(
        regions.contains(&format!("data.pfn={:#x}", start / PAGE + offset)),
        "data pfn vs Linux offset {offset}:\n{regions}"
    );
    let hp = shell(&mut m, "hotplug")?;
    let source = fields(line(&hp, "hotplug.source name=acpi-nvdimm ")?);
    ensure!(number(&source, "added")? == 1, "{hp}");
    ensure!(
        number(&source, "fit.bytes")? == 184,
        "one NVDIMM's FIT: {hp}"
    );
    poweroff(m)
}

/// virtio-mem-pci in sub-block mode (2 MiB device blocks, 128 MiB memory blocks): grown
/// to 130 MiB and 1026 MiB, shrunk to 2 MiB and 0; at every step QEMU's plugged size is
/// exactly the request, and the kernel's figures and free pages are exact
/// ([`tests::virtio_mem::resize_checked`]); at 0 everything is back.
fn virtio_mem_grow_and_shrink(profile: Profile, append: &str, tag: &str) -> Result<Machine> {
    let profile = profile
        .with_object("memory-backend-ram,id=vmem0,size=2G")
        .with_device("virtio-mem-pci,id=vm0,memdev=vmem0");
    let (mut m, mut qmp) = machine(profile, append)?;
    let start = mm_figures(&mut m)?;
    let counters = tests::virtio_mem::counters(&mut m)?;
    let dev = query_memory_devices(&mut qmp)?
        .into_iter()
        .find(|d| d.id.as_deref() == Some("vm0"))
        .context("no vm0")?;
    let console = m.console();
    let probe_line = console
        .lines()
        .find(|l| l.contains("virtio-mem: probe dev=0"))
        .with_context(|| format!("no probe line:\n{console}"))?;
    ensure!(
        number(&fields(probe_line), "addr")? == dev.addr,
        "config addr vs QEMU: {probe_line}"
    );
    for target in [130 * MIB, 1026 * MIB, 2 * MIB, 0] {
        let took = tests::virtio_mem::resize_checked(
            &mut m,
            &mut qmp,
            ("vm0", 0),
            target,
            counters,
            BLOCK_MEMMAP_PAGES,
        )?;
        eprintln!("aarch64 {tag} virtio-mem -> {target:#x} in {took:?}");
        let verified = tests::hotplug::ranges_verified(&mut m)?;
        ensure!(
            (verified == 0) == (target == 0),
            "{verified} ranges at {target:#x}"
        );
    }
    let hp = command_output(&mut m, "hotplug", "hotplug.summary ")?;
    ensure!(
        number(&fields(line(&hp, "hotplug.summary ")?), "ranges")? == 0,
        "{hp}"
    );
    ensure!(
        mm_figures(&mut m)? == start,
        "not restored after shrink to 0"
    );
    Ok(m)
}

#[test]
fn virtio_mem_pci_grows_and_shrinks_with_acpi() -> Result<()> {
    if tests::skipped(ARCH) {
        return Ok(());
    }
    let m = virtio_mem_grow_and_shrink(tests::limine_profile(ARCH), "", "acpi")?;
    poweroff(m)
}

/// Device-tree boot (`acpi=off`: no GED, ECAM and windows from the DT); the kernel
/// places the BARs itself (`pci.reassign=1`), inside the DT's windows.
#[test]
fn virtio_mem_pci_grows_and_shrinks_with_a_device_tree_and_own_bars() -> Result<()> {
    if tests::skipped(ARCH) {
        return Ok(());
    }
    let profile = tests::profile(ARCH).with_device_tree();
    let m = virtio_mem_grow_and_shrink(profile, "pci.reassign=1", "fdt")?;
    let console = m.console();
    ensure!(
        console.contains("windows=dt"),
        "windows not from the DT:\n{console}"
    );
    let bar4 = console
        .lines()
        .find(|l| l.contains("pci: ") && l.contains(" bar4 "))
        .context("no bar4 line")?;
    let f = fields(bar4);
    ensure!(f.get("by") == Some(&"kernel(reassign)"), "{bar4}");
    let addr = number(&f, "addr")?;
    ensure!(
        (0x80_0000_0000..0x100_0000_0000).contains(&addr),
        "BAR4 outside the 64-bit window: {bar4}"
    );
    ensure!(
        !console.contains("source acpi-mhpd"),
        "no GED with a device tree"
    );
    poweroff(m)
}
