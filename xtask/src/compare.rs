//! `cargo xtask compare --arch A [--nvdimm SIZE[:label]]... [--dimm SIZE]... [--vmem SIZE]`:
//! the same scenario on a stock Debian Linux and on our kernel, in the same machine —
//! cold-plugged NVDIMMs (fsdax, memmap on the device, 2 MiB alignment on Linux), then
//! pc-dimms hot-added and a virtio-mem resize through QMP, the same steps on both — and one
//! table of figures: Linux's value, ours, and `same`, `differs` or `differs (documented:
//! ...)`. The exit status is 0 only when every difference is documented
//! (docs/linux-compare.md; the rules are in [`compare_table`](crate::compare_table)).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;
use qemu::accel::{self, AccelChoice};
use qemu::hotplug::{self, MemoryDevice};
use qemu::profile::{GIB, MIB};
use qemu::{Arch, Machine, Profile, Qmp, RunOptions};

use crate::compare_table::{self, LinuxSide, NvdimmSpec, OurSide, Scenario};
use crate::linux::guest::LinuxGuest;
use crate::linux::kit;

/// How long our kernel may take to its prompt under TCG (firmware included).
const OUR_BOOT: Duration = Duration::from_secs(180);
/// How long a hot-add may take to be online on either side.
const ONLINE: Duration = Duration::from_secs(180);
/// How long Linux may take to show the first memory block of a hot-added DIMM.
const APPEAR: Duration = Duration::from_secs(30);
/// The label area of a `:label` NVDIMM (QEMU's minimum).
const LABEL: u64 = 128 << 10;

#[derive(Parser)]
pub struct Args {
    #[arg(long)]
    pub arch: Arch,
    /// A cold-plugged NVDIMM of SIZE (e.g. 256M); `SIZE:label` adds a 128 KiB label area
    /// taken from the end of SIZE (repeatable).
    #[arg(long)]
    pub nvdimm: Vec<String>,
    /// A pc-dimm of SIZE hot-added through QMP after boot (repeatable).
    #[arg(long)]
    pub dimm: Vec<String>,
    /// Resize a cold-plugged virtio-mem device `vm0` to SIZE through QMP after the DIMMs.
    #[arg(long)]
    pub vmem: Option<String>,
    /// Build our kernel in release mode.
    #[arg(long)]
    pub release: bool,
}

pub fn run(args: Args) -> Result<()> {
    let scenario = scenario(&args)?;
    crate::setup::ensure(&[args.arch])?;
    let kit = kit::prepare(args.arch)?;
    let image = qemu::build(args.arch, args.release)?;
    eprintln!("compare: {} on Linux {}", scenario.describe(), kit.version);
    let linux = run_linux(&scenario, &kit)?;
    eprintln!("compare: Linux done; now our kernel");
    let ours = run_ours(&scenario, image)?;
    let table = compare_table::build(&scenario, &linux, &ours);
    print!("{}", table.render(args.arch, &kit.version));
    for line in &linux.refusals {
        println!("linux.refusal {}", line.trim_start_matches("linux.dmesg "));
    }
    let undocumented = table.undocumented();
    if undocumented > 0 {
        bail!("{undocumented} undocumented difference(s) from Linux (see docs/linux-compare.md)");
    }
    Ok(())
}

fn scenario(args: &Args) -> Result<Scenario> {
    let nvdimms = args
        .nvdimm
        .iter()
        .map(|text| {
            let (size, label) = match text.strip_suffix(":label") {
                Some(size) => (size, true),
                None => (text.as_str(), false),
            };
            Ok(NvdimmSpec {
                backend: crate::qmp_cmd::parse_size(size)?,
                label,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let dimms = args
        .dimm
        .iter()
        .map(|s| crate::qmp_cmd::parse_size(s))
        .collect::<Result<Vec<_>>>()?;
    let vmem = args
        .vmem
        .as_deref()
        .map(crate::qmp_cmd::parse_size)
        .transpose()?;
    if args.arch == Arch::S390x && (!nvdimms.is_empty() || !dimms.is_empty()) {
        bail!("s390x has no NVDIMMs and no pc-dimm: use --vmem only");
    }
    if nvdimms.is_empty() && dimms.is_empty() && vmem.is_none() {
        bail!("nothing to compare: give --nvdimm, --dimm or --vmem");
    }
    Ok(Scenario {
        arch: args.arch,
        nvdimms,
        dimms,
        vmem,
    })
}

/// The machine of the scenario, with fresh NVDIMM backing files for run `tag`.
fn profile(scenario: &Scenario, tag: &str) -> Result<Profile> {
    let arch = scenario.arch;
    let mut profile = Profile::new(arch);
    let devices: u64 = scenario.nvdimms.iter().map(|n| n.backend).sum::<u64>()
        + scenario.dimms.iter().sum::<u64>()
        + scenario.vmem.map_or(0, |v| v.max(2 * GIB));
    let ram = profile.memory.ram;
    let maxmem = (ram + devices + GIB).max(8 * GIB).next_multiple_of(GIB);
    let slots = u32::try_from(scenario.nvdimms.len() + scenario.dimms.len() + 1)?.max(4);
    profile.memory = match arch {
        Arch::S390x => profile.memory.with_maxmem(maxmem),
        Arch::X86_64 | Arch::Aarch64 => profile.memory.with_slots(slots).with_maxmem(maxmem),
    };
    let dir: PathBuf = kit::dir(arch).join("nvdimm");
    std::fs::create_dir_all(&dir)?;
    for (i, nv) in scenario.nvdimms.iter().enumerate() {
        let file = dir.join(format!("{tag}-{i}.img"));
        let _ = std::fs::remove_file(&file);
        profile = profile.with_object(format!(
            "memory-backend-file,id=nvmem{i},share=on,mem-path={},size={},align=2M",
            file.display(),
            nv.backend
        ));
        let label = if nv.label {
            format!(",label-size={LABEL}")
        } else {
            String::new()
        };
        profile = profile.with_device(format!("nvdimm,id=nvdimm{i},memdev=nvmem{i}{label}"));
    }
    if let Some(vmem) = scenario.vmem {
        let driver = hotplug::virtio_mem_driver(arch);
        profile = profile
            .with_object(format!(
                "memory-backend-ram,id=vmem0,size={}",
                vmem.max(2 * GIB)
            ))
            .with_device(format!("{driver},id=vm0,memdev=vmem0,requested-size=0"));
    }
    Ok(profile)
}

/// QEMU's memory devices, by id.
fn device(qmp: &mut Qmp, id: &str) -> Result<MemoryDevice> {
    hotplug::query_memory_devices(qmp)?
        .into_iter()
        .find(|d| d.id.as_deref() == Some(id))
        .with_context(|| format!("QEMU has no memory device {id}"))
}

fn nvdimm_devices(qmp: &mut Qmp, scenario: &Scenario) -> Result<Vec<MemoryDevice>> {
    (0..scenario.nvdimms.len())
        .map(|i| device(qmp, &format!("nvdimm{i}")))
        .collect()
}

/// Hot-adds DIMM `i` through QMP and returns QEMU's placement.
fn add_dimm(qmp: &mut Qmp, i: usize, size: u64) -> Result<MemoryDevice> {
    hotplug::add_ram_backend(qmp, &format!("dimmmem{i}"), size)?;
    hotplug::add_pc_dimm(qmp, &format!("dimm{i}"), &format!("dimmmem{i}"))?;
    device(qmp, &format!("dimm{i}"))
}

fn resize_vmem(qmp: &mut Qmp, size: u64) -> Result<u64> {
    hotplug::set_requested_size(qmp, "vm0", size)?;
    let waited = hotplug::wait_plugged_size(qmp, "vm0", size, ONLINE);
    let plugged = device(qmp, "vm0")?.size;
    if let Err(e) = waited {
        eprintln!("compare: {e:#}");
    }
    Ok(plugged)
}

fn run_linux(scenario: &Scenario, kit: &kit::Kit) -> Result<LinuxSide> {
    let profile = profile(scenario, "linux")?;
    let mut guest = LinuxGuest::boot(kit, &profile, None)?;
    let mut qmp = guest.qmp()?;
    let nvdimms = nvdimm_devices(&mut qmp, scenario)?;
    let after_nvdimms = guest.dump()?;
    let mut dimms = Vec::new();
    let mut refusals = Vec::new();
    for (i, &size) in scenario.dimms.iter().enumerate() {
        let dev = add_dimm(&mut qmp, i, size)?;
        let (_, online) = guest.wait_online(dev.addr..dev.addr + dev.size, APPEAR, ONLINE)?;
        if !online {
            refusals.extend(guest.dmesg_lines("unaligned hotplug range")?);
            refusals.extend(guest.dmesg_lines("add_memory failed")?);
        }
        dimms.push(dev);
    }
    let vmem = scenario
        .vmem
        .map(|size| resize_vmem(&mut qmp, size))
        .transpose()?;
    let end = guest.dump()?;
    let boot = guest.boot_records().clone();
    guest.poweroff()?;
    Ok(LinuxSide {
        boot,
        after_nvdimms,
        end,
        nvdimms,
        dimms,
        vmem_plugged: vmem,
        refusals,
    })
}

fn run_ours(scenario: &Scenario, image: qemu::BootImage) -> Result<OurSide> {
    let arch = scenario.arch;
    let profile = profile(scenario, "ours")?;
    let mut opts = RunOptions::new(image);
    // The same accelerator as the Linux side (TCG: the KVM probe boots our image only).
    opts.accel = accel::resolve(AccelChoice::Tcg, &opts.image)?;
    opts.timeout = Duration::from_secs(3600);
    opts.qmp = Some(qemu::machine::temp_qmp_path(&format!("ours-{arch}")));
    let mut m = Machine::spawn(&profile, &opts)?;
    m.expect("boot: ready", OUR_BOOT)?;
    m.expect(PROMPT, OUR_BOOT)?;
    let mut qmp = m.qmp()?;
    let nvdimms = nvdimm_devices(&mut qmp, scenario)?;
    let boot = m.console();
    let mut altmaps = String::new();
    for id in compare_table::device_region_ids(&boot) {
        altmaps += &command(&mut m, &format!("altmap {id}"), "altmap: ")?;
    }
    let mut dimms = Vec::new();
    for (i, &size) in scenario.dimms.iter().enumerate() {
        let dev = add_dimm(&mut qmp, i, size)?;
        let range = format!("range={:#x}-{:#x}", dev.addr, dev.addr + dev.size);
        wait_either(
            &m,
            &[
                &format!("hotplug: online {range}"),
                &format!("hotplug: refuse op=add {range}"),
            ],
        )?;
        dimms.push(dev);
    }
    let vmem = scenario
        .vmem
        .map(|size| resize_vmem(&mut qmp, size))
        .transpose()?;
    let hotplug = command(&mut m, "hotplug", "hotplug.summary ")?;
    let console = m.console();
    m.send_line("poweroff")?;
    let outcome = m.wait_exit(Duration::from_secs(60));
    if !outcome.is_pass() {
        bail!("our kernel ended with {outcome}");
    }
    Ok(OurSide {
        console,
        altmaps,
        hotplug,
        nvdimms,
        dimms,
        vmem_plugged: vmem,
    })
}

const PROMPT: &str = "hotmem> ";

/// Waits until the console shows one of `patterns` (anywhere so far).
fn wait_either(m: &Machine, patterns: &[&str]) -> Result<()> {
    let deadline = std::time::Instant::now() + ONLINE;
    while std::time::Instant::now() < deadline {
        let console = m.console();
        if patterns.iter().any(|p| console.contains(p)) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bail!("none of {patterns:?} on our console within {ONLINE:?}")
}

/// Types `line`, waits for its `marker` record and the next prompt; returns the text.
fn command(m: &mut Machine, line: &str, marker: &str) -> Result<String> {
    m.send_line(line)?;
    let head = m.expect(marker, Duration::from_secs(60))?;
    let tail = m.expect(PROMPT, Duration::from_secs(60))?;
    Ok(head + &tail)
}

/// MiB, for messages.
pub fn mib(bytes: u64) -> String {
    if bytes.is_multiple_of(MIB) {
        format!("{}M", bytes / MIB)
    } else {
        format!("{bytes:#x}")
    }
}
