//! Benchmark plumbing shared by `cargo xtask bench` and its test: boot times per boot
//! path, the machine each arch runs the in-kernel benchmark on, parsing the kernel's
//! `bench.result` records, the JSON document, and its schema check.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};

use crate::accel::{self, AccelChoice};
use crate::arch::BootPath;
use crate::profile::{GIB, MIB, Memory};
use crate::qmp::Qmp;
use crate::{Arch, BootImage, Machine, Outcome, Profile, RunOptions};

const PROMPT: &str = "hotmem> ";

/// What to measure: the boot paths timed (each `boot_runs` times, QEMU start to prompt and
/// kernel entry to prompt) and the path the in-kernel benchmark boots.
#[derive(Clone, Debug)]
pub struct Plan {
    pub quick: bool,
    pub boot_runs: usize,
    pub paths: Vec<BootPath>,
    pub bench_boot: BootPath,
}

impl Plan {
    /// Every boot path `arch` has, the benchmark on the direct one.
    pub fn new(arch: Arch, quick: bool, boot_runs: usize) -> Plan {
        Plan {
            quick,
            boot_runs,
            paths: arch.boot_paths().to_vec(),
            bench_boot: BootPath::Direct,
        }
    }
}

/// Boots `image` on every path of `plan` for the start-to-prompt figures, then runs the
/// in-kernel benchmark once; returns the benchmark document (see [`validate`]).
pub fn collect(image: BootImage, plan: &Plan) -> Result<Value> {
    let arch = image.arch;
    let quick = plan.quick;
    let accel = accel::resolve(AccelChoice::Auto, &image)?;
    let mut boot = serde_json::Map::new();
    for &path in &plan.paths {
        let (start_ms, entry_ms) = boot_times(&image, path, accel, plan.boot_runs)?;
        boot.insert(
            path.name().into(),
            json!({
                "qemu_start_to_prompt_ms": spread(&start_ms),
                "entry_to_prompt_ms": spread(&entry_ms),
            }),
        );
    }
    let (profile, append) = bench_machine(arch, quick);
    let profile = profile.with_boot(plan.bench_boot);
    let mut opts = RunOptions::new(image);
    opts.accel = accel;
    opts.append = Some(append);
    opts.timeout = Duration::from_secs(if quick { 240 } else { 900 });
    let mut m = Machine::spawn(&profile, &opts)?;
    let outcome = m.wait_exit(opts.timeout);
    let console = m.console();
    ensure!(
        outcome == Outcome::Pass,
        "{arch} benchmark ended {outcome:?}:\n{console}"
    );
    let start = records(&console, "bench.start ");
    let clock = start
        .first()
        .and_then(|r| r.get("clock"))
        .copied()
        .unwrap_or("?");
    let qemu_version = crate::host::qemu_version(arch)
        .map(|v| v.to_string())
        .unwrap_or_default();
    Ok(json!({
        "arch": arch.name(),
        "date": today(),
        "qemu": qemu_version,
        "accel": format!("{accel:?}").to_lowercase(),
        "clock": clock,
        "mode": if quick { "quick" } else { "full" },
        "boot": boot,
        "bench_boot": plan.bench_boot.name(),
        "sizes": parse_results(&console)?,
    }))
}

/// `runs` boots of `image` by `path` on the default machine: milliseconds from spawning
/// QEMU to the prompt, and the kernel's own entry-to-prompt figure.
fn boot_times(
    image: &BootImage,
    path: BootPath,
    accel: crate::Accel,
    runs: usize,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let (mut start_ms, mut entry_ms) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let mut opts = RunOptions::new(image.clone());
        opts.accel = accel;
        opts.timeout = Duration::from_secs(180);
        let profile = Profile::new(image.arch).with_boot(path);
        let t0 = Instant::now();
        let mut m = Machine::spawn(&profile, &opts)?;
        m.expect(PROMPT, Duration::from_secs(170))?;
        start_ms.push(t0.elapsed().as_secs_f64() * 1000.0);
        let console = m.console();
        let us: f64 = records(&console, "boot: ready ")
            .first()
            .and_then(|r| r.get("entry_to_prompt_us"))
            .context("no boot record")?
            .parse()?;
        entry_ms.push(us / 1000.0);
        m.send_line("poweroff")?;
        let _ = m.wait_exit(Duration::from_secs(20));
    }
    Ok((start_ms, entry_ms))
}

/// Today's date (UTC) from the system clock, as YYYY-MM-DD (civil-from-days).
fn today() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// The phases the kernel times, in record order (nanoseconds).
pub const PHASES: [&str; 7] = [
    "activate_ns",
    "populate_ns",
    "init_ns",
    "verify_ns",
    "memset_ns",
    "memset_cold_ns",
    "zero_ns",
];

/// Machine and kernel command line for the in-kernel benchmark: `mem=512M` hides the rest
/// of RAM, which the benchmark uses as its regions (QEMU backs it lazily).
pub fn bench_machine(arch: Arch, quick: bool) -> (Profile, String) {
    let ram = match (arch, quick) {
        (_, true) => 2 * GIB,
        (Arch::S390x, false) => 4 * GIB + 512 * MIB,
        (Arch::X86_64, false) => 20 * GIB,
        (Arch::Aarch64, false) => 17 * GIB,
    };
    let mode = if quick { "quick" } else { "full" };
    let profile = Profile::new(arch).with_memory(Memory::ram(ram));
    (profile, format!("mem=512M bench={mode}"))
}

/// The `key=value` fields of every line starting with `prefix`.
pub fn records<'a>(console: &'a str, prefix: &str) -> Vec<BTreeMap<&'a str, &'a str>> {
    console
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with(prefix))
        .map(|l| {
            l.split_whitespace()
                .filter_map(|w| w.split_once('='))
                .collect()
        })
        .collect()
}

/// The `bench.result` records as JSON objects (numbers parsed).
pub fn parse_results(console: &str) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for record in records(console, "bench.result ") {
        let mut obj = serde_json::Map::new();
        for (key, value) in record {
            let n: u64 = value
                .parse()
                .with_context(|| format!("bench.result {key}={value}"))?;
            obj.insert(key.to_string(), json!(n));
        }
        out.push(Value::Object(obj));
    }
    ensure!(!out.is_empty(), "no bench.result records in the console");
    Ok(out)
}

/// Median, minimum and maximum of `samples`.
pub fn spread(samples: &[f64]) -> Value {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let median = match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    };
    json!({
        "median": median,
        "min": sorted.first().copied().unwrap_or(0.0),
        "max": sorted.last().copied().unwrap_or(0.0),
        "runs": samples,
    })
}

/// Checks a benchmark document: the fields, and every phase time positive.
pub fn validate(doc: &Value) -> Result<()> {
    for key in ["arch", "date", "qemu", "accel", "clock"] {
        ensure!(doc[key].is_string(), "missing string field {key}");
    }
    let sizes = doc["sizes"].as_array().context("missing sizes")?;
    ensure!(!sizes.is_empty(), "no sizes");
    for entry in sizes {
        let size = entry["size"].as_u64().context("size")?;
        for phase in PHASES {
            match entry[phase].as_u64() {
                Some(ns) if ns > 0 => {}
                other => bail!("size {size}: {phase} = {other:?}, expected a positive time"),
            }
        }
        for key in [
            "memmap_bytes",
            "tables",
            "leaves",
            "memmap_mib_s",
            "roofline_permille",
        ] {
            ensure!(entry[key].is_u64(), "size {size}: missing {key}");
        }
    }
    let paths = doc["boot"].as_object().context("missing boot")?;
    ensure!(!paths.is_empty(), "no boot path timed");
    for (path, times) in paths {
        path.parse::<BootPath>()?;
        for key in ["qemu_start_to_prompt_ms", "entry_to_prompt_ms"] {
            ensure!(
                times[key]["median"].as_f64().is_some_and(|v| v > 0.0),
                "boot.{path}.{key}"
            );
        }
    }
    Ok(())
}

/// Hot-add latency: from the QMP command's return to the kernel's `hotplug: online`
/// record(s) covering the size, for pc-dimm (x86_64, aarch64) and virtio-mem (all three),
/// each size added and removed `runs` times. A source that fails is reported in the
/// document (`error`) instead of stopping the benchmark. The machine boots by `boot`
/// (aarch64 pc-dimm needs firmware's GED, so Limine there).
pub fn hotplug_latency(
    image: BootImage,
    quick: bool,
    runs: usize,
    boot: BootPath,
) -> Result<Value> {
    let arch = image.arch;
    let sizes: &[u64] = if quick {
        &[128 * MIB, GIB]
    } else {
        &[128 * MIB, 256 * MIB, 512 * MIB, GIB, 2 * GIB, 4 * GIB]
    };
    let memory = match arch {
        Arch::S390x => Memory::ram(512 * MIB).with_maxmem(8 * GIB),
        Arch::X86_64 | Arch::Aarch64 => Memory::ram(GIB).with_slots(8).with_maxmem(16 * GIB),
    };
    let driver = crate::hotplug::virtio_mem_driver(arch);
    let profile = Profile::new(arch)
        .with_memory(memory)
        .with_object(format!("memory-backend-ram,id=vmem0,size={}", 4 * GIB))
        .with_device(format!("{driver},id=vm0,memdev=vmem0,requested-size=0"))
        .with_boot(boot);
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
    crate::hotplug::add_pc_dimm(qmp, &id, &format!("m{id}"))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    const CONSOLE: &str = "bench.start arch=s390x clock=stckf\n\
        bench.result size=134217728 activate_ns=10 populate_ns=20 init_ns=30 verify_ns=40 memset_ns=5 memset_cold_ns=50 zero_ns=4 memmap_bytes=2097152 memmap_mib_s=1 roofline_permille=100 tables=1 leaves=512\n\
        bench.done\n";

    #[test]
    fn results_parse_to_numbers() {
        let r = parse_results(CONSOLE).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0]["populate_ns"], 20);
        assert!(parse_results("nothing").is_err());
    }

    #[test]
    fn validate_wants_positive_phases() {
        let times = json!({"qemu_start_to_prompt_ms": spread(&[100.0]), "entry_to_prompt_ms": spread(&[5.0])});
        let mut doc = json!({"arch": "s390x", "date": "d", "qemu": "10", "accel": "tcg", "clock": "stckf",
            "boot": {"direct": times}, "sizes": parse_results(CONSOLE).unwrap()});
        validate(&doc).unwrap();
        doc["boot"]["grub"] = doc["boot"]["direct"].clone();
        assert!(validate(&doc).is_err(), "unknown boot path");
        doc["boot"].as_object_mut().unwrap().remove("grub");
        doc["boot"]["direct"]["entry_to_prompt_ms"]["median"] = json!(0.0);
        assert!(validate(&doc).is_err(), "zero boot time");
        doc["boot"]["direct"]["entry_to_prompt_ms"]["median"] = json!(5.0);
        doc["sizes"][0]["verify_ns"] = json!(0);
        assert!(validate(&doc).is_err());
    }

    #[test]
    fn spread_of_even_and_odd_counts() {
        assert_eq!(spread(&[3.0, 1.0, 2.0])["median"], 2.0);
        assert_eq!(spread(&[4.0, 1.0])["median"], 2.5);
    }
}
