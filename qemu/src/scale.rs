//! The large-size hot-add benchmark (`cargo xtask bench`, issue 18): a pc-dimm per size
//! (x86_64, aarch64) and a virtio-mem device resized to each size (all three arches), on
//! `reserve=off` backends, so the host only backs the memmap the guest writes (16 MiB per
//! GiB). For each size: from the QMP command's return to the last `hotplug: online`
//! record, the same for the removal, the kernel heap in use with the memory online, and
//! whether every `mem` counter came back afterwards (free pages balanced against the
//! pages the heap took from the buddy allocator). Time per GiB across sizes shows whether
//! the add stays linear.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};

use crate::accel::{self, AccelChoice};
use crate::arch::BootPath;
use crate::profile::{GIB, MIB, Memory};
use crate::{Arch, BootImage, Machine, Profile, RunOptions};

const PROMPT: &str = "hotmem> ";
/// From one record to the next during a large add or remove.
const RECORD_GAP: Duration = Duration::from_secs(120);

/// Sizes of the full run and of `--quick`.
pub fn sizes(quick: bool) -> &'static [u64] {
    if quick {
        &[GIB, 8 * GIB]
    } else {
        &[GIB, 4 * GIB, 16 * GIB, 64 * GIB, 256 * GIB]
    }
}

/// Runs every source of `arch` over `sizes` on machines booted by `boot`; a source that
/// fails is reported in the document (`error`) instead of stopping the benchmark.
pub fn collect(image: &BootImage, sizes: &[u64], boot: BootPath) -> Result<Value> {
    let arch = image.arch;
    let largest = sizes.iter().copied().max().context("no sizes")?;
    let mut out = serde_json::Map::new();
    if arch != Arch::S390x {
        out.insert(
            "pc-dimm".into(),
            source(image, largest, sizes, Source::Dimm, boot).unwrap_or_else(error),
        );
    }
    out.insert(
        "virtio-mem".into(),
        source(image, largest, sizes, Source::VirtioMem, boot).unwrap_or_else(error),
    );
    Ok(Value::Object(out))
}

fn error(e: anyhow::Error) -> Value {
    json!({ "error": format!("{e:#}") })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    Dimm,
    VirtioMem,
}

/// What `mem` says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Figures {
    /// Free pages plus the pages the heap holds from the buddy allocator.
    free_and_heap: u64,
    sections: u64,
    tables: u64,
    heap_used: u64,
}

fn figures(m: &mut Machine) -> Result<Figures> {
    m.send_line("cmdline")?;
    m.expect("cmdline: ", RECORD_GAP)?;
    m.expect(PROMPT, RECORD_GAP)?;
    let text = m.run_command("mem", PROMPT, RECORD_GAP)?;
    let field = |prefix: &str, key: &str| -> Result<u64> {
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .with_context(|| format!("no {prefix} in {text}"))?;
        let value = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
            .with_context(|| format!("no {key} in {line}"))?;
        Ok(value.parse()?)
    };
    Ok(Figures {
        free_and_heap: field("mem.mm ", "free")? + field("mem.heap ", "buddy.pages")?,
        sections: field("mem.mm ", "sections")?,
        tables: field("mem.mm ", "vmemmap.tables")?,
        heap_used: field("mem.heap ", "used")?,
    })
}

/// Waits for records starting with `prefix` whose ranges add up to `bytes`; returns the
/// sum of their `us.total=` fields (the kernel's own time for them), in milliseconds.
fn await_bytes(m: &mut Machine, prefix: &str, bytes: u64) -> Result<f64> {
    let (mut seen, mut us) = (0, 0);
    while seen < bytes {
        m.expect(prefix, RECORD_GAP)?;
        let line = m.expect("\n", Duration::from_secs(5))?;
        let field = |key: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
        };
        let range = field("range").context("record without range")?;
        let (a, b) = range.split_once('-').context("range")?;
        let parse = |t: &str| u64::from_str_radix(t.trim_start_matches("0x"), 16);
        seen += parse(b)? - parse(a)?;
        us += field("us.total")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    Ok(us as f64 / 1000.0)
}

fn source(
    image: &BootImage,
    largest: u64,
    sizes: &[u64],
    kind: Source,
    boot: BootPath,
) -> Result<Value> {
    let arch = image.arch;
    let base_ram = match arch {
        Arch::S390x => 512 * MIB,
        Arch::X86_64 | Arch::Aarch64 => GIB,
    };
    // virtio-mem (sub-block mode, as Linux) keeps the memmap in boot RAM: 16 MiB per GiB.
    let ram = match kind {
        Source::Dimm => base_ram,
        Source::VirtioMem => base_ram + largest / 64,
    };
    let mut memory = Memory::ram(ram).with_maxmem(ram + largest);
    if kind == Source::Dimm {
        memory = memory.with_slots(2);
    }
    let mut profile = Profile::new(arch).with_memory(memory).with_boot(boot);
    if kind == Source::VirtioMem {
        profile = profile
            .with_object(format!(
                "memory-backend-ram,id=vmem0,size={largest},reserve=off"
            ))
            .with_device(format!(
                "{},id=vm0,memdev=vmem0,requested-size=0",
                crate::hotplug::virtio_mem_driver(arch)
            ));
    }
    let mut opts = RunOptions::new(image.clone());
    opts.accel = accel::resolve(AccelChoice::Auto, &opts.image)?;
    opts.timeout = Duration::from_secs(3600);
    opts.qmp = Some(crate::machine::temp_qmp_path(&format!(
        "scale-{}",
        arch.name()
    )));
    let mut m = Machine::spawn(&profile, &opts)?;
    m.expect(PROMPT, Duration::from_secs(180))?;
    let mut qmp = m.qmp()?;
    qmp.set_command_timeout(RECORD_GAP);
    let mut rows = Vec::new();
    for (i, &size) in sizes.iter().enumerate() {
        let before = figures(&mut m)?;
        let id = format!("big{i}");
        let (add_ms, kernel_ms) = match kind {
            Source::Dimm => {
                let args = json!({"qom-type": "memory-backend-ram", "id": format!("m{id}"),
                    "size": size, "reserve": false});
                qmp.execute("object-add", args)?;
                crate::hotplug::add_pc_dimm(&mut qmp, &id, &format!("m{id}"))?;
                let t0 = Instant::now();
                let kernel_ms = await_bytes(&mut m, "hotplug: online ", size)?;
                (t0.elapsed(), kernel_ms)
            }
            Source::VirtioMem => {
                crate::hotplug::set_requested_size(&mut qmp, "vm0", size)?;
                let t0 = Instant::now();
                let kernel_ms = await_bytes(&mut m, "hotplug: online ", size)?;
                (t0.elapsed(), kernel_ms)
            }
        };
        let online = figures(&mut m)?;
        let t0 = Instant::now();
        match kind {
            Source::Dimm => {
                qmp.execute("device_del", json!({"id": id}))?;
                await_bytes(&mut m, "hotplug: remove ", size)?;
            }
            Source::VirtioMem => {
                crate::hotplug::set_requested_size(&mut qmp, "vm0", 0)?;
                await_bytes(&mut m, "hotplug: remove ", size)?;
            }
        }
        let remove_ms = t0.elapsed();
        if kind == Source::Dimm {
            qmp.wait_event_where("DEVICE_DELETED", RECORD_GAP, |d| d["device"] == id)?;
            qmp.execute("object-del", json!({"id": format!("m{id}")}))?;
        }
        let after = figures(&mut m)?;
        let restored = (after.free_and_heap, after.sections, after.tables)
            == (before.free_and_heap, before.sections, before.tables);
        let gib = size as f64 / GIB as f64;
        rows.push(json!({
            "size": size,
            "add_ms": add_ms.as_secs_f64() * 1000.0,
            "add_ms_per_gib": add_ms.as_secs_f64() * 1000.0 / gib,
            "kernel_ms": kernel_ms,
            "kernel_ms_per_gib": kernel_ms / gib,
            "remove_ms": remove_ms.as_secs_f64() * 1000.0,
            "heap_used": online.heap_used,
            "restored": restored,
        }));
    }
    m.send_line("poweroff")?;
    let _ = m.wait_exit(Duration::from_secs(30));
    ensure!(!rows.is_empty(), "no sizes measured");
    Ok(Value::Array(rows))
}

/// Prints one table per source: size, add time (QMP return to the last online record),
/// time per GiB (and against the smallest size), the kernel's own time per GiB (the sum
/// of the online records' `us=`, and against the smallest size), remove time, heap in
/// use with the memory online, counters restored.
pub fn print(doc: &Value) {
    let Some(sources) = doc["scale"].as_object() else {
        return;
    };
    for (source, rows) in sources {
        let Some(rows) = rows.as_array() else {
            println!(
                "scale {source}: error: {}",
                rows["error"].as_str().unwrap_or("?")
            );
            continue;
        };
        println!(
            "scale {source:<10} {:>7} {:>10} {:>9} {:>8} {:>12} {:>8} {:>10} {:>10} {:>8}",
            "size",
            "add",
            "ms/GiB",
            "vs 1st",
            "kernel/GiB",
            "vs 1st",
            "remove",
            "heap.used",
            "restored"
        );
        let first = rows.first().and_then(|r| r["add_ms_per_gib"].as_f64());
        let first_kernel = rows.first().and_then(|r| r["kernel_ms_per_gib"].as_f64());
        for r in rows {
            let per = r["add_ms_per_gib"].as_f64().unwrap_or(0.0);
            let kernel = r["kernel_ms_per_gib"].as_f64().unwrap_or(0.0);
            println!(
                "scale {source:<10} {:>6}G {:>8.0}ms {:>9.1} {:>7.0}% {:>10.1}ms {:>7.0}% {:>8.0}ms {:>10} {:>8}",
                r["size"].as_u64().unwrap_or(0) >> 30,
                r["add_ms"].as_f64().unwrap_or(0.0),
                per,
                first.map_or(0.0, |f| 100.0 * per / f),
                kernel,
                first_kernel.map_or(0.0, |f| 100.0 * kernel / f),
                r["remove_ms"].as_f64().unwrap_or(0.0),
                r["heap_used"].as_u64().unwrap_or(0),
                if r["restored"].as_bool() == Some(true) {
                    "yes"
                } else {
                    "NO"
                }
            );
        }
    }
}
