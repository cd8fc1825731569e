//! Hot-add latency of our kernel for `cargo xtask bench`: one machine per arch with room
//! for DIMMs and a cold-plugged virtio-mem device ([`hotplug_profile`], the machine the
//! Linux side of `--vs-linux` boots too), then per source and size, QMP return to the
//! kernel's `hotplug: online` record(s) covering the size, each size added and removed
//! `runs` times.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::{Value, json};

use super::{PROMPT, spread};
use crate::accel::{self, AccelChoice};
use crate::arch::BootPath;
use crate::hotplug::MemoryDevice;
use crate::profile::{GIB, MIB, Memory};
use crate::qmp::Qmp;
use crate::{Arch, BootImage, Machine, Profile, RunOptions};

/// Where the benchmark's DIMMs start: a multiple of this after the last memory device, so
/// a DIMM is whole memory blocks on every arch (Linux's and ours: 128 MiB on x86_64 and
/// aarch64), wherever QEMU put the virtio-mem region.
pub const DIMM_ALIGN: u64 = GIB;

/// The hot-add sizes: 128 MiB and 1 GiB quick, up to 4 GiB full.
pub fn hotplug_sizes(quick: bool) -> &'static [u64] {
    if quick {
        &[128 * MIB, GIB]
    } else {
        &[128 * MIB, 256 * MIB, 512 * MIB, GIB, 2 * GIB, 4 * GIB]
    }
}

/// The machine the hot-add latency is measured in: RAM with DIMM slots (not on s390x) and
/// a 4 GiB virtio-mem device `vm0` with nothing plugged.
pub fn hotplug_profile(arch: Arch, boot: BootPath) -> Profile {
    let memory = match arch {
        Arch::S390x => Memory::ram(512 * MIB).with_maxmem(8 * GIB),
        Arch::X86_64 | Arch::Aarch64 => Memory::ram(GIB).with_slots(8).with_maxmem(16 * GIB),
    };
    let driver = crate::hotplug::virtio_mem_driver(arch);
    Profile::new(arch)
        .with_memory(memory)
        .with_object(format!("memory-backend-ram,id=vmem0,size={}", 4 * GIB))
        .with_device(format!("{driver},id=vm0,memdev=vmem0,requested-size=0"))
        .with_boot(boot)
}

/// QEMU's view of the virtio-mem device `vm0`.
pub fn vm0(qmp: &mut Qmp) -> Result<MemoryDevice> {
    crate::hotplug::query_memory_devices(qmp)?
        .into_iter()
        .find(|d| d.id.as_deref() == Some("vm0"))
        .context("QEMU has no memory device vm0")
}

/// Hot-add latency: from the QMP command's return to the kernel's `hotplug: online`
/// record(s) covering the size, for pc-dimm (x86_64, aarch64; each at [`DIMM_ALIGN`]
/// after the virtio-mem region) and virtio-mem (all three), each size added and removed
/// `runs` times. A source that fails is reported in the document (`error`) instead of
/// stopping the benchmark. The machine boots by `boot` (aarch64 pc-dimm needs firmware's
/// GED, so Limine there).
pub fn hotplug_latency(
    image: BootImage,
    quick: bool,
    runs: usize,
    boot: BootPath,
) -> Result<Value> {
    let arch = image.arch;
    let sizes = hotplug_sizes(quick);
    let profile = hotplug_profile(arch, boot);
    let mut opts = RunOptions::new(image);
    opts.accel = accel::resolve(AccelChoice::Auto, &opts.image)?;
    opts.timeout = Duration::from_secs(1200);
    opts.qmp = Some(crate::machine::temp_qmp_path(&format!(
        "bench-{}",
        arch.name()
    )));
    let mut m = Machine::spawn(&profile, &opts)?;
    m.expect(PROMPT, Duration::from_secs(180))?;
    // One QMP session for the whole run: QEMU hands a new session whatever the last one
    // left unread (an `ACPI_DEVICE_OST` event) before its greeting.
    let mut qmp = m.qmp()?;
    let mut out = serde_json::Map::new();
    if arch != Arch::S390x {
        out.insert(
            "pc-dimm".into(),
            per_size(&mut m, &mut qmp, sizes, runs, dimm_once),
        );
    }
    out.insert(
        "virtio-mem".into(),
        per_size(&mut m, &mut qmp, sizes, runs, vmem_once),
    );
    drop(qmp);
    m.send_line("poweroff")?;
    let _ = m.wait_exit(Duration::from_secs(30));
    Ok(Value::Object(out))
}

/// One hot-add: host latency and the kernel's phase times (the `us.*` fields of its
/// `hotplug: online` records, summed when the size came in several records), with the
/// records themselves.
struct Sample {
    ms: f64,
    phases: BTreeMap<String, f64>,
    records: Vec<String>,
}

type Once = fn(&mut Machine, &mut Qmp, u64, usize) -> Result<Sample>;

fn per_size(m: &mut Machine, qmp: &mut Qmp, sizes: &[u64], runs: usize, once: Once) -> Value {
    let mut rows = Vec::new();
    for &size in sizes {
        let mut samples = Vec::new();
        for run in 0..runs {
            match once(m, qmp, size, run) {
                Ok(sample) => samples.push(sample),
                Err(e) => return json!({ "error": format!("{e:#}"), "done": rows }),
            }
        }
        rows.push(row(size, &samples));
    }
    Value::Array(rows)
}

/// A size's row: the latency spread, the median of each kernel phase (ms) and the
/// records of the median run.
fn row(size: u64, samples: &[Sample]) -> Value {
    let latencies: Vec<f64> = samples.iter().map(|s| s.ms).collect();
    let mut row = spread(&latencies);
    row["size"] = json!(size);
    let mut phases = serde_json::Map::new();
    for key in samples
        .iter()
        .flat_map(|s| s.phases.keys())
        .collect::<Vec<_>>()
    {
        let values: Vec<f64> = samples
            .iter()
            .map(|s| s.phases.get(key).copied().unwrap_or(0.0))
            .collect();
        phases.insert(key.clone(), spread(&values)["median"].clone());
    }
    row["kernel_ms"] = Value::Object(phases);
    let mut by_latency: Vec<&Sample> = samples.iter().collect();
    by_latency.sort_by(|a, b| a.ms.total_cmp(&b.ms));
    if let Some(median) = by_latency.get(by_latency.len() / 2) {
        row["records"] = json!(median.records);
    }
    row
}

/// Waits for kernel records starting with `prefix` whose ranges add up to `bytes`;
/// returns the records.
fn await_records(m: &mut Machine, prefix: &str, bytes: u64) -> Result<Vec<String>> {
    let mut seen = 0;
    let mut lines = Vec::new();
    while seen < bytes {
        m.expect(prefix, Duration::from_secs(120))?;
        let line = m.expect("\n", Duration::from_secs(5)).unwrap_or_default();
        let range = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("range="))
            .context("record without range")?;
        let (a, b) = range.split_once('-').context("range")?;
        let parse = |t: &str| u64::from_str_radix(t.trim_start_matches("0x"), 16);
        seen += parse(b)? - parse(a)?;
        lines.push(format!("{prefix}{}", line.trim_end()));
    }
    Ok(lines)
}

/// The `us.*` fields of `records`, summed per key, in milliseconds.
fn phase_sums(records: &[String]) -> BTreeMap<String, f64> {
    let mut sums = BTreeMap::new();
    for record in records {
        for (key, value) in record.split_whitespace().filter_map(|w| w.split_once('=')) {
            if let (Some(phase), Ok(us)) = (key.strip_prefix("us."), value.parse::<f64>()) {
                *sums.entry(phase.to_string()).or_insert(0.0) += us / 1000.0;
            }
        }
    }
    sums
}

fn dimm_once(m: &mut Machine, qmp: &mut Qmp, size: u64, run: usize) -> Result<Sample> {
    let id = format!("bdimm{}x{run}", size >> 20);
    crate::hotplug::add_ram_backend(qmp, &format!("m{id}"), size)?;
    let addr = crate::hotplug::aligned_dimm_addr(qmp, DIMM_ALIGN)?;
    crate::hotplug::add_pc_dimm_at(qmp, &id, &format!("m{id}"), addr)?;
    let returned = Instant::now();
    let records = await_records(m, "hotplug: online ", size)?;
    let ms = returned.elapsed().as_secs_f64() * 1000.0;
    crate::hotplug::delete_device(qmp, &id, Duration::from_secs(120))?;
    await_records(m, "hotplug: remove ", size)?;
    qmp.execute("object-del", json!({ "id": format!("m{id}") }))?;
    Ok(Sample {
        ms,
        phases: phase_sums(&records),
        records,
    })
}

fn vmem_once(m: &mut Machine, qmp: &mut Qmp, size: u64, _run: usize) -> Result<Sample> {
    crate::hotplug::set_requested_size(qmp, "vm0", size)?;
    let returned = Instant::now();
    let records = await_records(m, "hotplug: online ", size)?;
    let ms = returned.elapsed().as_secs_f64() * 1000.0;
    crate::hotplug::set_requested_size(qmp, "vm0", 0)?;
    await_records(m, "hotplug: remove ", size)?;
    Ok(Sample {
        ms,
        phases: phase_sums(&records),
        records,
    })
}
