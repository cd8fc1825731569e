//! x86_64 in QEMU (q35; entered directly by PVH, or through OVMF and our Limine-protocol
//! loader or Limine itself where the loader is what is tested; KVM when usable, TCG
//! otherwise): boot to the shell, check the figures against what the test asked QEMU
//! for, compare the two ways in, and prove that a CPU exception is reported and fails
//! the run.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use qemu::arch::BootPath;
use qemu::profile::{GIB, MIB};
use qemu::{Arch, Memory, Outcome, Profile};
use tests::{boot, boot_to_prompt, compare, fields, line, number, shell};

const ARCH: Arch = Arch::X86_64;
/// OVMF under TCG takes several seconds before our loader runs.
const MACHINE_TIMEOUT: Duration = Duration::from_secs(120);
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);
/// Firmware keeps some RAM for itself (reserved, runtime services): at most this much.
const FIRMWARE_SLACK: u64 = 32 * MIB;

#[test]
fn shell_reports_memory_cpu_loader_and_cmdline_then_powers_off() -> Result<()> {
    if tests::skipped(ARCH) {
        return Ok(());
    }
    let memory = Memory::ram(512 * MIB).with_slots(4).with_maxmem(8 * GIB);
    let append = "loglevel=info hello=x86";
    let profile = tests::limine_profile(ARCH).with_memory(memory);
    let mut m = boot_to_prompt(&profile, append, MACHINE_TIMEOUT)?;

    // The loader names itself through the bootloader-info response, which the kernel
    // passes on in its boot record.
    let console = m.console();
    let ready = fields(line(&console, "boot: ready ")?);
    let loader = ready.get("loader").copied().unwrap_or_default();
    ensure!(
        loader == "hotmem-boot" || loader.eq_ignore_ascii_case("limine"),
        "loader {loader:?}:\n{console}"
    );

    let mem = shell(&mut m, "mem")?;
    let total = fields(line(&mem, "mem.total ")?);
    let ram = number(&total, "ram")?;
    ensure!(
        ram <= memory.ram && ram + FIRMWARE_SLACK >= memory.ram,
        "RAM {ram} not within {FIRMWARE_SLACK} below -m {}:\n{mem}",
        memory.ram
    );
    ensure!(number(&total, "usable")? <= ram, "{mem}");

    let cpu = shell(&mut m, "cpu")?;
    let features = fields(line(&cpu, "cpu.features ")?);
    ensure!(features.get("pse") == Some(&"1"), "no PSE:\n{cpu}");
    ensure!(features.get("nx") == Some(&"1"), "no NX:\n{cpu}");
    // Global pages are on, as in Linux: the vmemmap's GLOBAL leaves then outlive a CR3
    // reload, so hot-remove flushes with the CR4.PGE toggle.
    ensure!(features.get("pge") == Some(&"1"), "no PGE:\n{cpu}");
    let console = m.console();
    ensure!(
        line(&console, "paging: cr3=")?.ends_with(" pge=1"),
        "CR4.PGE not set:\n{console}"
    );

    let cmdline = shell(&mut m, "cmdline")?;
    let echoed = line(&cmdline, "cmdline: ")?.trim_start_matches("cmdline: ");
    ensure!(echoed == append, "cmdline came back as {echoed:?}");

    let unknown = shell(&mut m, "frobnicate")?;
    line(&unknown, "error: unknown command")?;

    m.send_line("poweroff")?;
    let outcome = m.wait_exit(EXIT_TIMEOUT);
    qemu::machine::ensure_outcome(&m, outcome, Outcome::Pass)?;
    Ok(())
}

#[test]
fn a_page_fault_is_reported_and_fails_with_status_2() -> Result<()> {
    if tests::skipped(ARCH) {
        return Ok(());
    }
    let mut m = boot(&tests::profile(ARCH), "selftest=fault", MACHINE_TIMEOUT)?;
    let outcome = m.wait_exit(MACHINE_TIMEOUT);
    qemu::machine::ensure_outcome(&m, outcome, Outcome::Fail(2))?;
    let console = m.console();
    let report = fields(line(&console, "exception: ")?);
    ensure!(report.get("vector") == Some(&"14"), "not a #PF:\n{console}");
    ensure!(
        report.contains_key("cr2") && report.contains_key("rip"),
        "{console}"
    );
    Ok(())
}

#[test]
fn exit_n_fails_with_status_n() -> Result<()> {
    if tests::skipped(ARCH) {
        return Ok(());
    }
    let mut m = boot_to_prompt(&tests::profile(ARCH), "", MACHINE_TIMEOUT)?;
    m.send_line("exit 5")?;
    let outcome = m.wait_exit(EXIT_TIMEOUT);
    qemu::machine::ensure_outcome(&m, outcome, Outcome::Fail(5))?;
    Ok(())
}

/// Two cold-plugged NVDIMMs of different sizes: the NFIT ranges equal QEMU's own figures,
/// each gets Linux's nvdimm altmap, its memmap is populated with 2 MiB PMD leaves from
/// that altmap, and verification through the MMU passes. Entered directly (the NFIT as
/// QEMU built it, through SeaBIOS) and through UEFI (OVMF's copy of it).
#[test]
fn nvdimm_regions_match_qemu_and_are_populated_from_their_altmaps() -> Result<()> {
    if tests::skipped(ARCH) {
        return Ok(());
    }
    let mut paths = vec![tests::profile(ARCH)];
    if paths[0].boot != BootPath::Limine {
        paths.push(tests::limine_profile(ARCH));
    }
    for base in paths {
        let profile = tests::regions::with_nvdimms(base, "x86", &[256 * MIB, 512 * MIB])?;
        let mut m = boot_to_prompt(&profile, "", MACHINE_TIMEOUT)?;
        tests::regions::check_nvdimm_regions(&mut m, 2)
            .with_context(|| format!("booted by {}", profile.boot))?;
        m.send_line("poweroff")?;
        let outcome = m.wait_exit(EXIT_TIMEOUT);
        qemu::machine::ensure_outcome(&m, outcome, Outcome::Pass)?;
    }
    Ok(())
}

/// The same machine (1 GiB, a cold-plugged NVDIMM, a `memmap=` region) booted through
/// OVMF and the Limine-protocol loader and directly (PVH): `mem`, `firmware` and
/// `regions` agree (`tests::compare`), and each boot names its loader.
#[test]
fn direct_and_limine_boots_agree_on_mem_firmware_and_regions() -> Result<()> {
    if tests::skipped(ARCH) {
        return Ok(());
    }
    let memory = Memory::ram(GIB).with_slots(4).with_maxmem(8 * GIB);
    let profile = tests::regions::with_nvdimms(
        Profile::new(ARCH).with_memory(memory),
        "x86-compare",
        &[256 * MIB],
    )?;
    let append = "memmap=256M!512M";
    let limine = compare::view(&profile, BootPath::Limine, append, MACHINE_TIMEOUT)?;
    let direct = compare::view(&profile, BootPath::Direct, append, MACHINE_TIMEOUT)?;
    ensure!(
        limine.loader == "hotmem-boot" || limine.loader.eq_ignore_ascii_case("limine"),
        "{limine:?}"
    );
    ensure!(direct.loader == ARCH.direct_loader(), "{direct:?}");
    compare::agree(&limine, &direct, memory.ram, FIRMWARE_SLACK)?;
    ensure!(
        direct.regions.contains("source=nfit") || direct.regions.contains(" nfit "),
        "the NVDIMM is a region:\n{}",
        direct.regions
    );
    Ok(())
}

/// `vmemmap.trace=on` with an NVDIMM placed at 64 GiB (its memmap starts 1 GiB into the
/// vmemmap, past the PD the boot RAM uses): the trace of its populate lists one 2 MiB PMD
/// leaf (level 2) per section from the altmap and the new PD table from RAM.
#[test]
fn trace_of_an_nvdimm_region_lists_pmd_leaves_from_the_altmap_and_tables_from_ram() -> Result<()> {
    if tests::skipped(ARCH) {
        return Ok(());
    }
    let memory = Memory::ram(512 * MIB).with_slots(2).with_maxmem(80 * GIB);
    let profile = Profile::new(ARCH).with_memory(memory);
    let placed = [(256 * MIB, Some(64 * GIB))];
    let profile = tests::regions::with_nvdimms_at(profile, "x86-trace", &placed)?;
    let mut m = boot_to_prompt(&profile, "vmemmap.trace=on", MACHINE_TIMEOUT)?;
    tests::regions::check_nvdimm_regions(&mut m, 1)?;
    let console = m.console();
    let add = console
        .lines()
        .map(fields)
        .find(|f| f.get("source") == Some(&"nfit"))
        .ok_or_else(|| anyhow::anyhow!("no NFIT region:\n{console}"))?;
    ensure!(number(&add, "start")? == 64 * GIB, "{console}");
    let id = add.get("id").copied().unwrap_or_default().to_string();
    tests::trace::check_nvdimm_trace(&mut m, &id, 2, 2 * MIB)?;
    m.send_line("poweroff")?;
    let outcome = m.wait_exit(EXIT_TIMEOUT);
    qemu::machine::ensure_outcome(&m, outcome, Outcome::Pass)
}

/// `memmap=` on x86_64: one good range, one too small for its memmap, one overlapping it,
/// one unaligned.
#[test]
fn memmap_regions_are_carved_refused_or_verified() -> Result<()> {
    if tests::skipped(ARCH) {
        return Ok(());
    }
    let memory = Memory::ram(GIB).with_slots(4).with_maxmem(8 * GIB);
    let profile = tests::profile(ARCH).with_memory(memory);
    let append = "memmap=256M!512M memmap=2M!900M memmap=64M!600M memmap=3M!200M";
    let mut m = boot_to_prompt(&profile, append, MACHINE_TIMEOUT)?;
    let refused = [
        ("2M!900M", "too-small"),
        ("64M!600M", "overlap"),
        ("3M!200M", "unaligned"),
    ];
    tests::regions::check_memmap_refusals(&mut m, (512 * MIB, 256 * MIB), &refused)?;
    m.send_line("poweroff")?;
    let outcome = m.wait_exit(EXIT_TIMEOUT);
    qemu::machine::ensure_outcome(&m, outcome, Outcome::Pass)
}

/// Fault injection on x86_64: each PMD leaf from the altmap, page-table page and buddy
/// frame of a two-section add fails in turn, and every failure rolls back exactly.
#[test]
fn fault_sweep_rolls_back_every_failure() -> Result<()> {
    if tests::skipped(ARCH) {
        return Ok(());
    }
    let profile =
        tests::profile(ARCH).with_memory(Memory::ram(GIB).with_slots(4).with_maxmem(8 * GIB));
    tests::check_fault_sweep(&profile, "mem=512M selftest=faultsweep", "altmap-leaf")
}

/// Hostile input at the shell (malformed commands, 4 KiB of console garbage) is answered
/// without losing anything, and the kernel's mappings are W^X: text read-only, data,
/// heap, stack and memmap never executable, the vmemmap hole unmapped and caught.
#[test]
fn hostile_shell_input_is_refused_and_mappings_are_w_xor_x() -> Result<()> {
    if tests::skipped(ARCH) {
        return Ok(());
    }
    tests::hostile::boot_and_check(
        &tests::profile(ARCH).with_memory(Memory::ram(GIB)),
        MACHINE_TIMEOUT,
    )
}

/// One NFIT System Physical Address Range structure (type 0, 56 bytes) for pmem.
fn nfit_spa(index: u16, base: u64, len: u64) -> Vec<u8> {
    // The persistent-memory range type GUID 66f0d379-b4f3-4074-ac43-0d3318b78cdb, stored
    // mixed-endian as ACPI does.
    let guid = [
        0x79, 0xd3, 0xf0, 0x66, 0xf3, 0xb4, 0x74, 0x40, 0xac, 0x43, 0x0d, 0x33, 0x18, 0xb7, 0x8c,
        0xdb,
    ];
    let mut s = Vec::new();
    s.extend(0u16.to_le_bytes());
    s.extend(56u16.to_le_bytes());
    s.extend(index.to_le_bytes());
    s.extend(0u16.to_le_bytes()); // flags
    s.extend(0u32.to_le_bytes()); // reserved
    s.extend(0u32.to_le_bytes()); // proximity domain
    s.extend(guid);
    s.extend(base.to_le_bytes());
    s.extend(len.to_le_bytes());
    s.extend(0x8008u64.to_le_bytes()); // EFI_MEMORY_WB | EFI_MEMORY_NV
    s
}

/// A whole NFIT (header, 4 reserved bytes, `body`) with a correct checksum.
fn nfit_table(body: &[u8]) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend(b"NFIT");
    t.extend((40 + body.len() as u32).to_le_bytes());
    t.push(1); // revision
    t.push(0); // checksum, below
    t.extend(b"HOTMEM");
    t.extend(b"HOSTILE ");
    t.extend(1u32.to_le_bytes());
    t.extend(b"HMEM");
    t.extend(1u32.to_le_bytes());
    t.extend(0u32.to_le_bytes()); // reserved
    t.extend(body);
    let sum = t.iter().fold(0u8, |a, b| a.wrapping_add(*b));
    t[9] = sum.wrapping_neg();
    t
}

/// Malformed NFITs handed to the firmware with `-acpitable`: a truncated structure, a
/// structure of length 0, overlapping SPA ranges and a range outside the hotplug window.
/// Each is answered by exactly one line naming the problem, and the kernel comes up
/// with no device region and working memory management.
#[test]
fn malformed_nfits_are_refused_in_one_line_each() -> Result<()> {
    if tests::skipped(ARCH) {
        return Ok(());
    }
    const WINDOW: u64 = 4 * GIB;
    let mut truncated = nfit_spa(1, WINDOW, 256 * MIB);
    truncated.truncate(40);
    let mut zero = nfit_spa(1, WINDOW, 256 * MIB);
    zero[2..4].copy_from_slice(&0u16.to_le_bytes());
    let mut overlap = nfit_spa(1, WINDOW, 256 * MIB);
    overlap.extend(nfit_spa(2, WINDOW + 128 * MIB, 256 * MIB));
    let outside = nfit_spa(1, 64 * GIB, 256 * MIB);
    let cases = [
        ("truncated", truncated, "past the end of the table"),
        ("zero-length", zero, "has length 0"),
        ("overlap", overlap, "overlaps"),
        ("outside-window", outside, "outside"),
    ];
    for (name, body, says) in cases {
        let path =
            std::env::temp_dir().join(format!("hotmem-nfit-{name}-{}.bin", std::process::id()));
        std::fs::write(&path, nfit_table(&body))?;
        let memory = Memory::ram(GIB).with_slots(2).with_maxmem(8 * GIB);
        let profile = tests::profile(ARCH)
            .with_memory(memory)
            .with_args(["-acpitable".to_string(), format!("file={}", path.display())]);
        let mut m = boot_to_prompt(&profile, "", MACHINE_TIMEOUT)?;
        let console = m.console();
        let named: Vec<&str> = console
            .lines()
            .filter(|l| l.contains("NFIT") || l.contains("nfit") || l.contains("source=nfit"))
            .collect();
        ensure!(
            named.len() == 1 && named[0].contains(says),
            "{name}: want one line saying {says:?}, got {named:?}:\n{console}"
        );
        eprintln!("{name}: {}", named[0]);
        let regions = shell(&mut m, "regions")?;
        ensure!(
            !regions.contains(" pmem "),
            "{name}: a pmem region came up:\n{regions}"
        );
        let mem = shell(&mut m, "mem")?;
        let mm = fields(line(&mem, "mem.mm ")?);
        ensure!(number(&mm, "free")? > 0, "{name}: {mem}");
        m.send_line("poweroff")?;
        let outcome = m.wait_exit(EXIT_TIMEOUT);
        qemu::machine::ensure_outcome(&m, outcome, Outcome::Pass)?;
        let _ = std::fs::remove_file(&path);
    }
    Ok(())
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
