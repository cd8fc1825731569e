//! Benchmark plumbing shared by `cargo xtask bench` and its test: boot times per boot
//! path, the machine each arch runs the in-kernel benchmark on, parsing the kernel's
//! `bench.result` records, the JSON document, and its schema check; the hot-add latency
//! run is [`hotplug`].

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};

use crate::accel::{self, AccelChoice};
use crate::arch::BootPath;
use crate::profile::{GIB, MIB, Memory};
use crate::{Arch, BootImage, Machine, Outcome, Profile, RunOptions};

pub mod hotplug;

pub use hotplug::hotplug_latency;

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

#[cfg(test)]
mod tests;
