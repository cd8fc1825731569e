//! s390x virtio-mem-ccw hotplug, driven through QMP: grow and shrink `requested-size`
//! (sub-block mode, 1 MiB and 2 MiB device blocks), then hold the kernel's view against
//! QEMU's `query-memory-devices` and the kernel's own free-page and page-table counters.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use qemu::hotplug::{self, MemoryDevice};
use qemu::profile::{GIB, MIB};
use qemu::qmp::Qmp;
use qemu::{Arch, Machine, Memory, Profile};
use tests::virtio_mem as vm;
use tests::{PROMPT, boot_to_prompt, fields, line, number, shell};

const ARCH: Arch = Arch::S390x;
/// Overall limit of one machine (ten grow/shrink cycles fit easily).
const MACHINE_TIMEOUT: Duration = Duration::from_secs(240);
/// From `qom-set` to the last record of a resize.
const RESIZE_TIMEOUT: Duration = Duration::from_secs(60);
const DEVICE: &str = "vm0";
/// The s390x memory block (max(SCLP increment, section)): the unit the driver adds.
const MEMORY_BLOCK: u64 = 256 * MIB;
/// One memory block's memmap from RAM: 65536 struct pages of 64 bytes.
const BLOCK_MEMMAP_PAGES: u64 = MEMORY_BLOCK / 4096 * 64 / 4096;

/// A machine with a 2 GiB virtio-mem-ccw device at `requested` bytes (device blocks of
/// `block`: QEMU's default, 2 MiB here, when `None`), and its QMP.
fn start(requested: u64, block: Option<u64>) -> Result<(Machine, Qmp)> {
    let block = block.map_or(String::new(), |b| format!(",block-size={b}"));
    let profile = Profile::new(ARCH)
        .with_memory(Memory::ram(512 * MIB).with_maxmem(4 * GIB))
        .with_object(format!("memory-backend-ram,id=vmem0,size={}", 2 * GIB))
        .with_device(format!(
            "{},id={DEVICE},memdev=vmem0,requested-size={requested}{block}",
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

/// Runs a command whose output is unique, so the next `shell` call cannot match a prompt
/// printed after earlier hotplug records.
fn sync(m: &mut Machine) -> Result<()> {
    m.send_line("cmdline")?;
    m.expect("cmdline: ", tests::COMMAND_TIMEOUT)?;
    m.expect(PROMPT, tests::COMMAND_TIMEOUT)?;
    Ok(())
}

/// Resizes to `target` and checks it exactly against QEMU and the counters at `base`.
fn resize_checked(m: &mut Machine, qmp: &mut Qmp, target: u64, base: vm::Counters) -> Result<()> {
    vm::resize_checked(m, qmp, (DEVICE, 0), target, base, BLOCK_MEMMAP_PAGES)?;
    Ok(())
}

/// Sub-block mode with 1 MiB device blocks (a 1 MiB pageblock, 256 MiB memory blocks:
/// 256 sub-blocks each): grown to 130 MiB and 1026 MiB, shrunk to 2 MiB and 0. At every
/// step QEMU's plugged size is exactly the request and the kernel's figures and free
/// pages are exact; at 0 the counters are back and UNPLUG_ALL shrank the usable region.
#[test]
fn one_mib_sub_blocks_reach_every_request_exactly() -> Result<()> {
    if tests::skipped(ARCH) {
        return Ok(());
    }
    let (mut m, mut qmp) = start(0, Some(MIB))?;
    let base = vm::counters(&mut m)?;
    let dev = device(&mut qmp)?;
    ensure!(dev.size == 0 && dev.addr == GIB, "{dev:?}");
    let v = vm::view(&mut m, 0)?;
    ensure!(v.mode == "sbm" && v.unit == MEMORY_BLOCK, "{v:?}");
    let list = shell(&mut m, "hotplug")?;
    ensure!(
        number(&fields(line(&list, "virtio-mem dev=0")?), "step")? == MIB,
        "{list}"
    );
    for target in [130 * MIB, 1026 * MIB, 2 * MIB, 0] {
        resize_checked(&mut m, &mut qmp, target, base)?;
    }
    ensure!(counters(&mut m)? == start_of(base), "counters not back");
    let list = shell(&mut m, "hotplug")?;
    ensure!(
        line(&list, "hotplug.summary ranges=0")?.contains("sources=1"),
        "{list}"
    );
    ensure!(
        number(&fields(line(&list, "virtio-mem dev=0")?), "usable")? == 0,
        "{list}"
    );
    Ok(())
}

fn start_of(base: vm::Counters) -> Counters {
    Counters {
        free: base.free,
        tables: base.tables,
    }
}

#[test]
fn ten_grow_shrink_cycles_end_at_the_starting_counters() -> Result<()> {
    if tests::skipped(ARCH) {
        return Ok(());
    }
    let (mut m, mut qmp) = start(0, None)?;
    let base = vm::counters(&mut m)?;
    for cycle in 0..10 {
        // Alternate whole memory blocks and a size that ends inside a block.
        let target = if cycle % 2 == 0 { 512 * MIB } else { 300 * MIB };
        resize_checked(&mut m, &mut qmp, target, base)
            .with_context(|| format!("cycle {cycle}: grow to {target:#x}"))?;
        resize_checked(&mut m, &mut qmp, 0, base)
            .with_context(|| format!("cycle {cycle}: shrink from {target:#x}"))?;
    }
    ensure!(counters(&mut m)? == start_of(base));
    Ok(())
}

/// 300 MiB requested at boot: one full memory block and 44 MiB of the next, both with
/// their memmap in RAM (as Linux's virtio-mem adds memory). Shrinking to 100 MiB lands
/// exactly on 100 MiB: the partial block goes first, then sub-blocks from the top of the
/// full one.
#[test]
fn a_size_off_the_memory_block_grid_is_plugged_in_sub_blocks_at_boot() -> Result<()> {
    if tests::skipped(ARCH) {
        return Ok(());
    }
    // Requested at boot: the kernel plugs during its first poll, before the prompt.
    let (mut m, mut qmp) = start(300 * MIB, None)?;
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
    ensure!(
        number(&ranges[0], "online.pages")? == MEMORY_BLOCK / 4096,
        "{list}"
    );
    ensure!(
        ranges[1].get("range") == Some(&"0x50000000-0x60000000"),
        "{list}"
    );
    ensure!(
        number(&ranges[1], "online.pages")? == 44 * MIB / 4096,
        "{list}"
    );
    ensure!(
        number(&ranges[1], "offline.pages")? == 212 * MIB / 4096,
        "{list}"
    );
    ensure!(
        ranges.iter().all(|r| r.get("memmap") == Some(&"ram")),
        "{list}"
    );
    hotplug::set_requested_size(&mut qmp, DEVICE, 100 * MIB)?;
    m.expect(
        "hotplug: remove range=0x50000000-0x60000000",
        RESIZE_TIMEOUT,
    )?;
    hotplug::wait_plugged_size(&mut qmp, DEVICE, 100 * MIB, RESIZE_TIMEOUT)?;
    sync(&mut m)?;
    let v = vm::view(&mut m, 0)?;
    ensure!(
        (v.plugged, v.driver, v.online) == (100 * MIB, 100 * MIB, 100 * MIB),
        "{v:x?}"
    );
    ensure!(v.ranges == [(GIB, GIB + MEMORY_BLOCK)], "{v:x?}");
    Ok(())
}

/// A page in use inside the block: shrinking to 0 offlines everything around its
/// sub-block and leaves just that sub-block plugged (QEMU: 2 MiB), once, with no retry
/// loop; freed and asked again, the rest goes.
#[test]
fn busy_memory_is_not_unplugged_until_it_is_free_and_the_request_changes() -> Result<()> {
    if tests::skipped(ARCH) {
        return Ok(());
    }
    let (mut m, mut qmp) = start(0, None)?;
    let base = vm::counters(&mut m)?;
    resize_checked(&mut m, &mut qmp, MEMORY_BLOCK, base)?;
    // Take a page from the middle of the hot-added block.
    let pfn = (GIB + 128 * MIB) / 4096;
    let taken = shell(&mut m, &format!("alloc 1 {pfn:#x}"))?;
    ensure!(taken.contains("alloc: pages=1"), "{taken}");

    hotplug::set_requested_size(&mut qmp, DEVICE, 0)?;
    let refused = m.expect("reason=busy", RESIZE_TIMEOUT)?;
    ensure!(refused.contains("hotplug: refuse op=offline"), "{refused}");
    m.expect("op=shrink", RESIZE_TIMEOUT)?;
    hotplug::wait_plugged_size(&mut qmp, DEVICE, 2 * MIB, RESIZE_TIMEOUT)?;
    std::thread::sleep(Duration::from_millis(500));
    ensure!(
        device(&mut qmp)?.size == 2 * MIB,
        "the busy sub-block was unplugged"
    );
    sync(&mut m)?;
    let list = shell(&mut m, "hotplug")?;
    ensure!(list.contains("busy=1"), "{list}");

    // Freed, but the request is the same: no retry in a loop.
    let freed = shell(&mut m, "free")?;
    ensure!(freed.contains("free: pages=1"), "{freed}");
    let quiet = shell(&mut m, "hotplug")?;
    ensure!(!quiet.contains("hotplug: offline"), "{quiet}");
    ensure!(device(&mut qmp)?.size == 2 * MIB);

    // A new request retries (once the kernel has seen it: it polls every millisecond).
    hotplug::set_requested_size(&mut qmp, DEVICE, 2 * MIB)?;
    std::thread::sleep(Duration::from_millis(300));
    resize_checked(&mut m, &mut qmp, 0, base)?;
    Ok(())
}
