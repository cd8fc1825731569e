//! x86_64 memory hotplug driven from QMP (issue 7): pc-dimm add and remove through the
//! ACPI memory-hotplug controller with `_OST`, refusal of a busy remove, repeated cycles,
//! NVDIMM hot-add through the FIT mailbox, virtio-mem-pci grow and shrink. Every figure
//! the kernel prints is compared with QEMU's own (`query-memory-devices`, QMP events) or
//! with the kernel's figures before the change. The machines are entered directly (PVH);
//! pc-dimm add and remove runs on both boot paths, as the ACPI tables differ (QEMU's own
//! under SeaBIOS, OVMF's copies under UEFI).

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use qemu::profile::{GIB, MIB};
use qemu::qmp::Qmp;
use qemu::{Arch, Machine, Outcome, Profile};
use serde_json::json;
use tests::hotplug::{
    Added, BLOCK, BLOCK_MEMMAP_PAGES, EVENT_TIMEOUT, PAGE, add_dimm, command_output, mm_figures,
    ost_matches, qemu_range, range, record, settle,
};
use tests::{boot_to_prompt, fields, line, number, shell};

const ARCH: Arch = Arch::X86_64;
const MACHINE_TIMEOUT: Duration = Duration::from_secs(300);

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
    // The kernel's own check: altmap back to 0, nothing of the range present or mapped.
    ensure!(r.get("teardown") == Some(&"clean"), "{remove}");
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
    if tests::skipped(ARCH) {
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
    if tests::skipped(ARCH) {
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
    if tests::skipped(ARCH) {
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
    if tests::skipped(ARCH) {
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
    if tests::skipped(ARCH) {
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

/// A 128 MiB memory block's memmap from RAM: 512 pages (one 2 MiB PMD leaf).
const BLOCK_MEMMAP_RAM: u64 = BLOCK_MEMMAP_PAGES;

/// virtio-mem-pci in sub-block mode (2 MiB device blocks, 128 MiB memory blocks): grown
/// to 130 MiB and 1026 MiB, shrunk to 2 MiB and 0. At every step QEMU's plugged size is
/// exactly the request, and so are the kernel's config, driver and online figures; free
/// pages move by exactly the onlined pages less the memmap and tables taken from RAM.
#[test]
fn virtio_mem_pci_sub_blocks_reach_every_request_exactly() -> Result<()> {
    if tests::skipped(ARCH) {
        return Ok(());
    }
    let profile = tests::profile(ARCH)
        .with_object("memory-backend-ram,id=vmem0,size=2G")
        .with_device("virtio-mem-pci,id=vm0,memdev=vmem0,requested-size=0");
    let mut m = boot_to_prompt(&profile, "", MACHINE_TIMEOUT)?;
    let mut qmp = m.qmp()?;
    let start = tests::virtio_mem::counters(&mut m)?;
    let (free0, tables0) = mm_figures(&mut m)?;
    let v = tests::virtio_mem::view(&mut m, 0)?;
    ensure!(v.mode == "sbm" && v.unit == BLOCK, "{v:?}");
    for target in [130 * MIB, 1026 * MIB, 2 * MIB, 0] {
        tests::virtio_mem::resize_checked(
            &mut m,
            &mut qmp,
            ("vm0", 0),
            target,
            start,
            BLOCK_MEMMAP_RAM,
        )?;
    }
    ensure!(
        mm_figures(&mut m)? == (free0, tables0),
        "shrink to 0 did not restore the figures"
    );
    poweroff(m)
}

/// A virtio-mem region that starts half-way into a memory block (memaddr 4 GiB + 64 MiB):
/// as Linux, the driver uses only the whole memory blocks inside it, so 130 MiB lands in
/// the blocks from 4 GiB + 128 MiB on, and QEMU still plugs exactly 130 MiB.
#[test]
fn virtio_mem_region_off_the_block_grid_uses_only_whole_blocks() -> Result<()> {
    if tests::skipped(ARCH) {
        return Ok(());
    }
    let base = 4 * GIB + 64 * MIB;
    let profile = Profile::new(ARCH)
        .with_object("memory-backend-ram,id=vmem0,size=1G")
        .with_device(format!(
            "virtio-mem-pci,id=vm0,memdev=vmem0,requested-size=0,memaddr={base:#x}"
        ));
    let mut m = boot_to_prompt(&profile, "", MACHINE_TIMEOUT)?;
    let mut qmp = m.qmp()?;
    let start = tests::virtio_mem::counters(&mut m)?;
    tests::virtio_mem::resize_checked(
        &mut m,
        &mut qmp,
        ("vm0", 0),
        130 * MIB,
        start,
        BLOCK_MEMMAP_RAM,
    )?;
    let v = tests::virtio_mem::view(&mut m, 0)?;
    let first = base.next_multiple_of(BLOCK);
    ensure!(
        v.ranges == [(first, first + BLOCK), (first + BLOCK, first + 2 * BLOCK)],
        "{v:x?}"
    );
    tests::virtio_mem::resize_checked(&mut m, &mut qmp, ("vm0", 0), 0, start, BLOCK_MEMMAP_RAM)?;
    poweroff(m)
}

/// A pc-dimm that is not whole memory blocks (64 MiB, half a block): Linux's ACPI driver
/// calls add_memory for its range and `check_hotplug_memory_range` refuses it (-EINVAL,
/// "Block size [0x8000000] unaligned hotplug range"); nothing of it is added. The kernel
/// refuses it the same way, in one line, with nothing changed, answers `_OST(1, 1)`, and
/// ejects it on `device_del`. A whole-block DIMM is added normally afterwards.
#[test]
fn pc_dimm_of_half_a_block_is_refused_as_linux_refuses_it() -> Result<()> {
    if tests::skipped(ARCH) {
        return Ok(());
    }
    let (mut m, mut qmp) = machine("")?;
    let before = shell(&mut m, "mem")?;
    let before = line(&before, "mem.mm ")?.to_string();
    qemu::hotplug::add_ram_backend(&mut qmp, "mem-half", 64 * MIB)?;
    qemu::hotplug::add_pc_dimm(&mut qmp, "half", "mem-half")?;
    let refuse = record(&mut m, "hotplug: refuse ")?;
    settle(&mut m)?;
    let (start, end) = qemu_range(&mut qmp, "half")?.context("QEMU lost the DIMM")?;
    let r = fields(&refuse);
    ensure!(r.get("op") == Some(&"add"), "{refuse}");
    ensure!(range(&r, "range")? == (start, end), "{refuse}");
    ensure!(r.get("reason") == Some(&"misaligned"), "{refuse}");
    ensure!(number(&r, "block")? == BLOCK, "{refuse}");
    qmp.wait_event_where("ACPI_DEVICE_OST", EVENT_TIMEOUT, |d| {
        ost_matches(d, Some("half"), 1, 1)
    })?;
    let after = shell(&mut m, "mem")?;
    ensure!(
        line(&after, "mem.mm ")? == before,
        "a refused add changed mem:\n{before}\n{after}"
    );
    let hp = shell(&mut m, "hotplug")?;
    ensure!(line(&hp, "hotplug.summary ")?.contains("ranges=0"), "{hp}");
    qmp.execute("device_del", json!({"id": "half"}))?;
    qmp.wait_event_where("DEVICE_DELETED", EVENT_TIMEOUT, |d| d["device"] == "half")?;
    qmp.execute("object-del", json!({"id": "mem-half"}))?;
    let added = add_dimm(&mut m, &mut qmp, "whole", BLOCK)?;
    remove_dimm(&mut m, &mut qmp, "whole", &added)?;
    poweroff(m)
}
