//! The Linux side of `cargo xtask bench --vs-linux`: the stock Debian guest of `cargo xtask
//! linux`, booted in the very machine our hot-add latency is measured in
//! ([`qemu::bench::hotplug::hotplug_profile`]), takes the same QMP steps — pc-dimm at the
//! same block-aligned address, virtio-mem `vm0` resized — for 128 MiB and 1 GiB, each
//! added and removed `runs` times, timed the same way: host clock from the QMP command's
//! return to the console line that completes the size (see [`MEASURED`]).
//!
//! A source whose driver the guest's kernel lacks (its `config-<version>` says so) is not
//! run; the document says why, and quotes a figure measured elsewhere where one is known
//! ([`QUOTES`], labelled as not measured in this run).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use qemu::arch::BootPath;
use qemu::bench::hotplug::{DIMM_ALIGN, hotplug_profile, vm0};
use qemu::bench::spread;
use qemu::hotplug;
use qemu::profile::{GIB, MIB};
use qemu::{Arch, Qmp};
use serde_json::{Value, json};

use crate::linux::guest::LinuxGuest;
use crate::linux::kit::{self, Kit};
use crate::linux::online::OnlineWatch;

/// The sizes both sides are compared at.
pub const SIZES: [u64; 2] = [128 * MIB, GIB];
/// How long a hot-add may take to be online, and a removal to complete.
const ONLINE: Duration = Duration::from_secs(120);
const REMOVE: Duration = Duration::from_secs(120);

/// What the Linux figure is, word for word as the document and the table say it.
pub const MEASURED: &str = "host clock from the QMP command's return to the console line \
    that reports the last memory block of the size online. The guest boots with \
    memhp_default_state=online_movable, so its kernel onlines each new block itself, in \
    the hot-add path, to ZONE_MOVABLE (which lets the DIMM be ejected and virtio-mem \
    unplug again); the initramfs's netlink listener (busybox uevent, no udev) prints the \
    block's `online` uevent (or its `add` uevent when the block already reads online), one \
    busybox sh run after the block went online. The console is drained until quiet for \
    one second before each step";

/// The guest's command line for the benchmark: its kernel onlines hot-added blocks.
const APPEND: &str = "memhp_default_state=online_movable";
/// How long the console must be quiet before a timed step.
const QUIET: Duration = Duration::from_secs(1);

/// A figure measured outside this benchmark, quoted where the guest cannot measure it.
pub struct Quote {
    pub arch: Arch,
    pub source: &'static str,
    pub size: u64,
    pub ms: f64,
    pub kernel: &'static str,
    pub date: &'static str,
}

pub const QUOTES: [Quote; 1] = [Quote {
    arch: Arch::S390x,
    source: "virtio-mem",
    size: GIB,
    ms: 939.0,
    kernel: "a Linux 7.2 guest with an out-of-tree virtio_mem.ko, on this QEMU",
    date: "2026-11-25",
}];

/// The hot-add sources of `arch` (as our benchmark names them) and the kernel option a
/// Linux guest needs for each.
fn sources(arch: Arch) -> &'static [(&'static str, &'static str)] {
    match arch {
        Arch::S390x => &[("virtio-mem", "CONFIG_VIRTIO_MEM")],
        Arch::X86_64 | Arch::Aarch64 => &[
            ("pc-dimm", "CONFIG_ACPI_HOTPLUG_MEMORY"),
            ("virtio-mem", "CONFIG_VIRTIO_MEM"),
        ],
    }
}

/// `y` or `m` for `symbol` in a kernel `.config` text; `None` when it is not set or
/// absent (its dependencies unmet).
pub fn config_value<'a>(config: &'a str, symbol: &str) -> Option<&'a str> {
    config.lines().find_map(|line| {
        let value = line.strip_prefix(symbol)?.strip_prefix('=')?;
        matches!(value, "y" | "m").then_some(value)
    })
}

/// Measures the Linux side on `arch`: `{kernel, measured, runs, block_size, auto_online,
/// hotplug: {source: rows}, absent: {source: why}, quoted: {source: rows}}`, rows in the
/// shape of our `hotplug` rows (`size`, `median`, `min`, `max`, `runs`; and `guest_ms`,
/// the guest's own first-add-to-online span).
pub fn measure(arch: Arch, runs: usize) -> Result<Value> {
    let kit = kit::prepare(arch)?;
    let config_name = format!("config-{}", kit.version);
    let config_path = kit.kernel.with_file_name(&config_name);
    let config = std::fs::read_to_string(&config_path)
        .with_context(|| format!("reading {}", config_path.display()))?;
    let mut absent = serde_json::Map::new();
    let mut quoted = serde_json::Map::new();
    let mut present = Vec::new();
    for &(source, symbol) in sources(arch) {
        if config_value(&config, symbol).is_some() {
            present.push(source);
            continue;
        }
        absent.insert(
            source.into(),
            format!("no {source} driver: {symbol} is not set in Debian's {config_name}").into(),
        );
        let quotes: Vec<Value> = QUOTES
            .iter()
            .filter(|q| q.arch == arch && q.source == source)
            .map(|q| {
                json!({"size": q.size, "ms": q.ms, "kernel": q.kernel, "date": q.date,
                            "measured_in_this_run": false})
            })
            .collect();
        if !quotes.is_empty() {
            quoted.insert(source.into(), Value::Array(quotes));
        }
    }
    let mut doc = json!({
        "kernel": kit.version,
        "measured": MEASURED,
        "runs": runs,
        "hotplug": {},
        "absent": absent,
        "quoted": quoted,
    });
    if !present.is_empty() {
        run_guest(&kit, &present, runs, &mut doc)?;
    }
    Ok(doc)
}

/// Boots the guest in the benchmark's machine and measures every `present` source.
fn run_guest(kit: &Kit, present: &[&str], runs: usize, doc: &mut Value) -> Result<()> {
    // The boot path is ours only: Linux boots through the firmware (x86_64, aarch64) or IPL.
    let profile = hotplug_profile(kit.arch, BootPath::Direct);
    let mut guest = LinuxGuest::boot(kit, &profile, Some(APPEND))?;
    let records = guest.dump()?;
    let block = records
        .block_size()
        .context("the guest printed no memory block size")?;
    let auto_online = records
        .of("linux.block")
        .next()
        .and_then(|r| r.get("auto_online"))
        .unwrap_or("?")
        .to_string();
    doc["block_size"] = json!(block);
    doc["auto_online"] = json!(auto_online);
    let mut qmp = guest.qmp()?;
    for &source in present {
        let once: LinuxOnce = match source {
            "pc-dimm" => dimm_once,
            _ => vmem_once,
        };
        doc["hotplug"][source] = per_size(&mut guest, &mut qmp, block, runs, once);
    }
    drop(qmp);
    guest.poweroff()
}

/// One Linux hot-add: host latency and the guest's own span, if it printed both ends.
struct Sample {
    ms: f64,
    guest_ms: Option<u64>,
}

type LinuxOnce = fn(&mut LinuxGuest, &mut Qmp, u64, u64, usize) -> Result<Sample>;

fn per_size(
    guest: &mut LinuxGuest,
    qmp: &mut Qmp,
    block: u64,
    runs: usize,
    once: LinuxOnce,
) -> Value {
    let mut rows = Vec::new();
    for size in SIZES {
        let mut samples = Vec::new();
        for run in 0..runs {
            match once(guest, qmp, block, size, run) {
                Ok(sample) => samples.push(sample),
                Err(e) => return json!({ "error": format!("{e:#}"), "done": rows }),
            }
        }
        let latencies: Vec<f64> = samples.iter().map(|s| s.ms).collect();
        let spans: Vec<f64> = samples
            .iter()
            .filter_map(|s| s.guest_ms)
            .map(|v| v as f64)
            .collect();
        let mut row = spread(&latencies);
        row["size"] = json!(size);
        if !spans.is_empty() {
            row["guest_ms"] = spread(&spans)["median"].clone();
            row["guest_runs"] = json!(spans);
        }
        rows.push(row);
    }
    Value::Array(rows)
}

fn dimm_once(
    guest: &mut LinuxGuest,
    qmp: &mut Qmp,
    block: u64,
    size: u64,
    run: usize,
) -> Result<Sample> {
    let id = format!("ldimm{}x{run}", size >> 20);
    let memdev = format!("m{id}");
    hotplug::add_ram_backend(qmp, &memdev, size)?;
    let addr = hotplug::aligned_dimm_addr(qmp, DIMM_ALIGN)?
        .context("no memory device to place the DIMM after")?;
    guest.settle(QUIET);
    hotplug::add_pc_dimm_at(qmp, &id, &memdev, Some(addr))?;
    let returned = Instant::now();
    let mut watch = OnlineWatch::new(addr..addr + size, size, block);
    let online = guest.watch_online(&mut watch, ONLINE)?;
    let ms = online.duration_since(returned).as_secs_f64() * 1000.0;
    if let Err(e) = hotplug::delete_device(qmp, &id, REMOVE) {
        let log = guest.dmesg_lines("emory").unwrap_or_default();
        let tail = log[log.len().saturating_sub(3)..].join(" / ");
        return Err(e.context(format!("Linux did not give back {id} (dmesg: {tail})")));
    }
    qmp.execute("object-del", json!({ "id": memdev }))?;
    Ok(Sample {
        ms,
        guest_ms: watch.guest_span_ms(),
    })
}

fn vmem_once(
    guest: &mut LinuxGuest,
    qmp: &mut Qmp,
    block: u64,
    size: u64,
    _run: usize,
) -> Result<Sample> {
    let dev = vm0(qmp)?;
    ensure!(dev.size == 0, "vm0 still has {:#x} bytes plugged", dev.size);
    let region = dev.addr..dev.addr + dev.max_size.context("vm0 without max-size")?;
    guest.settle(QUIET);
    hotplug::set_requested_size(qmp, "vm0", size)?;
    let returned = Instant::now();
    let mut watch = OnlineWatch::new(region, size, block);
    let online = guest.watch_online(&mut watch, ONLINE)?;
    let ms = online.duration_since(returned).as_secs_f64() * 1000.0;
    hotplug::set_requested_size(qmp, "vm0", 0)?;
    hotplug::wait_plugged_size(qmp, "vm0", 0, REMOVE)
        .context("Linux did not unplug vm0's memory")?;
    Ok(Sample {
        ms,
        guest_ms: watch.guest_span_ms(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_values_are_y_or_m_only() {
        let config = "CONFIG_VIRTIO_MEM=m\n# CONFIG_ACPI_HOTPLUG_MEMORY is not set\n\
                      CONFIG_MEMORY_HOTPLUG=y\nCONFIG_VIRTIO_MEM_EXTRA=y\n";
        assert_eq!(config_value(config, "CONFIG_VIRTIO_MEM"), Some("m"));
        assert_eq!(config_value(config, "CONFIG_MEMORY_HOTPLUG"), Some("y"));
        assert_eq!(config_value(config, "CONFIG_ACPI_HOTPLUG_MEMORY"), None);
        assert_eq!(
            config_value(config, "CONFIG_MEMORY"),
            None,
            "a prefix is not a symbol"
        );
        assert_eq!(config_value("", "CONFIG_VIRTIO_MEM"), None);
    }

    #[test]
    fn every_quote_is_for_a_source_its_arch_has() {
        for q in &QUOTES {
            assert!(sources(q.arch).iter().any(|(s, _)| *s == q.source));
            assert!(SIZES.contains(&q.size));
        }
    }
}
