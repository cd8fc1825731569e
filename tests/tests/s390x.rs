//! s390x in QEMU (TCG): boot to the shell, check what the kernel reports against what the
//! test asked QEMU for, prove the exit protocol (pass, panic, explicit failure, hang), the
//! memory probe with memmap_on_memory, fault injection, hostile input and protection. The
//! `memmap=` regions are in `s390x_regions.rs`.

use std::time::Duration;

use anyhow::{Result, ensure};
use qemu::profile::{GIB, MIB};
use qemu::{Arch, Memory, Outcome, Profile};
use tests::{boot, boot_to_prompt, fields, line, number, shell};

const ARCH: Arch = Arch::S390x;
/// Overall limit of one machine.
const MACHINE_TIMEOUT: Duration = Duration::from_secs(60);
const EXIT_TIMEOUT: Duration = Duration::from_secs(20);
/// A TCG boot takes about a second; a kernel silent this long after start has hung.
const HANG_TIMEOUT: Duration = Duration::from_secs(10);

#[test]
fn shell_reports_memory_cpu_and_cmdline_then_powers_off() -> Result<()> {
    if tests::skipped(ARCH) {
        return Ok(());
    }
    let memory = Memory::ram(512 * MIB).with_maxmem(2 * GIB);
    let append = "console=sclp hello=world";
    let profile = Profile::new(ARCH).with_memory(memory);
    let mut m = boot_to_prompt(&profile, append, MACHINE_TIMEOUT)?;

    let mem = shell(&mut m, "mem")?;
    let total = fields(line(&mem, "mem.total ")?);
    ensure!(number(&total, "ram")? == memory.ram, "RAM != -m:\n{mem}");
    // The kernel image, lowcore and boot page tables are RAM in use, not usable.
    let usable = number(&total, "usable")?;
    ensure!(
        usable < memory.ram && usable > memory.ram - 64 * MIB,
        "usable={usable}:\n{mem}"
    );
    // Device memory starts at the next 1 GiB boundary and is maxmem - ram long (s390x.md §2.6).
    let maxmem = memory.maxmem.expect("set above");
    let device_start = tests::align_up(memory.ram, GIB);
    let max_phys = device_start + (maxmem - memory.ram) - 1;
    ensure!(
        number(&total, "max_phys")? == max_phys,
        "max_phys != {max_phys:#x}:\n{mem}"
    );

    let cpu = shell(&mut m, "cpu")?;
    ensure!(
        fields(line(&cpu, "cpu ")?).get("arch") == Some(&"s390x"),
        "{cpu}"
    );
    let facility = fields(line(&cpu, "facility ")?);
    ensure!(
        facility.get("edat1") == Some(&"0"),
        "TCG has no EDAT-1:\n{cpu}"
    );

    // DAT is on with an identity map of all RAM in 4 KiB pages (no EDAT-1 under TCG).
    let dat = fields(line(&cpu, "dat ")?);
    ensure!(dat.get("on") == Some(&"1"), "DAT off:\n{cpu}");
    ensure!(
        number(&dat, "leaves.4k")? == memory.ram / 4096,
        "identity map:\n{cpu}"
    );
    ensure!(
        number(&dat, "probe.0x10000")? == 0x10000,
        "LRAG of the entry page:\n{cpu}"
    );

    let cmdline = shell(&mut m, "cmdline")?;
    let echoed = line(&cmdline, "cmdline: ")?.trim_start_matches("cmdline: ");
    ensure!(echoed == append, "cmdline came back as {echoed:?}");

    let unknown = shell(&mut m, "frobnicate")?;
    line(&unknown, "error: unknown command")?;
    let help = shell(&mut m, "help")?;
    ensure!(help.contains("mem"), "help after an error:\n{help}");

    let mut qmp = m.qmp()?;
    let status = qmp.execute("query-status", serde_json::Value::Null)?;
    ensure!(status["running"] == true, "QMP query-status: {status}");
    drop(qmp);

    m.send_line("poweroff")?;
    let outcome = m.wait_exit(EXIT_TIMEOUT);
    qemu::machine::ensure_outcome(&m, outcome, Outcome::Pass)?;
    ensure!(
        m.exit_code() == Some(0),
        "QEMU exit code {:?}",
        m.exit_code()
    );
    Ok(())
}

#[test]
fn a_panic_fails_with_status_1() -> Result<()> {
    if tests::skipped(ARCH) {
        return Ok(());
    }
    let mut m = boot(&Profile::new(ARCH), "selftest=panic", MACHINE_TIMEOUT)?;
    let outcome = m.wait_exit(EXIT_TIMEOUT + tests::BOOT_TIMEOUT);
    qemu::machine::ensure_outcome(&m, outcome, Outcome::Fail(1))?;
    ensure!(
        m.console().contains("panic:"),
        "no panic message:\n{}",
        m.console()
    );
    Ok(())
}

#[test]
fn a_kernel_that_never_exits_times_out() -> Result<()> {
    if tests::skipped(ARCH) {
        return Ok(());
    }
    let mut m = boot(&Profile::new(ARCH), "selftest=hang", MACHINE_TIMEOUT)?;
    let outcome = m.wait_exit(HANG_TIMEOUT);
    qemu::machine::ensure_outcome(&m, outcome, Outcome::Timeout)?;
    let sentinel = qemu::console::parse_sentinel(&m.console());
    ensure!(
        sentinel.is_none(),
        "a hang printed an exit line: {sentinel:?}"
    );
    Ok(())
}

#[test]
fn exit_n_fails_with_status_n() -> Result<()> {
    if tests::skipped(ARCH) {
        return Ok(());
    }
    let mut m = boot_to_prompt(&Profile::new(ARCH), "", MACHINE_TIMEOUT)?;
    m.send_line("exit 3")?;
    let outcome = m.wait_exit(EXIT_TIMEOUT);
    qemu::machine::ensure_outcome(&m, outcome, Outcome::Fail(3))?;
    Ok(())
}

#[test]
fn a_program_check_is_reported_and_fails_with_status_2() -> Result<()> {
    if tests::skipped(ARCH) {
        return Ok(());
    }
    let mut m = boot(&Profile::new(ARCH), "selftest=fault", MACHINE_TIMEOUT)?;
    let outcome = m.wait_exit(EXIT_TIMEOUT + tests::BOOT_TIMEOUT);
    qemu::machine::ensure_outcome(&m, outcome, Outcome::Fail(2))?;
    let console = m.console();
    let report = fields(line(&console, "exception: program-check ")?);
    // An access beyond storage with DAT off is an addressing exception (code 5); with DAT on
    // an unmapped address is a region/segment/page-translation exception (0x10-0x3b).
    let code = number(&report, "code")?;
    ensure!(
        code == 5 || (0x10..=0x3b).contains(&code),
        "code {code:#x}:\n{console}"
    );
    Ok(())
}

/// The hotplug engine on real memory: `mem=512M` hides the upper half of RAM and `probe`
/// hot-adds it (Linux's memory probe interface). A whole 256 MiB block hosts its own
/// memmap (memmap_on_memory: 1024 pages); a busy page refuses the remove; a 2 MiB piece
/// (not whole memory blocks) is refused; ten cycles end with the free-page and page-table
/// counts exactly where they started.
#[test]
fn probe_hot_adds_hidden_ram_with_memmap_on_memory_and_cycles_balance() -> Result<()> {
    if tests::skipped(ARCH) {
        return Ok(());
    }
    let memory = Memory::ram(GIB);
    let mut m = boot_to_prompt(
        &Profile::new(ARCH).with_memory(memory),
        "mem=512M",
        MACHINE_TIMEOUT,
    )?;
    let mm = |m: &mut qemu::Machine| -> Result<(u64, u64)> {
        let mem = shell(m, "mem")?;
        let f = fields(line(&mem, "mem.mm ")?);
        Ok((number(&f, "free")?, number(&f, "vmemmap.tables")?))
    };
    let (free0, tables0) = mm(&mut m)?;
    let block = 256 * MIB;
    let (start, pages) = (512 * MIB, 256 * MIB / 4096);
    let memmap_pages = pages * 64 / 4096;

    let added = shell(&mut m, &format!("probe {start:#x} {block:#x}"))?;
    let add = fields(line(&added, "hotplug: add ")?);
    ensure!(add.get("memmap") == Some(&"altmap"), "{added}");
    ensure!(number(&add, "altmap.alloc")? == memmap_pages, "{added}");
    ensure!(number(&add, "altmap.align")? == 0, "{added}");
    let online = fields(line(&added, "hotplug: online ")?);
    ensure!(number(&online, "pages")? == pages - memmap_pages, "{added}");
    // The 4 MiB memmap needs one page table per 1 MiB segment: four 2 KiB tables, packed
    // two to a buddy page; the region and segment tables above exist since boot. The
    // add record counts the pages really taken, as the free count does.
    let table_pages = memmap_pages * 4096 / MIB / 2;
    ensure!(number(&online, "ram.pages")? == table_pages, "{added}");
    ensure!(number(&add, "tables.new")? == table_pages, "{added}");
    let (free1, _) = mm(&mut m)?;
    ensure!(
        free1 == free0 + pages - memmap_pages - table_pages,
        "free pages grew by {}:\n{added}",
        free1 - free0
    );

    // A busy page in the block: the remove is refused and nothing changes.
    let first_data = start / 4096 + memmap_pages;
    shell(&mut m, &format!("alloc 1 {first_data:#x}"))?;
    let refused = shell(&mut m, &format!("unprobe {start:#x} {block:#x}"))?;
    ensure!(
        fields(line(&refused, "hotplug: refuse ")?).get("reason") == Some(&"busy"),
        "{refused}"
    );
    shell(&mut m, "free")?;
    ensure!(
        mm(&mut m)?.0 == free1,
        "a refused remove changed the free count"
    );

    let removed = shell(&mut m, &format!("unprobe {start:#x} {block:#x}"))?;
    let remove = fields(line(&removed, "hotplug: remove ")?);
    ensure!(
        number(&remove, "altmap.alloc")? == 0
            && number(&remove, "altmap.align")? == 0
            && remove.get("teardown") == Some(&"clean"),
        "{removed}"
    );
    ensure!(mm(&mut m)? == (free0, tables0), "after one cycle");

    for cycle in 0..10 {
        // Alternate a whole block and a 2 MiB piece, which is not whole memory blocks:
        // refused in one line with nothing changed, as Linux's check_hotplug_memory_range.
        if cycle % 2 == 1 {
            let out = shell(&mut m, &format!("probe {start:#x} {:#x}", 2 * MIB))?;
            let r = fields(line(&out, "hotplug: refuse ")?);
            ensure!(r.get("reason") == Some(&"misaligned"), "{out}");
            ensure!(number(&r, "block")? == block, "{out}");
            ensure!(
                mm(&mut m)? == (free0, tables0),
                "a refused probe changed mem"
            );
            continue;
        }
        let out = shell(&mut m, &format!("probe {start:#x} {block:#x}"))?;
        line(&out, "hotplug: online ")?;
        let out = shell(&mut m, &format!("unprobe {start:#x} {block:#x}"))?;
        line(&out, "hotplug: remove ")?;
    }
    ensure!(mm(&mut m)? == (free0, tables0), "ten cycles drifted");
    m.send_line("poweroff")?;
    let outcome = m.wait_exit(EXIT_TIMEOUT);
    qemu::machine::ensure_outcome(&m, outcome, Outcome::Pass)
}

/// Fault injection: each altmap leaf (4 KiB PTE path), page-table page and buddy frame of
/// a two-section add fails in turn, and every failure rolls back exactly.
#[test]
fn fault_sweep_rolls_back_every_failure() -> Result<()> {
    if tests::skipped(ARCH) {
        return Ok(());
    }
    let profile = Profile::new(ARCH).with_memory(Memory::ram(GIB));
    tests::check_fault_sweep(&profile, "mem=512M selftest=faultsweep", "altmap-leaf")
}

/// `inject` (and `inject=` on the command line) makes the Nth allocation of a kind fail:
/// the hot-add is refused with ENOMEM, nothing changes, and the next attempt succeeds.
#[test]
fn injected_allocation_failure_refuses_the_add_and_changes_nothing() -> Result<()> {
    if tests::skipped(ARCH) {
        return Ok(());
    }
    let profile = Profile::new(ARCH).with_memory(Memory::ram(GIB));
    let mut m = boot_to_prompt(&profile, "mem=512M inject=altmap-leaf:3", MACHINE_TIMEOUT)?;
    let before = shell(&mut m, "mem")?;
    let before = line(&before, "mem.mm ")?.to_string();
    let refused = shell(&mut m, "probe 0x20000000 0x10000000")?;
    let r = fields(line(&refused, "hotplug: refuse ")?);
    ensure!(
        r.get("errno") == Some(&"-12") && r.get("reason") == Some(&"mm"),
        "{refused}"
    );
    let after = shell(&mut m, "mem")?;
    ensure!(
        line(&after, "mem.mm ")? == before,
        "a refused add changed mem:\n{before}\n{after}"
    );
    let added = shell(&mut m, "probe 0x20000000 0x10000000")?;
    line(&added, "hotplug: online ")?;
    let bad = shell(&mut m, "inject bogus 1")?;
    line(&bad, "error: inject: ")?;
    m.send_line("poweroff")?;
    let outcome = m.wait_exit(EXIT_TIMEOUT);
    qemu::machine::ensure_outcome(&m, outcome, Outcome::Pass)
}

/// Hostile input: malformed `memmap=` items are ignored one line each and the rest of
/// the boot comes up; malformed commands and 4 KiB of console garbage are each answered
/// without losing anything. Protection: W^X of the identity map (IEP on), the memmap of
/// boot and hot-added RAM writable and not executable, the vmemmap hole unmapped.
#[test]
fn hostile_input_is_refused_and_mappings_are_w_xor_x() -> Result<()> {
    if tests::skipped(ARCH) {
        return Ok(());
    }
    let bad = [
        "abc",
        "512M!",
        "99999999999999999999G!0",
        "16M!0x1000",
        "0!1G",
    ];
    let append: String = bad.iter().map(|b| format!(" memmap={b}")).collect();
    let profile = Profile::new(ARCH).with_memory(Memory::ram(GIB));
    let mut m = boot_to_prompt(&profile, &format!("mem=512M{append}"), MACHINE_TIMEOUT)?;
    let console = m.console();
    for b in bad {
        let lines: Vec<&str> = console
            .lines()
            .filter(|l| {
                l.starts_with("region: ignore source=memmap") || l.starts_with("region: reject")
            })
            .filter(|l| l.contains(&format!("text={b} ")) || l.ends_with(&format!("text={b}")))
            .collect();
        ensure!(
            lines.len() == 1,
            "memmap={b}: want one line, got {lines:?}:\n{console}"
        );
    }
    let cpu = shell(&mut m, "cpu")?;
    ensure!(line(&cpu, "facility ")?.contains(" iep=1"), "{cpu}");
    let added = shell(&mut m, "probe 0x20000000 0x10000000")?;
    line(&added, "hotplug: online ")?;
    tests::hostile::check_protection(&mut m, true)?;
    tests::hostile::check_hostile_shell(&mut m)?;
    m.send_line("poweroff")?;
    let outcome = m.wait_exit(EXIT_TIMEOUT);
    qemu::machine::ensure_outcome(&m, outcome, Outcome::Pass)
}

/// An unguarded touch of the vmemmap outside populated sections is caught by the
/// exception handler, which names the vmemmap and the frame, and fails the run.
#[test]
fn touching_the_vmemmap_hole_is_caught_and_named() -> Result<()> {
    if tests::skipped(ARCH) {
        return Ok(());
    }
    tests::hostile::check_vmemmap_touch(&Profile::new(ARCH), EXIT_TIMEOUT + tests::BOOT_TIMEOUT)
}
