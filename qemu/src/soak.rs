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

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::accel::{self, AccelChoice};
use crate::arch::BootPath;
use crate::hotplug::{self, MemoryDevice};
use crate::profile::{GIB, MIB, Memory};
use crate::qmp::Qmp;
use crate::{Arch, BootImage, Machine, Profile, RunOptions};

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

/// A xorshift64* generator seeded through splitmix64 (so every seed, 0 included, works).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        Rng(z.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `lo..=hi` (`lo` when `hi < lo`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        let span = u128::from(hi - lo) + 1;
        lo + ((u128::from(self.next_u64()) * span) >> 64) as u64
    }

    /// True with probability `percent` / 100.
    pub fn percent(&mut self, percent: u64) -> bool {
        self.range(0, 99) < percent
    }
}

/// A seed from the clock and the process id, for runs without `--seed`.
pub fn random_seed() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    Rng::new(nanos ^ (u64::from(std::process::id()) << 32)).next_u64()
}

/// The sizes a soak may pick on one arch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// The kernel's memory block (one section): pc-dimm sizes are multiples of it.
    pub memory_block: u64,
    /// The smallest virtio-mem step: the device block, at least the engine's 2 MiB.
    pub granule: u64,
    /// The largest virtio-mem size a cycle asks for.
    pub vmem_max: u64,
    /// The largest pc-dimm; 0 where the arch has no pc-dimm (s390x).
    pub dimm_max: u64,
    /// DIMMs added together in one cycle, at most.
    pub max_dimms: u64,
}

/// The largest pc-dimm of a `--large` soak (three of them at most, plus virtio-mem).
pub const LARGE_DIMM: u64 = 64 * GIB;
/// The virtio-mem device of a `--large` soak.
pub const LARGE_VMEM: u64 = 64 * GIB;

impl Geometry {
    /// `arch`'s sizes, with the virtio-mem device's block and region size (from QEMU);
    /// `large`: pc-dimms up to [`LARGE_DIMM`].
    pub fn new(arch: Arch, granule: u64, vmem_region: u64, large: bool) -> Geometry {
        let memory_block = memory_block(arch);
        let (dimm_max, max_dimms) = match arch {
            Arch::S390x => (0, 0),
            Arch::X86_64 | Arch::Aarch64 if large => (LARGE_DIMM, 3),
            // Four slots in the hotplug profile; three leave one free for `qmp add-dimm`.
            Arch::X86_64 | Arch::Aarch64 => (GIB, 3),
        };
        Geometry {
            memory_block,
            granule: granule.max(2 * MIB),
            vmem_max: vmem_region,
            dimm_max,
            max_dimms,
        }
    }
}

/// The kernel's memory-block (section) size on `arch`.
pub fn memory_block(arch: Arch) -> u64 {
    match arch {
        Arch::S390x => 256 * MIB,
        Arch::X86_64 | Arch::Aarch64 => 128 * MIB,
    }
}

/// What one cycle does: add the DIMMs and grow virtio-mem (together), optionally grow it
/// further and shrink it to a prefix of its units, then remove everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CyclePlan {
    /// pc-dimm sizes, added back to back and removed back to back.
    pub dimms: Vec<u64>,
    /// virtio-mem requested sizes, strictly growing (empty: virtio-mem rests).
    pub vmem_grow: Vec<u64>,
    /// Shrink first to the size of the oldest `pick % units` units (0: straight to 0).
    pub vmem_partial: Option<u64>,
}

impl CyclePlan {
    /// Picks one cycle: pc-dimm, virtio-mem, or (one in ten) both at once.
    pub fn random(rng: &mut Rng, geo: &Geometry) -> CyclePlan {
        let (dimm, vmem) = match (geo.dimm_max, rng.range(0, 19)) {
            (0, _) => (false, true),
            (_, 0..=8) => (true, false),
            (_, 9..=17) => (false, true),
            _ => (true, true),
        };
        let mut plan = CyclePlan::default();
        if dimm {
            let blocks = geo.dimm_max / geo.memory_block;
            for _ in 0..rng.range(1, geo.max_dimms) {
                plan.dimms.push(geo.memory_block * rng.range(1, blocks));
            }
        }
        if vmem {
            let mut size = 0;
            while let Some(next) = vmem_size(rng, geo, size) {
                plan.vmem_grow.push(next);
                size = next;
                if plan.vmem_grow.len() == 2 || !rng.percent(30) {
                    break;
                }
            }
            if rng.percent(50) {
                plan.vmem_partial = Some(rng.next_u64());
            }
        }
        plan
    }

    /// `dimm 384M+128M`, `virtio-mem 0->650M->1G`, ... (for the progress line).
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.dimms.is_empty() {
            let sizes: Vec<String> = self.dimms.iter().map(|&s| size_text(s)).collect();
            parts.push(format!("dimm {}", sizes.join("+")));
        }
        if !self.vmem_grow.is_empty() {
            let sizes: Vec<String> = self.vmem_grow.iter().map(|&s| size_text(s)).collect();
            parts.push(format!("virtio-mem 0->{}", sizes.join("->")));
        }
        parts.join(" + ")
    }
}

/// A virtio-mem size above `above` and at most `geo.vmem_max`: half the time whole memory
/// blocks (memmap inside them), else any number of granules (memmap from RAM for the
/// part off the block grid).
fn vmem_size(rng: &mut Rng, geo: &Geometry, above: u64) -> Option<u64> {
    if above >= geo.vmem_max {
        return None;
    }
    let mb = geo.memory_block;
    if rng.percent(50) && above / mb < geo.vmem_max / mb {
        return Some(mb * rng.range(above / mb + 1, geo.vmem_max / mb));
    }
    let g = geo.granule;
    Some(g * rng.range(above / g + 1, geo.vmem_max / g))
}

/// `128M`, `1G`, `650M`, `6M`.
pub fn size_text(bytes: u64) -> String {
    if bytes != 0 && bytes.is_multiple_of(GIB) {
        format!("{}G", bytes / GIB)
    } else {
        format!("{}M", bytes / MIB)
    }
}

/// The `key=value` words of a line.
fn fields(line: &str) -> HashMap<&str, &str> {
    line.split_whitespace()
        .filter_map(|w| w.split_once('='))
        .collect()
}

/// Decimal or `0x` hexadecimal.
fn parse_number(text: &str) -> Option<u64> {
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

fn number(f: &HashMap<&str, &str>, key: &str, line: &str) -> Result<u64> {
    f.get(key)
        .and_then(|t| parse_number(t))
        .with_context(|| format!("no number {key}= in {line:?}"))
}

/// A `lo-hi` range of two hexadecimal numbers.
fn parse_range(text: &str) -> Option<(u64, u64)> {
    let (lo, hi) = text.split_once('-')?;
    Some((parse_number(lo)?, parse_number(hi)?))
}

/// The kernel's counters: every number of the `mem.mm` record, and the heap in use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counters {
    /// `mem.mm` fields in print order (managed, free, ..., vmemmap.tables); `free` counts
    /// the pages the heap holds from the buddy allocator too (`mem.heap buddy.pages`): the
    /// heap grows and shrinks with what the kernel keeps, not with what was hot-added.
    pub mm: Vec<(String, u64)>,
    /// `mem.heap used=`.
    pub heap_used: u64,
}

impl Counters {
    /// Parses the output of `mem`.
    pub fn parse(text: &str) -> Result<Counters> {
        let mm_line = find_line(text, "mem.mm ")?;
        let mut mm = Vec::new();
        for word in mm_line.split_whitespace().skip(1) {
            let (key, value) = word
                .split_once('=')
                .with_context(|| format!("bad word {word:?} in {mm_line:?}"))?;
            let value =
                parse_number(value).with_context(|| format!("{key}={value} in {mm_line:?}"))?;
            mm.push((key.to_string(), value));
        }
        let heap = find_line(text, "mem.heap ")?;
        let heap_used = number(&fields(heap), "used", heap)?;
        if let Ok(buddy) = number(&fields(heap), "buddy.pages", heap) {
            for (key, value) in &mut mm {
                if key == "free" {
                    *value += buddy;
                }
            }
        }
        Ok(Counters { mm, heap_used })
    }

    pub fn get(&self, key: &str) -> Option<u64> {
        self.mm.iter().find(|(k, _)| k == key).map(|&(_, v)| v)
    }

    /// Every `mem.mm` counter that differs from `start` (the heap is judged separately).
    pub fn drift_from(&self, start: &Counters) -> Vec<String> {
        let keys: BTreeSet<&str> = (start.mm.iter().chain(&self.mm))
            .map(|(k, _)| k.as_str())
            .collect();
        keys.into_iter()
            .filter_map(|k| match (start.get(k), self.get(k)) {
                (a, b) if a == b => None,
                (a, b) => Some(format!("{k}: start {} now {}", opt(a), opt(b))),
            })
            .collect()
    }

    /// `managed=.. free=.. ... heap.used=..`.
    pub fn line(&self) -> String {
        let mut words: Vec<String> = self.mm.iter().map(|(k, v)| format!("{k}={v}")).collect();
        words.push(format!("heap.used={}", self.heap_used));
        words.join(" ")
    }
}

fn opt(v: Option<u64>) -> String {
    v.map_or("-".to_string(), |v| v.to_string())
}

fn find_line<'a>(text: &'a str, prefix: &str) -> Result<&'a str> {
    text.lines()
        .map(str::trim)
        .find(|l| l.starts_with(prefix))
        .with_context(|| format!("no {prefix:?} line in:\n{text}"))
}

/// The heap may end a cycle above its boot figure by at most this much.
pub const HEAP_SLACK: u64 = 32 << 10;
/// The same for a `--large` soak: vectors sized by hundreds of ranges, units and sections
/// keep their capacity (390 KB after a cycle of 170 GiB on x86_64: about 460 bytes per
/// memory block).
pub const LARGE_HEAP_SLACK: u64 = 1 << 20;

/// Judges `mem.heap used` over the cycles, loosely. It is not compared exactly: vectors
/// of the engine and the sources keep the capacity of the busiest cycle so far (most
/// ranges, most virtio-mem units), so the figure steps up whenever a cycle sets a new
/// high-water mark and stays there (4 steps in 200 x86_64 cycles, about 4.6 KiB). A leak
/// instead rises cycle after cycle: it is caught by more than [`HeapWatch::MAX_RISES`]
/// new highs in a run, [`HeapWatch::MAX_RISING`] in a row, or more than [`HEAP_SLACK`]
/// above the start.
#[derive(Clone, Debug)]
pub struct HeapWatch {
    start: u64,
    slack: u64,
    high: u64,
    /// Cycles that ended above every earlier one, and the last of them.
    rises: u32,
    last_rise: u32,
    /// Such cycles in a row, up to now.
    rising: u32,
}

impl HeapWatch {
    /// Capacity doublings of a handful of vectors; a leak passes it within a few dozen
    /// cycles of the kind that leaks.
    pub const MAX_RISES: u32 = 16;
    /// Rising this many cycles in a row is a leak, not vector growth.
    pub const MAX_RISING: u32 = 6;

    pub fn new(start: u64) -> HeapWatch {
        HeapWatch::with_slack(start, HEAP_SLACK)
    }

    /// A watch that allows `slack` bytes above `start`.
    pub fn with_slack(start: u64, slack: u64) -> HeapWatch {
        HeapWatch {
            start,
            slack,
            high: start,
            rises: 0,
            last_rise: 0,
            rising: 0,
        }
    }

    /// Takes cycle `cycle`'s figure; `Err` describes a leak.
    pub fn check(&mut self, cycle: u32, used: u64) -> Result<(), String> {
        if used > self.high {
            self.high = used;
            self.rises += 1;
            self.last_rise = cycle;
            self.rising += 1;
        } else {
            self.rising = 0;
        }
        let leak = if used > self.start + self.slack {
            format!("more than {} bytes above the start", self.slack)
        } else if self.rises > Self::MAX_RISES {
            format!("a new high in {} cycles", self.rises)
        } else if self.rising >= Self::MAX_RISING {
            format!("a new high in each of the last {} cycles", self.rising)
        } else {
            return Ok(());
        };
        Err(format!(
            "heap used {used} bytes (start {}): {leak}",
            self.start
        ))
    }

    /// `heap.used=N` with the start and the rises when it moved.
    pub fn describe(&self, now: u64) -> String {
        match now == self.start {
            true => format!("heap.used={now}"),
            false => format!(
                "heap.used={now}(start {}, {} new highs, the last in cycle {})",
                self.start, self.rises, self.last_rise
            ),
        }
    }
}

/// One hot-added range of the kernel's `hotplug` listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelRange {
    pub start: u64,
    pub end: u64,
    /// `dimm`, `virtio-mem`, `shell`, ...
    pub via: String,
    /// pc-dimm slot.
    pub slot: Option<u64>,
    /// virtio-mem device index.
    pub device: Option<u64>,
    /// Pages of the range that are online.
    pub online_pages: u64,
}

/// One virtio-mem device of the kernel's `hotplug` listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelVmem {
    pub dev: u64,
    pub addr: u64,
    /// Plugged per the device config.
    pub plugged: u64,
    pub requested: u64,
    /// Plugged as the driver counts it.
    pub kernel: u64,
    pub stranded: u64,
    /// Units (memory blocks or big blocks), ascending: `(start, end, plugged bytes)`.
    pub units: Vec<(u64, u64, u64)>,
}

/// The kernel's side: the `hotplug` command's ranges and virtio-mem devices.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelView {
    pub ranges: Vec<KernelRange>,
    pub vmem: Vec<KernelVmem>,
    /// `hotplug.summary ranges=`.
    pub summary_ranges: u64,
    /// The listing's own lines, for reports.
    pub lines: Vec<String>,
}

impl KernelView {
    /// Parses the output of `hotplug`.
    pub fn parse(text: &str) -> Result<KernelView> {
        let mut view = KernelView::default();
        let mut summary = None;
        for line in text.lines().map(str::trim) {
            let f = fields(line);
            if line.starts_with("hotplug.") || line.starts_with("virtio-mem") {
                view.lines.push(line.to_string());
            }
            if line.starts_with("hotplug.range ") {
                let (start, end) = f
                    .get("range")
                    .and_then(|r| parse_range(r))
                    .with_context(|| format!("no range in {line:?}"))?;
                view.ranges.push(KernelRange {
                    start,
                    end,
                    via: f.get("via").unwrap_or(&"?").to_string(),
                    slot: f.get("slot").and_then(|t| parse_number(t)),
                    device: f.get("device").and_then(|t| parse_number(t)),
                    online_pages: number(&f, "online.pages", line)?,
                });
            } else if line.starts_with("hotplug.summary ") {
                summary = Some(number(&f, "ranges", line)?);
            } else if line.starts_with("virtio-mem dev=") {
                view.vmem.push(KernelVmem {
                    dev: number(&f, "dev", line)?,
                    addr: number(&f, "addr", line)?,
                    plugged: number(&f, "plugged", line)?,
                    requested: number(&f, "requested", line)?,
                    kernel: number(&f, "kernel", line)?,
                    stranded: number(&f, "stranded", line)?,
                    units: Vec::new(),
                });
            } else if line.starts_with("virtio-mem.unit ") {
                let dev = number(&f, "dev", line)?;
                let range = f
                    .get("range")
                    .and_then(|r| parse_range(r))
                    .with_context(|| format!("no range in {line:?}"))?;
                let owner = view
                    .vmem
                    .iter_mut()
                    .rfind(|v| v.dev == dev)
                    .with_context(|| format!("unit before its device: {line:?}"))?;
                owner
                    .units
                    .push((range.0, range.1, number(&f, "plugged", line)?));
            }
        }
        view.summary_ranges = summary.with_context(|| format!("no hotplug.summary in:\n{text}"))?;
        Ok(view)
    }

    /// Online bytes of the ranges hot-added through virtio-mem device `dev` (their
    /// memmap is in RAM, so every plugged byte is online).
    pub fn vmem_range_bytes(&self, dev: u64) -> u64 {
        self.ranges
            .iter()
            .filter(|r| r.via == "virtio-mem" && r.device == Some(dev))
            .map(|r| r.online_pages * PAGE)
            .sum()
    }
}

/// QEMU's side: `query-memory-devices`, parsed and raw.
#[derive(Clone, Debug)]
pub struct QemuView {
    pub devices: Vec<MemoryDevice>,
    /// DIMM slot by device id.
    pub slots: BTreeMap<String, u64>,
    pub raw: Value,
}

impl QemuView {
    pub fn parse(raw: Value) -> Result<QemuView> {
        let devices = hotplug::parse_memory_devices(&raw)?;
        let slots = (raw.as_array().into_iter().flatten())
            .filter_map(|e| {
                let id = e["data"]["id"].as_str()?;
                Some((id.to_string(), e["data"]["slot"].as_u64()?))
            })
            .collect();
        Ok(QemuView {
            devices,
            slots,
            raw,
        })
    }

    pub fn device(&self, id: &str) -> Option<&MemoryDevice> {
        self.devices.iter().find(|d| d.id.as_deref() == Some(id))
    }
}

/// Every way the two views disagree (empty: they agree).
///
/// pc-dimms: the same set of `(start, end, slot)`. virtio-mem: one kernel device per
/// QEMU device at the same address, whose config `plugged` and `requested`, driver count,
/// units and hot-added ranges all equal QEMU's `size` (`requested-size`), with nothing
/// stranded and every range inside the device's region. No other hot-added ranges.
pub fn compare_views(kernel: &KernelView, qemu: &QemuView) -> Vec<String> {
    let mut diffs = Vec::new();
    let qemu_dimms: BTreeSet<(u64, u64, Option<u64>)> = (qemu.devices.iter())
        .filter(|d| d.kind == "dimm")
        .map(|d| {
            let slot = d.id.as_ref().and_then(|id| qemu.slots.get(id)).copied();
            (d.addr, d.addr + d.size, slot)
        })
        .collect();
    let kernel_dimms: BTreeSet<(u64, u64, Option<u64>)> = (kernel.ranges.iter())
        .filter(|r| r.via == "dimm")
        .map(|r| (r.start, r.end, r.slot))
        .collect();
    if qemu_dimms != kernel_dimms {
        diffs.push(format!(
            "pc-dimms (start, end, slot): QEMU {} kernel {}",
            dimm_list(&qemu_dimms),
            dimm_list(&kernel_dimms)
        ));
    }
    let qemu_vmem: Vec<&MemoryDevice> = (qemu.devices.iter())
        .filter(|d| d.kind == "virtio-mem")
        .collect();
    if qemu_vmem.len() != kernel.vmem.len() {
        diffs.push(format!(
            "virtio-mem devices: QEMU {} kernel {}",
            qemu_vmem.len(),
            kernel.vmem.len()
        ));
    }
    for d in qemu_vmem {
        let name = d.id.as_deref().unwrap_or("?");
        let Some(k) = kernel.vmem.iter().find(|k| k.addr == d.addr) else {
            diffs.push(format!(
                "virtio-mem {name} at {:#x}: not in the kernel",
                d.addr
            ));
            continue;
        };
        let units: u64 = k.units.iter().map(|u| u.2).sum();
        let ranges = kernel.vmem_range_bytes(k.dev);
        for (what, value) in [
            ("config plugged", k.plugged),
            ("driver count", k.kernel),
            ("units", units),
            ("hot-added ranges", ranges),
        ] {
            if value != d.size {
                diffs.push(format!(
                    "virtio-mem {name}: QEMU size {:#x}, kernel {what} {value:#x}",
                    d.size
                ));
            }
        }
        if Some(k.requested) != d.requested_size {
            diffs.push(format!(
                "virtio-mem {name}: QEMU requested-size {:#x}, kernel config requested {:#x}",
                d.requested_size.unwrap_or(0),
                k.requested
            ));
        }
        if k.stranded != 0 {
            diffs.push(format!("virtio-mem {name}: {} stranded ranges", k.stranded));
        }
        let window = d.addr..d.addr + d.max_size.unwrap_or(0);
        for r in kernel.ranges.iter().filter(|r| r.device == Some(k.dev)) {
            if r.start < window.start || r.end > window.end {
                diffs.push(format!(
                    "virtio-mem {name}: range {:#x}-{:#x} outside the region {:#x}-{:#x}",
                    r.start, r.end, window.start, window.end
                ));
            }
        }
    }
    for r in kernel
        .ranges
        .iter()
        .filter(|r| r.via != "dimm" && r.via != "virtio-mem")
    {
        diffs.push(format!(
            "kernel range {:#x}-{:#x} via={} has no QEMU device",
            r.start, r.end, r.via
        ));
    }
    if kernel.summary_ranges != kernel.ranges.len() as u64 {
        diffs.push(format!(
            "hotplug.summary ranges={} but {} ranges listed",
            kernel.summary_ranges,
            kernel.ranges.len()
        ));
    }
    diffs
}

fn dimm_list(set: &BTreeSet<(u64, u64, Option<u64>)>) -> String {
    let items: Vec<String> = set
        .iter()
        .map(|(s, e, slot)| format!("{s:#x}-{e:#x}/slot {}", opt(*slot)))
        .collect();
    format!("[{}]", items.join(", "))
}

/// One `hotplug: KIND range=A-B ...` record of the engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// `add`, `online`, `offline`, `remove`, ...
    pub kind: String,
    pub start: u64,
    pub end: u64,
    /// `pages=` (online and offline records).
    pub pages: Option<u64>,
}

impl Record {
    pub fn parse(line: &str) -> Option<Record> {
        let rest = line.trim().strip_prefix("hotplug: ")?;
        let kind = rest.split_whitespace().next()?.to_string();
        let word = |key: &str| rest.split_whitespace().find_map(|w| w.strip_prefix(key));
        let (start, end) = parse_range(word("range=")?)?;
        let pages = word("pages=").and_then(parse_number);
        Some(Record {
            kind,
            start,
            end,
            pages,
        })
    }
}

/// Lines that end a soak wherever they appear: a refused add or remove, a virtio-mem
/// driver that stopped or failed, an error-level log line, a panic or CPU exception.
pub fn is_alarm(line: &str) -> bool {
    let line = line.trim().trim_start_matches(PROMPT);
    [
        "hotplug: refuse",
        "virtio-mem: stop",
        "virtio-mem: error",
        "virtio-mem: refused",
        "] ERROR ",
        "exception:",
        "@@EXIT",
        // A hot-add's full verification (after its online record) failed.
        " result=fail",
    ]
    .iter()
    .any(|p| line.contains(p))
        || line.starts_with("panic")
}

/// Net bytes onlined inside `window` by `records` (the pages of `online` records minus
/// those of `offline` records; a remove's own `offline` record counts what it took).
pub fn net_bytes(records: &[Record], window: (u64, u64)) -> i128 {
    records
        .iter()
        .filter(|r| r.start >= window.0 && r.end <= window.1)
        .map(|r| {
            let bytes = i128::from(r.pages.unwrap_or(0) * PAGE);
            match r.kind.as_str() {
                "online" => bytes,
                "offline" => -bytes,
                _ => 0,
            }
        })
        .sum()
}

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

/// What a cycle did, as it happened (for the progress line).
struct CycleDetail {
    /// `dimm 384M@0x180000000 ...`, `virtio-mem 0->650M->256M(kept 2)->0 units=3`.
    parts: Vec<String>,
    resizes: u64,
}

/// The machine under soak.
struct Soak {
    m: Machine,
    qmp: Qmp,
    arch: Arch,
    seed: u64,
    /// This cycle's `hotplug: ...` records, in console order.
    records: Vec<Record>,
    /// Alarm lines seen and not yet reported.
    alarms: Vec<String>,
    start: Option<Counters>,
    pause_for_dimms: bool,
    large: bool,
}

impl Soak {
    /// Notes the records and alarms in console text the soak has consumed.
    fn absorb(&mut self, text: &str) {
        for line in text.lines() {
            let line = line.trim().trim_start_matches(PROMPT);
            if let Some(r) = Record::parse(line) {
                self.records.push(r);
            }
            if is_alarm(line) {
                self.alarms.push(line.to_string());
            }
        }
    }

    fn check_alarms(&mut self) -> Result<()> {
        if self.alarms.is_empty() {
            return Ok(());
        }
        let lines = std::mem::take(&mut self.alarms);
        Err(drift(format!("the kernel said:\n  {}", lines.join("\n  "))))
    }

    /// Types `command` and returns its output up to the next prompt after the line
    /// holding `marker` (records printed meanwhile are absorbed and returned too).
    fn command(&mut self, command: &str, marker: &str) -> Result<String> {
        self.m.send_line(command)?;
        let head = self.m.expect(marker, COMMAND_TIMEOUT)?;
        let tail = self.m.expect(PROMPT, COMMAND_TIMEOUT)?;
        let text = head + &tail;
        self.absorb(&text);
        Ok(text)
    }

    fn counters(&mut self) -> Result<Counters> {
        let text = self.command("mem", "mem.mm ")?;
        Counters::parse(&text)
    }

    fn kernel_view(&mut self) -> Result<KernelView> {
        let text = self.command("hotplug", "hotplug.summary ")?;
        KernelView::parse(&text)
    }

    fn qemu_view(&mut self) -> Result<QemuView> {
        let raw = self.qmp.execute("query-memory-devices", Value::Null)?;
        QemuView::parse(raw)
    }

    /// Reads console lines until `done` holds for this cycle's records, an alarm line
    /// appears, or `STEP_TIMEOUT` passes.
    fn wait_records(&mut self, what: &str, done: impl Fn(&[Record]) -> bool) -> Result<()> {
        let deadline = Instant::now() + STEP_TIMEOUT;
        while !done(&self.records) {
            self.check_alarms()?;
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(drift(format!(
                    "{what}: the kernel's records did not complete within {STEP_TIMEOUT:?}"
                )));
            }
            let text = self
                .m
                .expect("\n", left)
                .map_err(|e| drift(format!("{what}: {e:#}")))?;
            self.absorb(&text);
        }
        self.check_alarms()
    }

    /// Polls both views until they agree (they may lag each other by a QMP round trip).
    /// Waits until the virtio-mem driver holds no unit: a memory block whose last
    /// sub-block went offline is removed on the driver's next poll, after the records the
    /// remove waited for.
    fn wait_units_gone(&mut self) -> Result<()> {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        loop {
            let kernel = self.kernel_view()?;
            let left: usize = kernel.vmem.iter().map(|v| v.units.len()).sum();
            if left == 0 {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(drift(format!(
                    "virtio-mem still holds {left} units after shrinking to 0"
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn check_views(&mut self, what: &str) -> Result<(KernelView, QemuView)> {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        loop {
            let qemu = self.qemu_view()?;
            let kernel = self.kernel_view()?;
            let diffs = compare_views(&kernel, &qemu);
            if diffs.is_empty() {
                return Ok((kernel, qemu));
            }
            if Instant::now() >= deadline {
                return Err(drift(format!(
                    "{what}: QEMU and the kernel disagree:\n  {}",
                    diffs.join("\n  ")
                )));
            }
            thread::sleep(Duration::from_millis(200));
        }
    }

    /// Asks vm0 for `target` bytes and waits until the kernel's records and both views
    /// say it has exactly that many plugged; returns the kernel's view then.
    fn resize(&mut self, target: u64, window: (u64, u64)) -> Result<KernelView> {
        hotplug::set_requested_size(&mut self.qmp, VMEM, target)?;
        let what = format!("virtio-mem to {}", size_text(target));
        self.wait_records(&what, |r| net_bytes(r, window) == i128::from(target))?;
        let (kernel, qemu) = self.check_views(&what)?;
        let size = qemu.device(VMEM).map_or(0, |d| d.size);
        if size != target {
            return Err(drift(format!(
                "{what}: QEMU plugged {size:#x} instead of {target:#x}"
            )));
        }
        Ok(kernel)
    }

    /// One cycle of `plan`: everything added, checked, removed, checked.
    fn cycle(&mut self, cycle: u32, plan: &CyclePlan) -> Result<CycleDetail> {
        self.records.clear();
        self.check_ost()?;
        let vmem_dev = self.qemu_view()?.device(VMEM).cloned().context("no vm0")?;
        let window = (
            vmem_dev.addr,
            vmem_dev.addr + vmem_dev.max_size.unwrap_or(0),
        );
        let mut detail = CycleDetail {
            parts: Vec::new(),
            resizes: 0,
        };
        // Add: the DIMMs back to back, and the first virtio-mem size at the same time.
        let ids: Vec<(String, String, u64)> = (plan.dimms.iter().enumerate())
            .map(|(i, &size)| {
                let n = format!("{cycle}-{i}");
                (format!("soak-dimm{n}"), format!("soak-mem{n}"), size)
            })
            .collect();
        self.add_dimms(&ids)?;
        if let Some(&first) = plan.vmem_grow.first() {
            hotplug::set_requested_size(&mut self.qmp, VMEM, first)?;
            detail.resizes += 1;
        }
        let qemu = self.qemu_view()?;
        let mut dimm_ranges = Vec::new();
        for (id, _, size) in &ids {
            let d = qemu
                .device(id)
                .with_context(|| format!("QEMU has no {id} after device_add"))?;
            if d.size != *size {
                return Err(drift(format!("QEMU made {id} {:#x} bytes", d.size)));
            }
            dimm_ranges.push((d.addr, d.addr + d.size));
        }
        let vmem_target = plan.vmem_grow.first().copied().unwrap_or(0);
        let has = |r: &[Record], kind: &str, (s, e): (u64, u64)| {
            r.iter()
                .any(|x| x.kind == kind && x.start == s && x.end == e)
        };
        self.wait_records("add", |r| {
            dimm_ranges.iter().all(|&d| has(r, "online", d))
                && net_bytes(r, window) == i128::from(vmem_target)
        })?;
        let (kernel, _) = self.check_views("after the add")?;
        if !dimm_ranges.is_empty() {
            let dimms: Vec<String> = (dimm_ranges.iter())
                .map(|(s, e)| format!("{}@{s:#x}", size_text(e - s)))
                .collect();
            detail.parts.push(format!("dimm {}", dimms.join(" ")));
        }
        let mut vmem = format!("virtio-mem 0->{}", size_text(vmem_target));
        // virtio-mem: grow further, then shrink to a prefix of the units.
        let mut kernel = kernel;
        for &target in plan.vmem_grow.iter().skip(1) {
            kernel = self.resize(target, window)?;
            detail.resizes += 1;
            vmem += &format!("->{}", size_text(target));
        }
        let units = kernel.vmem.first().map_or(0, |v| v.units.len());
        if let (Some(pick), Some(_)) = (plan.vmem_partial, plan.vmem_grow.last()) {
            let unit_list = kernel
                .vmem
                .first()
                .map(|v| v.units.clone())
                .unwrap_or_default();
            let keep = (pick % unit_list.len().max(1) as u64) as usize;
            if keep > 0 {
                let target: u64 = unit_list[..keep].iter().map(|u| u.2).sum();
                self.resize(target, window)?;
                detail.resizes += 1;
                vmem += &format!("->{}(kept {keep})", size_text(target));
            }
        }
        if !plan.vmem_grow.is_empty() {
            detail.parts.push(format!("{vmem}->0 units={units}"));
        }
        // Remove: every DIMM back to back, and virtio-mem to 0 at the same time.
        self.records.clear();
        for (id, _, _) in &ids {
            self.qmp.execute("device_del", json!({ "id": id }))?;
        }
        let plugged = self.qemu_view()?.device(VMEM).map_or(0, |d| d.size);
        if plugged != 0 {
            hotplug::set_requested_size(&mut self.qmp, VMEM, 0)?;
            detail.resizes += 1;
        }
        self.wait_records("remove", |r| {
            dimm_ranges.iter().all(|&d| has(r, "remove", d))
                && net_bytes(r, window) == -i128::from(plugged)
        })?;
        for (id, _, _) in &ids {
            self.qmp
                .wait_event_where("DEVICE_DELETED", STEP_TIMEOUT, |d| d["device"] == *id)
                .map_err(|e| drift(format!("{id}: no DEVICE_DELETED after the remove: {e}")))?;
        }
        for (_, mem, _) in &ids {
            self.object_del(mem)?;
        }
        self.wait_units_gone()?;
        self.check_views("after the remove")?;
        self.check_ost()?;
        Ok(detail)
    }

    /// Drops the QMP events received so far, failing on an `ACPI_DEVICE_OST` whose status
    /// is neither success nor "eject in progress" (the guest refused or failed).
    fn check_ost(&mut self) -> Result<()> {
        let failures: Vec<String> = (self.qmp.take_events().into_iter())
            .filter(|e| e["event"] == "ACPI_DEVICE_OST")
            .filter(|e| !matches!(e["data"]["info"]["status"].as_u64(), Some(0 | 0x84)))
            .map(|e| e.to_string())
            .collect();
        if failures.is_empty() {
            return Ok(());
        }
        Err(drift(format!(
            "_OST failures from the guest:\n  {}",
            failures.join("\n  ")
        )))
    }

    /// `object-add` + `device_add` of every DIMM, with the vCPUs stopped around them
    /// unless [`Options::pause_for_dimms`] is off.
    fn add_dimms(&mut self, ids: &[(String, String, u64)]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        if self.pause_for_dimms {
            self.qmp.execute("stop", Value::Null)?;
        }
        let reserve = !self.large;
        let added = ids.iter().try_for_each(|(id, mem, size)| {
            let args = json!({"qom-type": "memory-backend-ram", "id": mem, "size": size,
                "reserve": reserve});
            self.qmp.execute("object-add", args)?;
            hotplug::add_pc_dimm(&mut self.qmp, id, mem)
        });
        if self.pause_for_dimms {
            self.qmp.execute("cont", Value::Null)?;
        }
        added
    }

    /// `object-del` of a DIMM's backend, retried while QEMU still finalises the DIMM.
    fn object_del(&mut self, id: &str) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.qmp.execute("object-del", json!({ "id": id })) {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() >= deadline => {
                    return Err(drift(format!("object-del {id}: {e}")));
                }
                Err(_) => thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Counters against the start (strictly), the heap against its watch.
    fn end_of_cycle(
        &mut self,
        cycle: u32,
        start: &Counters,
        heap: &mut HeapWatch,
    ) -> Result<Counters> {
        let now = self.counters()?;
        self.check_alarms()?;
        let mut diffs = now.drift_from(start);
        if let Err(leak) = heap.check(cycle, now.heap_used) {
            diffs.push(leak);
        }
        if !diffs.is_empty() {
            return Err(drift(format!(
                "counters moved from the start:\n  {}",
                diffs.join("\n  ")
            )));
        }
        Ok(now)
    }

    /// The report for an error in `cycle`: both views as they are now.
    fn stopped(&mut self, cycle: u32, plan: &str, error: &anyhow::Error) -> Stopped {
        let reason = match error.downcast_ref::<Drift>() {
            Some(d) => d.0.clone(),
            None => format!("{error:#}"),
        };
        let kernel = ["hotplug", "mem"]
            .iter()
            .map(|cmd| {
                let marker = if *cmd == "mem" {
                    "mem.mm "
                } else {
                    "hotplug.summary "
                };
                match self.command(cmd, marker) {
                    Ok(text) => text
                        .lines()
                        .map(|l| l.trim().trim_start_matches(PROMPT))
                        .filter(|l| !l.is_empty() && *l != *cmd)
                        .collect::<Vec<_>>()
                        .join("\n"),
                    Err(e) => format!("({cmd} could not be read: {e:#})"),
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        let qemu = match self.qmp.execute("query-memory-devices", Value::Null) {
            Ok(raw) => serde_json::to_string_pretty(&raw).unwrap_or_default(),
            Err(e) => format!("(query-memory-devices failed: {e})"),
        };
        Stopped {
            arch: self.arch,
            seed: self.seed,
            cycle,
            plan: plan.to_string(),
            reason,
            kernel,
            qemu,
            start: self.start.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generator_is_seeded_and_stays_in_range() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        let xs: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(Rng::new(8).next_u64(), xs[0]);
        assert_ne!(Rng::new(0).next_u64(), 0);
        let mut r = Rng::new(1);
        let mut seen = BTreeSet::new();
        for _ in 0..1000 {
            let v = r.range(3, 6);
            assert!((3..=6).contains(&v));
            seen.insert(v);
        }
        assert_eq!(seen.len(), 4);
        assert_eq!(r.range(5, 5), 5);
    }

    #[test]
    fn plans_respect_the_geometry() {
        for arch in Arch::ALL {
            let geo = Geometry::new(arch, 2 * MIB, 2 * GIB, false);
            let mut rng = Rng::new(42);
            let (mut dimm, mut vmem, mut partial) = (0, 0, 0);
            for _ in 0..500 {
                let plan = CyclePlan::random(&mut rng, &geo);
                assert!(!plan.dimms.is_empty() || !plan.vmem_grow.is_empty());
                assert!(plan.dimms.len() as u64 <= geo.max_dimms);
                for &d in &plan.dimms {
                    assert!(d > 0 && d <= geo.dimm_max && d % geo.memory_block == 0);
                }
                let mut last = 0;
                for &v in &plan.vmem_grow {
                    assert!(v > last && v <= geo.vmem_max && v % geo.granule == 0);
                    last = v;
                }
                assert!(plan.vmem_partial.is_none() || !plan.vmem_grow.is_empty());
                dimm += usize::from(!plan.dimms.is_empty());
                vmem += usize::from(!plan.vmem_grow.is_empty());
                partial += usize::from(plan.vmem_partial.is_some());
            }
            match arch {
                Arch::S390x => assert_eq!((dimm, vmem), (0, 500)),
                _ => assert!(dimm > 150 && vmem > 150, "{dimm} {vmem}"),
            }
            assert!(partial > 50);
        }
    }

    #[test]
    fn plans_replay_from_the_seed() {
        let geo = Geometry::new(Arch::X86_64, 2 * MIB, 2 * GIB, false);
        let run = |seed| {
            let mut rng = Rng::new(seed);
            (0..20)
                .map(|_| CyclePlan::random(&mut rng, &geo))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(99), run(99));
        assert_ne!(run(99), run(100));
        let plan = CyclePlan {
            dimms: vec![384 * MIB, GIB],
            vmem_grow: vec![650 * MIB, GIB],
            vmem_partial: None,
        };
        assert_eq!(plan.describe(), "dimm 384M+1G + virtio-mem 0->650M->1G");
    }

    const MEM: &str = "mem\nmem.kernel start=0x0 end=0x10 bytes=16\n\
        mem.heap used=68336 bytes=4194304\n\
        mem.mm managed=255708 free=255700 movable.managed=0 movable.free=0 sections=6 present=393216 memmap.pages=6144 vmemmap.leaves=6144 vmemmap.tables=20\n";

    #[test]
    fn counters_parse_and_drift_names_the_field() {
        let start = Counters::parse(MEM).unwrap();
        assert_eq!(start.get("free"), Some(255_700));
        assert_eq!(start.get("vmemmap.tables"), Some(20));
        assert_eq!(start.heap_used, 68_336);
        assert_eq!(start.mm.len(), 9);
        assert!(start.drift_from(&start).is_empty());
        let now = Counters::parse(&MEM.replace("tables=20", "tables=21")).unwrap();
        assert_eq!(
            now.drift_from(&start),
            vec!["vmemmap.tables: start 20 now 21"]
        );
        let heap_only = Counters::parse(&MEM.replace("used=68336", "used=70000")).unwrap();
        assert!(heap_only.drift_from(&start).is_empty());
        assert!(Counters::parse("mem.mm state=down\nmem.heap used=1").is_err());
        assert!(start.line().ends_with("vmemmap.tables=20 heap.used=68336"));
    }

    #[test]
    fn heap_may_settle_but_not_climb() {
        let mut w = HeapWatch::new(1000);
        for (cycle, used) in [1000, 1200, 1200, 1100, 1300, 1300, 1300]
            .into_iter()
            .enumerate()
        {
            w.check(cycle as u32 + 1, used).unwrap();
        }
        assert_eq!(
            w.describe(1300),
            "heap.used=1300(start 1000, 2 new highs, the last in cycle 5)"
        );
        assert_eq!(HeapWatch::new(7).describe(7), "heap.used=7");
        assert!(w.check(8, 1000 + HEAP_SLACK + 1).is_err());
        let mut w = HeapWatch::new(1000);
        let climbing: Vec<_> = (1..=HeapWatch::MAX_RISING)
            .map(|i| w.check(i, 1000 + 16 * u64::from(i)))
            .collect();
        assert!(climbing[..climbing.len() - 1].iter().all(Result::is_ok));
        assert!(climbing.last().unwrap().is_err());
        // A leak every other cycle never rises twice in a row, but too often.
        let mut w = HeapWatch::new(1000);
        let verdicts: Vec<bool> = (1..=2 * HeapWatch::MAX_RISES + 2)
            .map(|i| w.check(i, 1000 + 8 * u64::from(i / 2)).is_ok())
            .collect();
        assert!(verdicts[..verdicts.len() - 2].iter().all(|&ok| ok));
        assert!(!verdicts.last().unwrap());
    }

    const HOTPLUG: &str = "hotplug\n\
        hotplug.range range=0x180000000-0x1a0000000 blocks=4 memmap=altmap altmap.alloc=2048 altmap.align=0 online.pages=129024 offline.pages=0 state=online via=dimm slot=0\n\
        hotplug.range range=0x100000000-0x108000000 blocks=1 memmap=ram altmap.alloc=0 altmap.align=0 online.pages=32768 offline.pages=0 state=online via=virtio-mem device=0\n\
        hotplug.range range=0x108000000-0x110000000 blocks=1 memmap=ram altmap.alloc=0 altmap.align=0 online.pages=1536 offline.pages=31232 state=online via=virtio-mem device=0\n\
        hotplug.summary ranges=3 sources=2 memmap_on_memory=Enabled block.bytes=0x8000000\n\
        hotplug.source name=acpi-mhpd base=0xcf00 slots=4 scans=3 inserts=1 removes=0 ejects=0 refusals=0 notify=sci\n\
        hotplug.slot source=acpi-mhpd slot=0 range=0x180000000-0x1a0000000 node=0 state=online\n\
        virtio-mem dev=0 name=virtio-mem-pci.0 addr=0x100000000 region=0x80000000 usable=0x10000000 block=0x200000 plugged=0x8600000 requested=0x8600000 kernel=0x8600000 units=2 stranded=0 state=ok\n\
        virtio-mem.unit dev=0 range=0x100000000-0x108000000 plugged=0x8000000 steps=64/64 busy=0 state=Live\n\
        virtio-mem.unit dev=0 range=0x108000000-0x110000000 plugged=0x600000 steps=3/64 busy=0 state=Live\n";

    fn qemu_json(dimm_addr: u64, vmem_size: u64) -> Value {
        json!([
            {"type": "virtio-mem", "data": {"id": "vm0", "memaddr": 0x1_0000_0000u64,
             "size": vmem_size, "requested-size": vmem_size, "max-size": 0x8000_0000u64,
             "block-size": 0x20_0000, "node": 0, "memdev": "/objects/vmem0"}},
            {"type": "dimm", "data": {"id": "d0", "addr": dimm_addr, "size": 0x2000_0000,
             "slot": 0, "node": 0, "memdev": "/objects/m0", "hotplugged": true, "hotpluggable": true}}
        ])
    }

    #[test]
    fn views_agree_and_every_difference_is_named() {
        let kernel = KernelView::parse(HOTPLUG).unwrap();
        assert_eq!(kernel.ranges.len(), 3);
        assert_eq!(kernel.vmem[0].units.len(), 2);
        assert_eq!(kernel.vmem_range_bytes(0), 0x860_0000);
        assert_eq!(kernel.lines.len(), 9);
        let qemu = QemuView::parse(qemu_json(0x1_8000_0000, 0x860_0000)).unwrap();
        assert_eq!(compare_views(&kernel, &qemu), Vec::<String>::new());

        let moved = QemuView::parse(qemu_json(0x1_a000_0000, 0x860_0000)).unwrap();
        let diffs = compare_views(&kernel, &moved);
        assert_eq!(diffs.len(), 1, "{diffs:?}");
        assert!(diffs[0].starts_with("pc-dimms"), "{diffs:?}");

        let bigger = QemuView::parse(qemu_json(0x1_8000_0000, 0x880_0000)).unwrap();
        let diffs = compare_views(&kernel, &bigger);
        // config plugged, driver count, units, ranges and requested all differ.
        assert_eq!(diffs.len(), 5, "{diffs:?}");

        let empty_kernel = KernelView::parse(
            "hotplug.summary ranges=0 sources=1 memmap_on_memory=Enabled\n\
             virtio-mem dev=0 name=x addr=0x100000000 region=0x80000000 usable=0x0 block=0x200000 plugged=0x0 requested=0x0 kernel=0x0 units=0 stranded=0 state=ok\n",
        )
        .unwrap();
        let empty_qemu = json!([{"type": "virtio-mem", "data": {"id": "vm0",
            "memaddr": 0x1_0000_0000u64, "size": 0, "requested-size": 0,
            "max-size": 0x8000_0000u64, "block-size": 0x20_0000}}]);
        let empty_qemu = QemuView::parse(empty_qemu).unwrap();
        assert!(compare_views(&empty_kernel, &empty_qemu).is_empty());
        assert!(!compare_views(&kernel, &empty_qemu).is_empty());
        assert!(KernelView::parse("nothing").is_err());
    }

    #[test]
    fn records_alarms_and_net_bytes() {
        let r = Record::parse("hotplug: online range=0x40000000-0x50000000 pages=65536 free=2")
            .unwrap();
        assert_eq!(
            (r.kind.as_str(), r.start, r.end, r.pages),
            ("online", 0x4000_0000, 0x5000_0000, Some(65536))
        );
        assert!(Record::parse("hotplug.range range=0x0-0x1").is_none());
        // A sub-block part taken offline, then the emptied block removed (its offline
        // record counts nothing more).
        let part =
            Record::parse("hotplug: offline range=0x48000000-0x50000000 pages=32768").unwrap();
        let empty = Record::parse("hotplug: offline range=0x40000000-0x50000000 pages=0").unwrap();
        let gone =
            Record::parse("hotplug: remove range=0x40000000-0x50000000 tables.freed=0").unwrap();
        let outside =
            Record::parse("hotplug: online range=0x90000000-0x98000000 pages=32768").unwrap();
        let window = (0x4000_0000, 0xc000_0000);
        assert_eq!(
            net_bytes(&[r.clone(), part, empty, gone], window),
            0x800_0000
        );
        assert_eq!(
            net_bytes(&[r, outside], (0x4000_0000, 0x5000_0000)),
            0x1000_0000
        );
        assert!(is_alarm(
            "hotmem> hotplug: refuse op=remove range=0x1-0x2 reason=busy"
        ));
        assert!(is_alarm(
            "[    3.100000] WARN  virtio::mem: virtio-mem: stop dev=0 op=shrink"
        ));
        assert!(is_alarm("[    3.100000] ERROR kernel: something"));
        assert!(is_alarm("panic: panicked at x"));
        assert!(!is_alarm("hotplug: online range=0x0-0x200000 pages=1"));
        assert!(!is_alarm("hotplug.source name=acpi-mhpd refusals=0"));
    }
}
