//! The hotplug soak behind `cargo xtask soak`: one machine with room for hotplug, then
//! cycle after cycle of hot-add and hot-remove of random sizes through QMP (pc-dimm where
//! the arch has it, virtio-mem everywhere), each cycle ending where it started.
//!
//! After every step the kernel's `hotplug` view is held against QEMU's
//! `query-memory-devices` (the same DIMM ranges and slots, the same virtio-mem plugged
//! size), and after every cycle the kernel's `mem.mm` counters against their values at
//! boot. The first difference stops the soak with the cycle number, the reason and both
//! views ([`Stopped`]). Any refusal, stop or error line the kernel prints on the way
//! stops it too.
//!
//! The random choices come from a seeded xorshift generator ([`Rng`]): the same seed, arch
//! and kernel replay the same cycles.
//!
//! Rooms: `plan` (the seeded choices), `records` (reading the console), `counters` (the
//! `mem.mm` and heap checks), `views` (the kernel's and QEMU's view and their comparison),
//! `cycle` (driving the machine through one cycle); this file holds the options, the
//! verdict and [`run`].

use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::accel::{self, AccelChoice};
use crate::arch::BootPath;
use crate::profile::Memory;
use crate::{Arch, BootImage, Machine, Profile, RunOptions};

mod counters;
mod cycle;
mod plan;
mod records;
mod views;

pub use counters::{Counters, HEAP_SLACK, HeapWatch, LARGE_HEAP_SLACK};
pub use plan::{
    CyclePlan, Geometry, LARGE_DIMM, LARGE_VMEM, Rng, memory_block, random_seed, size_text,
};
pub use records::{Record, is_alarm, net_bytes};
pub use views::{KernelRange, KernelView, KernelVmem, QemuView, compare_views};

use cycle::Soak;
use records::opt;

/// The shell's prompt.
const PROMPT: &str = "hotmem> ";
/// The virtio-mem device of the hotplug profile.
const VMEM: &str = "vm0";
/// The base page size, for `pages=` figures.
const PAGE: u64 = 4096;
/// From a QMP command to the kernel's last record of that step.
const STEP_TIMEOUT: Duration = Duration::from_secs(120);
/// One shell command.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the two views may take to agree once the kernel's records are all out.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);

/// The choices of one soak.
#[derive(Clone, Debug)]
pub struct Options {
    pub cycles: u32,
    pub seed: u64,
    /// Kernel command line, e.g. `hotplug.notify=poll`.
    pub append: Option<String>,
    /// Raw QEMU arguments appended last.
    pub qemu_args: Vec<String>,
    /// Also write the console to this file.
    pub console_log: Option<PathBuf>,
    /// Copy the console to stderr as it arrives.
    pub echo: bool,
    /// Stop the vCPUs (QMP `stop` ... `cont`) while DIMMs are device_add'ed. QEMU 10.0
    /// with the "fix use-after-free with dispatch" patch (Debian's 10.0.2, upstream
    /// 10.0.4) resolves a TCG TLB entry's MMIO section index against the new memory map
    /// as soon as the main thread commits it, while the vCPU flushes its TLB only later:
    /// an MMIO read in that window is answered by the wrong region (a virtio-mem-pci
    /// config read by the ISR next to it, value 3); the kernel's virtio-mem driver reads
    /// a changed config until two reads agree. With the vCPU stopped the flush happens
    /// before it runs again. A remove is not affected: the guest's own eject
    /// write unmaps the DIMM on the vCPU thread, which flushes at once.
    pub pause_for_dimms: bool,
    /// Large sizes (issue 18): pc-dimms up to [`LARGE_DIMM`] and a [`LARGE_VMEM`]
    /// virtio-mem device, on `reserve=off` backends (the host backs only the memmap).
    pub large: bool,
    /// The way in (`--boot`); `None`: [`default_boot`].
    pub boot: Option<BootPath>,
}

/// Fails in one line when the soak's devices do not exist on `boot`.
pub fn check_boot(arch: Arch, boot: BootPath) -> Result<()> {
    arch.ensure_boot(boot)?;
    if arch == Arch::Aarch64 && boot == BootPath::Direct {
        bail!(
            "aarch64 pc-dimm hotplug needs the ACPI GED, which QEMU only creates with firmware: soak with --boot limine"
        );
    }
    Ok(())
}

/// The soak's boot path unless told: direct where every device of the soak works without
/// firmware (x86_64: PVH, ACPI from QEMU through SeaBIOS; s390x: IPL), Limine on aarch64,
/// whose pc-dimm hotplug needs the ACPI GED that QEMU only creates with firmware.
pub fn default_boot(arch: Arch) -> BootPath {
    match arch {
        Arch::Aarch64 => BootPath::Limine,
        Arch::X86_64 | Arch::S390x => BootPath::Direct,
    }
}

impl Options {
    /// `cycles` cycles from `seed`, DIMMs added with the vCPUs running, nothing else.
    pub fn new(cycles: u32, seed: u64) -> Options {
        Options {
            cycles,
            seed,
            append: None,
            qemu_args: Vec::new(),
            console_log: None,
            echo: false,
            pause_for_dimms: false,
            large: false,
            boot: None,
        }
    }
}

/// How a soak ended.
#[derive(Debug)]
pub enum Verdict {
    /// Every cycle ended at the starting counters with QEMU and the kernel agreeing.
    Clean(Summary),
    /// The first drift (or failure) and both views at that moment.
    Drift(Box<Stopped>),
}

/// A finished soak.
#[derive(Clone, Debug)]
pub struct Summary {
    pub arch: Arch,
    pub cycles: u32,
    pub seed: u64,
    pub start: Counters,
    pub last: Counters,
    pub dimms: u64,
    pub dimm_bytes: u64,
    pub vmem_resizes: u64,
    pub vmem_bytes: u64,
    /// `heap.used=..` as [`HeapWatch::describe`] puts it.
    pub heap: String,
    pub took: Duration,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "soak: arch={} cycles={} seed={} drift=0",
            self.arch, self.cycles, self.seed
        )?;
        for (k, v) in &self.last.mm {
            let start = self.start.get(k);
            match start {
                Some(s) if s == *v => write!(f, " {k}={v}")?,
                _ => write!(f, " {k}={v}(start {})", opt(start))?,
            }
        }
        write!(
            f,
            " {} dimms={} dimm.added={} vmem.resizes={} vmem.added={} wall={:.1}s",
            self.heap,
            self.dimms,
            size_text(self.dimm_bytes),
            self.vmem_resizes,
            size_text(self.vmem_bytes),
            self.took.as_secs_f64()
        )
    }
}

/// Where and why a soak stopped, with both views.
#[derive(Clone, Debug)]
pub struct Stopped {
    pub arch: Arch,
    pub seed: u64,
    /// 0: before the first cycle.
    pub cycle: u32,
    pub plan: String,
    pub reason: String,
    /// The kernel's `hotplug` and `mem` output (or why it could not be read).
    pub kernel: String,
    /// `query-memory-devices`, pretty JSON (or why it could not be read).
    pub qemu: String,
    pub start: Option<Counters>,
}

impl fmt::Display for Stopped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "soak: drift at cycle {} (arch={} seed={} plan: {})",
            self.cycle, self.arch, self.seed, self.plan
        )?;
        writeln!(f, "soak: reason: {}", self.reason)?;
        if let Some(start) = &self.start {
            writeln!(f, "soak: counters at start: {}", start.line())?;
        }
        writeln!(f, "--- kernel (hotplug, mem)")?;
        writeln!(f, "{}", self.kernel.trim_end())?;
        writeln!(f, "--- QEMU (query-memory-devices)")?;
        write!(f, "{}", self.qemu.trim_end())
    }
}

/// A failed check inside a cycle (as opposed to a machine that cannot be driven).
#[derive(Debug)]
struct Drift(String);

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Drift {}

fn drift(text: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Drift(text.into()))
}

/// The machine of a `--large` soak: the default RAM plus room for the memmap of a full
/// [`LARGE_VMEM`] virtio-mem device (its sub-block mode keeps the memmap in boot RAM, 16
/// MiB per GiB, as Linux's driver does), room for three [`LARGE_DIMM`]s and the device,
/// every backend `reserve=off`.
fn large_profile(arch: Arch) -> Profile {
    let base = Profile::new(arch);
    let ram = base.memory.ram + LARGE_VMEM / 64;
    let memory = Memory { ram, ..base.memory };
    let base = base.with_memory(memory);
    let memory = match arch {
        Arch::S390x => base.memory.with_maxmem(ram + LARGE_VMEM),
        Arch::X86_64 | Arch::Aarch64 => base
            .memory
            .with_slots(4)
            .with_maxmem(ram + 3 * LARGE_DIMM + LARGE_VMEM),
    };
    let driver = crate::hotplug::virtio_mem_driver(arch);
    base.with_memory(memory)
        .with_object(format!(
            "memory-backend-ram,id=vmem0,size={LARGE_VMEM},reserve=off"
        ))
        .with_device(format!("{driver},id=vm0,memdev=vmem0,requested-size=0"))
}

/// Boots `image` on the hotplug profile and runs `opts.cycles` cycles; `progress` gets one
/// line per cycle. `Err` only when the machine could not be started or read at all.
pub fn run(image: BootImage, opts: &Options, progress: &mut dyn FnMut(&str)) -> Result<Verdict> {
    let arch = image.arch;
    let started = Instant::now();
    let mut run_opts = RunOptions::new(image);
    run_opts.accel = accel::resolve(AccelChoice::Auto, &run_opts.image)?;
    run_opts.timeout = Duration::from_secs(600 + 120 * u64::from(opts.cycles));
    run_opts.qmp = Some(crate::machine::temp_qmp_path(&format!("soak-{arch}")));
    run_opts.console_log = opts.console_log.clone();
    run_opts.append = opts.append.clone();
    run_opts.extra_args = opts.qemu_args.clone();
    run_opts.echo = run_opts.echo || opts.echo;
    let boot = opts.boot.unwrap_or_else(|| default_boot(arch));
    check_boot(arch, boot)?;
    let profile = if opts.large {
        large_profile(arch)
    } else {
        Profile::new(arch).with_hotplug()
    }
    .with_boot(boot);
    let mut m = Machine::spawn(&profile, &run_opts)?;
    m.expect("boot: ready", Duration::from_secs(300))?;
    m.expect(PROMPT, COMMAND_TIMEOUT)?;
    let mut qmp = m.qmp()?;
    qmp.set_command_timeout(COMMAND_TIMEOUT);
    let mut soak = Soak {
        m,
        qmp,
        arch,
        seed: opts.seed,
        records: Vec::new(),
        alarms: Vec::new(),
        start: None,
        pause_for_dimms: opts.pause_for_dimms,
        large: opts.large,
    };
    let start = soak.counters()?;
    let mut summary = Summary {
        arch,
        cycles: 0,
        seed: opts.seed,
        last: start.clone(),
        start,
        dimms: 0,
        dimm_bytes: 0,
        vmem_resizes: 0,
        vmem_bytes: 0,
        heap: String::new(),
        took: Duration::ZERO,
    };
    soak.start = Some(summary.start.clone());
    let slack = if opts.large {
        LARGE_HEAP_SLACK
    } else {
        HEAP_SLACK
    };
    let mut heap = HeapWatch::with_slack(summary.start.heap_used, slack);
    if let Err(e) = soak
        .check_views("at boot")
        .and_then(|_| soak.check_alarms())
    {
        return Ok(Verdict::Drift(Box::new(soak.stopped(0, "-", &e))));
    }
    let vmem = soak.qemu_view()?.device(VMEM).cloned();
    let (granule, region) = vmem
        .and_then(|d| Some((d.block_size?, d.max_size?)))
        .context("no virtio-mem vm0 block-size and max-size in query-memory-devices")?;
    let geo = Geometry::new(arch, granule, region, opts.large);
    let mut rng = Rng::new(opts.seed);
    for cycle in 1..=opts.cycles {
        let plan = CyclePlan::random(&mut rng, &geo);
        let t0 = Instant::now();
        let result = soak.cycle(cycle, &plan).and_then(|detail| {
            soak.end_of_cycle(cycle, &summary.start, &mut heap)
                .map(|c| (detail, c))
        });
        let (detail, counters) = match result {
            Ok(done) => done,
            Err(e) => {
                let stopped = soak.stopped(cycle, &plan.describe(), &e);
                return Ok(Verdict::Drift(Box::new(stopped)));
            }
        };
        summary.cycles = cycle;
        summary.last = counters;
        summary.dimms += plan.dimms.len() as u64;
        summary.dimm_bytes += plan.dimms.iter().sum::<u64>();
        summary.vmem_resizes += detail.resizes;
        summary.vmem_bytes += plan.vmem_grow.last().copied().unwrap_or(0);
        progress(&format!(
            "soak: cycle {cycle}/{} {} free={} heap.used={} {:.2}s",
            opts.cycles,
            detail.parts.join(" + "),
            summary.last.get("free").unwrap_or(0),
            summary.last.heap_used,
            t0.elapsed().as_secs_f64()
        ));
    }
    soak.m.send_line("poweroff")?;
    let _ = soak.m.wait_exit(Duration::from_secs(30));
    summary.heap = heap.describe(summary.last.heap_used);
    summary.took = started.elapsed();
    Ok(Verdict::Clean(summary))
}

#[cfg(test)]
mod tests;
