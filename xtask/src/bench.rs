//! `cargo xtask bench [--arch A] [--quick] [--boot limine|direct] [--scale-only]
//! [--vs-linux]`: per arch and boot path, QEMU start to prompt and kernel entry to prompt
//! over several boots, the in-kernel benchmark (phases per region size against the memset
//! roofline) on the direct path, hot-add latency per source, and the large sizes (pc-dimm
//! and virtio-mem from 1 to 256 GiB on `reserve=off` backends, time per GiB;
//! [`qemu::scale`]). `--vs-linux` then takes the same hot-add steps on the stock Linux guest
//! of `cargo xtask linux` in the same machine ([`crate::bench_linux`]; five runs a size on
//! both sides, even with `--quick`) and prints the two side by side
//! ([`crate::bench_vs_table`]). Prints the tables and writes `target/bench/<arch>.json`,
//! `<arch>.svg` (phases) and `<arch>-hotplug.svg` (latency against the roofline, and
//! Linux's line; see [`crate::bench_plot`]); `--scale-only` runs only the large sizes and
//! writes `target/bench/<arch>-scale.json`.

use std::time::Instant;

use anyhow::{Context, Result};
use qemu::Arch;
use qemu::arch::BootPath;
use qemu::bench::{Plan, validate};
use serde_json::Value;

/// Runs a size of the hot-add comparison this many times on each side.
pub const VS_LINUX_RUNS: usize = 5;

pub fn run(
    arch: Option<Arch>,
    quick: bool,
    boot: Option<BootPath>,
    scale_only: bool,
    vs_linux: bool,
) -> Result<()> {
    let root = qemu::cargo::workspace_root();
    let arches: Vec<Arch> = match arch {
        Some(a) => vec![a],
        None => Arch::ALL
            .into_iter()
            .filter(|a| a.is_ported(&root))
            .collect(),
    };
    if let (Some(boot), [arch]) = (boot, arches.as_slice()) {
        arch.ensure_boot(boot)?;
    }
    crate::setup::ensure(&arches)?;
    let out = qemu::cargo::target_dir().join("bench");
    std::fs::create_dir_all(&out)?;
    for arch in arches {
        let started = Instant::now();
        if scale_only {
            let image = qemu::build(arch, true)?;
            let boot = hotplug_boot(arch, boot);
            let doc = serde_json::json!({
                "arch": arch.name(),
                "scale": qemu::scale::collect(&image, qemu::scale::sizes(quick), boot)?,
            });
            let json_path = out.join(format!("{arch}-scale.json"));
            std::fs::write(&json_path, serde_json::to_string_pretty(&doc)?)?;
            println!("== {arch} large hot-adds (booted by {}) ==", boot.name());
            qemu::scale::print(&doc);
            println!(
                "wrote {} ({:.0} s)\n",
                json_path.display(),
                started.elapsed().as_secs_f64()
            );
            continue;
        }
        let doc = bench_arch(arch, quick, boot, vs_linux)?;
        validate(&doc).with_context(|| format!("{arch} benchmark document"))?;
        let json_path = out.join(format!("{arch}.json"));
        std::fs::write(&json_path, serde_json::to_string_pretty(&doc)?)?;
        let svg_path = out.join(format!("{arch}.svg"));
        crate::bench_plot::phases(&doc, &svg_path)?;
        let hotplug_svg = out.join(format!("{arch}-hotplug.svg"));
        crate::bench_plot::hotplug(&doc, &hotplug_svg)?;
        print_table(&doc);
        print_hotplug(&doc);
        qemu::scale::print(&doc);
        if vs_linux {
            println!("{}", crate::bench_vs_table::render(&doc));
        }
        println!(
            "wrote {}, {} and {} ({:.0} s)\n",
            json_path.display(),
            svg_path.display(),
            hotplug_svg.display(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// `boot`: time only that path (where the arch has it) and run the benchmarks on it.
fn bench_arch(arch: Arch, quick: bool, boot: Option<BootPath>, vs_linux: bool) -> Result<Value> {
    let image = qemu::build(arch, true)?;
    let mut plan = Plan::new(arch, quick, if quick { 2 } else { 5 });
    if let Some(boot) = boot.filter(|b| arch.boot_paths().contains(b)) {
        plan.paths = vec![boot];
        plan.bench_boot = boot;
    }
    let mut doc = qemu::bench::collect(image.clone(), &plan)?;
    let hotplug_boot = hotplug_boot(arch, boot);
    let runs = if vs_linux || !quick { VS_LINUX_RUNS } else { 3 };
    doc["hotplug"] = qemu::bench::hotplug_latency(image.clone(), quick, runs, hotplug_boot)?;
    doc["hotplug_boot"] = hotplug_boot.name().into();
    doc["scale"] = qemu::scale::collect(&image, qemu::scale::sizes(quick), hotplug_boot)?;
    if vs_linux {
        // A Linux side that cannot run (no packages, a boot that fails) is recorded, and our
        // figures are still written.
        doc["linux"] = crate::bench_linux::measure(arch, VS_LINUX_RUNS)
            .unwrap_or_else(|e| serde_json::json!({"error": format!("{e:#}"), "runs": 0}));
    }
    Ok(doc)
}

/// The boot path of the hotplug machines: `boot` where the arch has it, else the soak's.
fn hotplug_boot(arch: Arch, boot: Option<BootPath>) -> BootPath {
    boot.filter(|b| arch.boot_paths().contains(b))
        .unwrap_or_else(|| qemu::soak::default_boot(arch))
}

fn print_hotplug(doc: &Value) {
    let Some(sources) = doc["hotplug"].as_object() else {
        return;
    };
    println!(
        "hotplug machine booted by: {}",
        doc["hotplug_boot"].as_str().unwrap_or("?")
    );
    for (source, rows) in sources {
        match rows.as_array() {
            Some(rows) => {
                for r in rows {
                    println!(
                        "hotplug {source:<10} +{:>5}M  QMP return -> online: median {:>8.1} ms (min {:.1}, max {:.1}, {} runs)",
                        r["size"].as_u64().unwrap_or(0) >> 20,
                        r["median"].as_f64().unwrap_or(0.0),
                        r["min"].as_f64().unwrap_or(0.0),
                        r["max"].as_f64().unwrap_or(0.0),
                        r["runs"].as_array().map_or(0, Vec::len)
                    );
                    if let Some(phases) = r["kernel_ms"].as_object() {
                        let text: Vec<String> = phases
                            .iter()
                            .map(|(k, v)| format!("{k} {:.2}", v.as_f64().unwrap_or(0.0)))
                            .collect();
                        println!("{:>29}kernel ms (medians): {}", "", text.join(", "));
                    }
                }
            }
            None => println!(
                "hotplug {source:<10} error: {}",
                rows["error"].as_str().unwrap_or("?")
            ),
        }
    }
}

fn print_table(doc: &Value) {
    let boot = &doc["boot"];
    println!(
        "== {} ({}, QEMU {}, clock {}, {}) ==",
        doc["arch"].as_str().unwrap_or("?"),
        doc["accel"].as_str().unwrap_or("?"),
        doc["qemu"].as_str().unwrap_or("?"),
        doc["clock"].as_str().unwrap_or("?"),
        doc["date"].as_str().unwrap_or("?")
    );
    for (path, times) in boot.as_object().into_iter().flatten() {
        for (name, key) in [
            ("QEMU start to prompt", "qemu_start_to_prompt_ms"),
            ("kernel entry to prompt", "entry_to_prompt_ms"),
        ] {
            let s = &times[key];
            println!(
                "{:<33} median {:>8.1} ms  (min {:.1}, max {:.1}, {} runs)",
                format!("{name} ({path})"),
                s["median"].as_f64().unwrap_or(0.0),
                s["min"].as_f64().unwrap_or(0.0),
                s["max"].as_f64().unwrap_or(0.0),
                s["runs"].as_array().map_or(0, Vec::len)
            );
        }
    }
    println!(
        "in-kernel benchmark booted by: {}",
        doc["bench_boot"].as_str().unwrap_or("?")
    );
    println!(
        "{:>9} {:>11} {:>11} {:>11} {:>11} {:>11} {:>11} {:>11} {:>10} {:>9} {:>7} {:>7}",
        "size",
        "activate",
        "populate",
        "init",
        "verify",
        "memset",
        "cold memset",
        "zero-fill",
        "memmap/s",
        "roofline",
        "tables",
        "leaves"
    );
    for e in doc["sizes"].as_array().into_iter().flatten() {
        let ms = |k: &str| e[k].as_u64().unwrap_or(0) as f64 / 1e6;
        println!(
            "{:>8}M {:>9.3}ms {:>9.3}ms {:>9.3}ms {:>9.3}ms {:>9.3}ms {:>9.3}ms {:>9.3}ms {:>6} MiB {:>8.1}% {:>7} {:>7}",
            e["size"].as_u64().unwrap_or(0) >> 20,
            ms("activate_ns"),
            ms("populate_ns"),
            ms("init_ns"),
            ms("verify_ns"),
            ms("memset_ns"),
            ms("memset_cold_ns"),
            ms("zero_ns"),
            e["memmap_mib_s"].as_u64().unwrap_or(0),
            e["roofline_permille"].as_u64().unwrap_or(0) as f64 / 10.0,
            e["tables"].as_u64().unwrap_or(0),
            e["leaves"].as_u64().unwrap_or(0)
        );
    }
}
