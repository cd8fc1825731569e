//! aarch64 in QEMU (`virt`; TCG): boot to the shell with ACPI (AAVMF and our
//! Limine-protocol loader: ACPI tables need firmware) and with a device tree
//! (`-M virt,acpi=off`, entered directly as an arm64 Image), check the figures against
//! what the test asked QEMU for and against QEMU's own memory map (`info mtree` over
//! QMP), compare the two ways in, and prove that an exception is caught by the vectors
//! and fails the run.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use qemu::arch::BootPath;
use qemu::profile::{GIB, MIB};
use qemu::{Arch, Machine, Memory, Outcome, Profile};
use tests::{boot, boot_to_prompt, compare, fields, line, number, shell};

const ARCH: Arch = Arch::Aarch64;
/// AAVMF under TCG takes several seconds before our loader runs.
const MACHINE_TIMEOUT: Duration = Duration::from_secs(120);
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);
/// Firmware keeps some RAM for itself (reserved, runtime services): at most this much.
const FIRMWARE_SLACK: u64 = 32 * MIB;
/// Where `virt` puts RAM (hw/arm/virt.c `base_memmap[VIRT_MEM]`).
const RAM_BASE: u64 = 0x4000_0000;

/// The default machine with ACPI (`acpi = true`: AAVMF and the Limine-protocol loader,
/// as ACPI tables need firmware) or described by a device tree only (`acpi=off`, entered
/// directly as an arm64 Image unless `HOTMEM_BOOT=limine`).
fn profile(acpi: bool) -> Profile {
    if acpi {
        tests::limine_profile(ARCH)
    } else {
        tests::profile(ARCH).with_device_tree()
    }
}

#[test]
fn acpi_boot_reports_memory_cpu_and_firmware_then_powers_off() -> Result<()> {
    if tests::skipped(ARCH) {
        return Ok(());
    }
    let p = profile(true);
    let mut m = boot_to_prompt(&p, "loglevel=info hello=arm", MACHINE_TIMEOUT)?;
    let platform = fields(line(&m.console(), "platform: ")?).clone_owned();
    ensure!(
        platform["firmware"] == "acpi" && platform["uart.source"] == "spcr",
        "{platform:?}"
    );
    common_checks(&mut m, &p)?;

    let fw = shell(&mut m, "firmware")?;
    let rec = fields(line(&fw, "firmware ")?);
    ensure!(rec.get("kind") == Some(&"acpi"), "{fw}");
    check_devices(&mut m, &rec, &fw)?;
    ensure!(rec.get("psci") == Some(&"hvc"), "FADT PSCI conduit:\n{fw}");
    // maxmem and slots make QEMU add a NUMA node and an SRAT with the device memory.
    ensure!(rec.get("srat.hotplug") == Some(&"1"), "{fw}");
    let hot = fields(line(&fw, "firmware.srat start=0x80000000 ")?);
    let device_end = RAM_BASE
        + p.memory.ram
        + (p.memory.maxmem.unwrap() - p.memory.ram)
        + u64::from(p.memory.slots.unwrap()) * (1 << 30);
    ensure!(
        number(&hot, "end")? == device_end,
        "SRAT device memory:\n{fw}"
    );
    power_off(m)
}

#[test]
fn fdt_boot_reports_memory_cpu_and_firmware_then_powers_off() -> Result<()> {
    if tests::skipped(ARCH) {
        return Ok(());
    }
    let p = profile(false);
    let mut m = boot_to_prompt(&p, "", MACHINE_TIMEOUT)?;
    let platform = fields(line(&m.console(), "platform: ")?).clone_owned();
    ensure!(
        platform["firmware"] == "fdt" && platform["uart.source"] == "dtb",
        "{platform:?}"
    );
    common_checks(&mut m, &p)?;

    let fw = shell(&mut m, "firmware")?;
    let rec = fields(line(&fw, "firmware ")?);
    ensure!(rec.get("kind") == Some(&"fdt"), "{fw}");
    check_devices(&mut m, &rec, &fw)?;
    ensure!(rec.get("psci") == Some(&"hvc"), "/psci method:\n{fw}");
    // Our loader passes the DTB unchanged, so the memory node is there and covers -m.
    ensure!(number(&rec, "mem.bytes")? == p.memory.ram, "{fw}");
    power_off(m)
}

/// The same device-tree machine (`acpi=off`, 1 GiB, a `memmap=` region) booted through
/// AAVMF and the Limine-protocol loader and directly as an arm64 Image: `mem`, `firmware`
/// and `regions` agree (`tests::compare`), and each boot names its loader.
#[test]
fn direct_and_limine_boots_agree_on_mem_firmware_and_regions() -> Result<()> {
    if tests::skipped(ARCH) {
        return Ok(());
    }
    let profile = Profile::new(ARCH).with_device_tree();
    let append = "memmap=256M!1280M";
    let limine = compare::view(&profile, BootPath::Limine, append, MACHINE_TIMEOUT)?;
    let direct = compare::view(&profile, BootPath::Direct, append, MACHINE_TIMEOUT)?;
    ensure!(limine.loader == "hotmem-boot", "{limine:?}");
    ensure!(direct.loader == ARCH.direct_loader(), "{direct:?}");
    compare::agree(&limine, &direct, profile.memory.ram, FIRMWARE_SLACK)?;
    ensure!(direct.regions.contains("memmap"), "{}", direct.regions);
    Ok(())
}

/// Entered at EL2 (`virtualization=on`, as QEMU starts a Linux image when EL2 exists):
/// the direct entry drops to EL1 and the kernel runs as after an EL1 entry, PSCI through
/// the conduit the DTB names (SMC there).
#[test]
fn direct_entry_at_el2_drops_to_el1() -> Result<()> {
    if tests::skipped(ARCH) {
        return Ok(());
    }
    let mut p = Profile::new(ARCH).with_boot(BootPath::Direct);
    p.machine.push_str(",virtualization=on");
    let mut m = boot_to_prompt(&p, "", MACHINE_TIMEOUT)?;
    let console = m.console();
    let direct = fields(line(&console, "direct: ")?);
    ensure!(direct.get("entry.el") == Some(&"2"), "{console}");
    let platform = fields(line(&console, "platform: ")?);
    ensure!(
        platform.get("el") == Some(&"1") && platform.get("psci") == Some(&"smc"),
        "{console}"
    );
    let cpu = shell(&mut m, "cpu")?;
    ensure!(
        fields(line(&cpu, "cpu.el ")?).get("current_el") == Some(&"EL1"),
        "{cpu}"
    );
    power_off(m)
}

#[test]
fn a_data_abort_is_caught_by_the_vectors_and_fails_with_status_2() -> Result<()> {
    if tests::skipped(ARCH) {
        return Ok(());
    }
    let mut m = boot(&profile(false), "selftest=fault", MACHINE_TIMEOUT)?;
    let outcome = m.wait_exit(MACHINE_TIMEOUT);
    qemu::machine::ensure_outcome(&m, outcome, Outcome::Fail(2))?;
    let console = m.console();
    let report = fields(line(&console, "exception: ")?);
    ensure!(report.get("class") == Some(&"data-abort"), "{console}");
    ensure!(
        report.get("from") == Some(&"el1-spx"),
        "taken on SP_EL1:\n{console}"
    );
    ensure!(number(&report, "far")? == 0xdead_0000, "FAR:\n{console}");
    ensure!(
        report.contains_key("esr") && report.contains_key("elr"),
        "{console}"
    );
    ensure!(
        m.exit_code() == Some(2),
        "semihosting exit code {:?}",
        m.exit_code()
    );
    Ok(())
}

#[test]
fn exit_n_fails_with_status_n_through_semihosting() -> Result<()> {
    if tests::skipped(ARCH) {
        return Ok(());
    }
    let mut m = boot_to_prompt(&profile(false), "", MACHINE_TIMEOUT)?;
    m.send_line("exit 5")?;
    let outcome = m.wait_exit(EXIT_TIMEOUT);
    qemu::machine::ensure_outcome(&m, outcome, Outcome::Fail(5))?;
    ensure!(
        m.exit_code() == Some(5),
        "semihosting exit code {:?}",
        m.exit_code()
    );
    Ok(())
}

/// `mem` accounts for all of `-m`, `cpu` runs at EL1 with 4K-granule blocks.
fn common_checks(m: &mut Machine, p: &Profile) -> Result<()> {
    let ready = fields(line(&m.console(), "boot: ready ")?).clone_owned();
    let loader = match p.boot {
        BootPath::Limine => "hotmem-boot",
        BootPath::Direct => ARCH.direct_loader(),
    };
    ensure!(ready["loader"] == loader, "{ready:?}");

    let mem = shell(m, "mem")?;
    let total = fields(line(&mem, "mem.total ")?);
    let ram = number(&total, "ram")?;
    ensure!(
        ram <= p.memory.ram && ram + FIRMWARE_SLACK >= p.memory.ram,
        "RAM {ram} not within {FIRMWARE_SLACK} below -m {}:\n{mem}",
        p.memory.ram
    );
    // Every byte of -m is in the map, whatever its kind.
    let ram_end = RAM_BASE + p.memory.ram;
    let mut described = 0;
    for l in mem
        .lines()
        .filter(|l| l.trim_start().starts_with("mem.region "))
    {
        let f = fields(l);
        let (s, e) = (number(&f, "start")?, number(&f, "end")?);
        described += e.min(ram_end).saturating_sub(s.max(RAM_BASE));
    }
    ensure!(
        described == p.memory.ram,
        "map covers {described} of -m:\n{mem}"
    );

    let cpu = shell(m, "cpu")?;
    let el = fields(line(&cpu, "cpu.el ")?);
    ensure!(el.get("current_el") == Some(&"EL1"), "{cpu}");
    let mmu = fields(line(&cpu, "cpu.mmu ")?);
    ensure!(
        mmu.get("tgran4k") == Some(&"1") && mmu.get("blocks.4k") == Some(&"2M,1G"),
        "{cpu}"
    );
    let paging = fields(line(&cpu, "cpu.paging ")?);
    ensure!(paging.get("format") == Some(&"aarch64-4k-48bit"), "{cpu}");
    Ok(())
}

/// The PL011 and ECAM the kernel found are where QEMU put them (`info mtree`).
fn check_devices(m: &mut Machine, rec: &HashMap<&str, &str>, fw: &str) -> Result<()> {
    let mut qmp = m.qmp()?;
    let mtree = qmp.execute(
        "human-monitor-command",
        serde_json::json!({ "command-line": "info mtree" }),
    )?;
    let mtree = mtree.as_str().context("info mtree returns text")?;
    let pl011 = mtree_base(mtree, "pl011").context("no pl011 in info mtree")?;
    let ecam = mtree_base(mtree, "alias pcie-ecam").context("no pcie-ecam in info mtree")?;
    ensure!(
        number(rec, "uart.pl011")? == pl011,
        "PL011 {pl011:#x}:\n{fw}"
    );
    ensure!(number(rec, "pci.ecam")? == ecam, "ECAM {ecam:#x}:\n{fw}");
    ensure!(number(rec, "pci.ecam.size")? == 256 * MIB, "{fw}");
    Ok(())
}

/// The start of the first `info mtree` region named `name`
/// (`    0000000009000000-0000000009000fff (prio 0, i/o): pl011`).
fn mtree_base(mtree: &str, name: &str) -> Option<u64> {
    mtree.lines().find_map(|l| {
        let (range, what) = l.trim().split_once("): ")?;
        let rest = what.strip_prefix(name)?;
        if !rest.is_empty() && !rest.starts_with(' ') {
            return None;
        }
        u64::from_str_radix(range.split('-').next()?, 16).ok()
    })
}

fn power_off(mut m: Machine) -> Result<()> {
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

/// Owned copies of a record's fields, for records read from a console snapshot.
trait CloneOwned {
    fn clone_owned(&self) -> HashMap<String, String>;
}

impl CloneOwned for HashMap<&str, &str> {
    fn clone_owned(&self) -> HashMap<String, String> {
        self.iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }
}

#[test]
fn mtree_lines_are_read() {
    let mtree = "  0000000009000000-0000000009000fff (prio 0, i/o): pl011\n\
                 0000004010000000-000000401fffffff (prio 0, i/o): alias pcie-ecam @pcie-mmcfg-mmio 0-f\n\
                 0000000009010000-0000000009010fff (prio 0, i/o): pl011x";
    assert_eq!(mtree_base(mtree, "pl011"), Some(0x0900_0000));
    assert_eq!(mtree_base(mtree, "alias pcie-ecam"), Some(0x40_1000_0000));
    assert_eq!(mtree_base(mtree, "gic"), None);
}

/// ACPI mode, two cold-plugged NVDIMMs of different sizes: the NFIT ranges equal QEMU's
/// own figures, each gets Linux's nvdimm altmap, its memmap is populated with 2 MiB L2
/// blocks from that altmap, and verification through the MMU (and AT S1E1R) passes.
#[test]
fn nvdimm_regions_match_qemu_and_are_populated_from_their_altmaps() -> Result<()> {
    if tests::skipped(ARCH) {
        return Ok(());
    }
    let profile =
        tests::regions::with_nvdimms(tests::limine_profile(ARCH), "arm", &[256 * MIB, 512 * MIB])?;
    let mut m = boot_to_prompt(&profile, "", MACHINE_TIMEOUT)?;
    tests::regions::check_nvdimm_regions(&mut m, 2)?;
    m.send_line("poweroff")?;
    let outcome = m.wait_exit(EXIT_TIMEOUT);
    qemu::machine::ensure_outcome(&m, outcome, Outcome::Pass)
}

/// `vmemmap.trace=on` with an NVDIMM placed at 64 GiB (its memmap starts 1 GiB into the
/// vmemmap, past the L2 table the boot RAM uses): the trace of its populate lists one
/// 2 MiB L2 block (level 2) per section from the altmap and the new L2 table from RAM.
#[test]
fn trace_of_an_nvdimm_region_lists_l2_blocks_from_the_altmap_and_tables_from_ram() -> Result<()> {
    if tests::skipped(ARCH) {
        return Ok(());
    }
    let memory = Memory::ram(GIB).with_slots(2).with_maxmem(80 * GIB);
    let profile = Profile::new(ARCH).with_memory(memory);
    let placed = [(256 * MIB, Some(64 * GIB))];
    let profile = tests::regions::with_nvdimms_at(profile, "arm-trace", &placed)?;
    let mut m = boot_to_prompt(&profile, "vmemmap.trace=on", MACHINE_TIMEOUT)?;
    tests::regions::check_nvdimm_regions(&mut m, 1)?;
    let console = m.console();
    let add = console
        .lines()
        .map(fields)
        .find(|f| f.get("source") == Some(&"nfit"))
        .with_context(|| format!("no NFIT region:\n{console}"))?;
    ensure!(number(&add, "start")? == 64 * GIB, "{console}");
    let id = add.get("id").copied().unwrap_or_default().to_string();
    tests::trace::check_nvdimm_trace(&mut m, &id, 2, 2 * MIB)?;
    m.send_line("poweroff")?;
    let outcome = m.wait_exit(EXIT_TIMEOUT);
    qemu::machine::ensure_outcome(&m, outcome, Outcome::Pass)
}

/// `memmap=` on aarch64 (RAM starts at 1 GiB): one good range, one too small for its
/// memmap, one overlapping it, one unaligned.
#[test]
fn memmap_regions_are_carved_refused_or_verified() -> Result<()> {
    if tests::skipped(ARCH) {
        return Ok(());
    }
    let append = "memmap=256M!1280M memmap=2M!1800M memmap=64M!1300M memmap=3M!1100M";
    let mut m = boot_to_prompt(&tests::profile(ARCH), append, MACHINE_TIMEOUT)?;
    let refused = [
        ("2M!1800M", "too-small"),
        ("64M!1300M", "overlap"),
        ("3M!1100M", "unaligned"),
    ];
    tests::regions::check_memmap_refusals(&mut m, (RAM_BASE + 256 * MIB, 256 * MIB), &refused)?;
    m.send_line("poweroff")?;
    let outcome = m.wait_exit(EXIT_TIMEOUT);
    qemu::machine::ensure_outcome(&m, outcome, Outcome::Pass)
}

/// Fault injection on aarch64: each L2 block from the altmap, page-table page and buddy
/// frame of a two-section add fails in turn, and every failure rolls back exactly.
#[test]
fn fault_sweep_rolls_back_every_failure() -> Result<()> {
    if tests::skipped(ARCH) {
        return Ok(());
    }
    tests::check_fault_sweep(
        &tests::profile(ARCH),
        "mem=1536M selftest=faultsweep",
        "altmap-leaf",
    )
}

/// Hostile input at the shell (malformed commands, 4 KiB of console garbage) is answered
/// without losing anything, and the kernel's mappings are W^X: text read-only, data,
/// heap, stack and memmap never executable, the vmemmap hole unmapped and caught.
#[test]
fn hostile_shell_input_is_refused_and_mappings_are_w_xor_x() -> Result<()> {
    if tests::skipped(ARCH) {
        return Ok(());
    }
    tests::hostile::boot_and_check(&tests::profile(ARCH), MACHINE_TIMEOUT)
}

/// An unguarded touch of the vmemmap outside populated sections is caught by the
/// exception handler, which names the vmemmap and the frame, and fails the run.
#[test]
fn touching_the_vmemmap_hole_is_caught_and_named() -> Result<()> {
    if tests::skipped(ARCH) {
        return Ok(());
    }
    tests::hostile::check_vmemmap_touch(&tests::profile(ARCH), MACHINE_TIMEOUT)
}
