//! The figures of `cargo xtask compare`, read from both sides' records, and the rules that
//! say which differences are documented (each rule's text is the reason given in
//! docs/linux-compare.md).

use std::collections::HashMap;
use std::fmt::Write as _;

use qemu::Arch;
use qemu::hotplug::MemoryDevice;

use crate::linux::guest::{Record, Records};

/// One cold-plugged NVDIMM of the scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NvdimmSpec {
    /// Backend size; the guest sees it less the label area.
    pub backend: u64,
    /// With a 128 KiB label area (namespace labels on Linux).
    pub label: bool,
}

/// What `compare` runs on both sides.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub arch: Arch,
    pub nvdimms: Vec<NvdimmSpec>,
    pub dimms: Vec<u64>,
    pub vmem: Option<u64>,
}

impl Scenario {
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self
            .nvdimms
            .iter()
            .map(|n| {
                format!(
                    "nvdimm {}{}",
                    crate::compare::mib(n.backend),
                    if n.label { ":label" } else { "" }
                )
            })
            .collect();
        parts.extend(
            self.dimms
                .iter()
                .map(|d| format!("dimm {}", crate::compare::mib(*d))),
        );
        if let Some(v) = self.vmem {
            parts.push(format!("virtio-mem {}", crate::compare::mib(v)));
        }
        format!("{} [{}]", self.arch, parts.join(", "))
    }
}

/// The Linux run's records and QEMU's placements.
pub struct LinuxSide {
    /// Records printed while booting (modules, fsdax, vmstat.boot).
    pub boot: Records,
    /// The dump after the NVDIMMs were converted.
    pub after_nvdimms: Records,
    /// The dump at the end.
    pub end: Records,
    pub nvdimms: Vec<MemoryDevice>,
    pub dimms: Vec<MemoryDevice>,
    pub vmem_plugged: Option<u64>,
    /// Kernel log lines about DIMMs Linux did not add.
    pub refusals: Vec<String>,
}

/// Our run's console, `altmap` and `hotplug` outputs, and QEMU's placements.
pub struct OurSide {
    pub console: String,
    pub altmaps: String,
    pub hotplug: String,
    pub nvdimms: Vec<MemoryDevice>,
    pub dimms: Vec<MemoryDevice>,
    pub vmem_plugged: Option<u64>,
}

/// One figure on both sides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub figure: String,
    pub linux: String,
    pub ours: String,
    pub verdict: Verdict,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Same,
    Differs,
    Documented(&'static str),
}

/// The comparison.
#[derive(Clone, Debug, Default)]
pub struct Table {
    pub rows: Vec<Row>,
}

/// Why a figure may differ, by rule (docs/linux-compare.md has the same list).
pub const MEMMAP_ON_MEMORY: &str = "memmap_on_memory: hotmem hosts a hot-added block's memmap in the block (Linux with memory_hotplug.memmap_on_memory=1); stock Debian keeps it in RAM";
pub const LABELLED: &str = "namespace labels: Linux sizes a labelled namespace in units of the region's 16 MiB alignment; hotmem has no label support and hosts the whole SPA range";
pub const BLOCK_ALIGNED_ADD: &str = "hot-add granularity: Linux adds memory only in whole, aligned memory blocks (check_hotplug_memory_range: -EINVAL); hotmem adds a 2 MiB-aligned range with its memmap in RAM";
pub const ROLLBACK: &str = "partial-failure rollback: when populating a namespace fails part-way (-ENOMEM), Linux's __add_pages keeps the sections already added and their memmap stays counted; hotmem rolls the whole add back";
pub const VMEMMAP_ACCOUNTING: &str = "memmap accounting: Linux counts the memmap of the ranges it maps (labelled namespaces smaller, see labels)";

impl Table {
    fn push(
        &mut self,
        figure: String,
        linux: Value,
        ours: Value,
        documented: Option<&'static str>,
    ) {
        let verdict = if linux.key == ours.key {
            Verdict::Same
        } else if let Some(reason) = documented {
            Verdict::Documented(reason)
        } else {
            Verdict::Differs
        };
        self.rows.push(Row {
            figure,
            linux: linux.shown,
            ours: ours.shown,
            verdict,
        });
    }

    /// Rows that differ without a documented reason.
    pub fn undocumented(&self) -> usize {
        self.rows
            .iter()
            .filter(|r| r.verdict == Verdict::Differs)
            .count()
    }

    /// The table as text, one `compare.row` line per figure (stable, `|`-separated).
    pub fn render(&self, arch: Arch, version: &str) -> String {
        let mut out = format!("== {arch}: Linux {version} vs hotmem ==\n");
        let w = self
            .rows
            .iter()
            .map(|r| r.figure.len())
            .max()
            .unwrap_or(6)
            .max(6);
        let lw = self
            .rows
            .iter()
            .map(|r| r.linux.len())
            .max()
            .unwrap_or(5)
            .max(5);
        let ow = self
            .rows
            .iter()
            .map(|r| r.ours.len())
            .max()
            .unwrap_or(4)
            .max(4);
        let _ = writeln!(
            out,
            "{:w$}  {:lw$}  {:ow$}  verdict",
            "figure", "Linux", "ours"
        );
        for r in &self.rows {
            let verdict = match &r.verdict {
                Verdict::Same => "same".to_string(),
                Verdict::Differs => "differs".to_string(),
                Verdict::Documented(why) => format!("differs (documented: {why})"),
            };
            let _ = writeln!(
                out,
                "{:w$}  {:lw$}  {:ow$}  {verdict}",
                r.figure, r.linux, r.ours
            );
        }
        let documented = self
            .rows
            .iter()
            .filter(|r| matches!(r.verdict, Verdict::Documented(_)))
            .count();
        let same = self
            .rows
            .iter()
            .filter(|r| r.verdict == Verdict::Same)
            .count();
        let _ = writeln!(
            out,
            "compare: figures={} same={same} documented={documented} undocumented={}",
            self.rows.len(),
            self.undocumented()
        );
        out
    }
}

/// A figure's displayed text and the key equality is judged on.
struct Value {
    shown: String,
    key: String,
}

fn hex(v: u64) -> Value {
    let shown = format!("{v:#x}");
    Value {
        key: shown.clone(),
        shown,
    }
}

fn text(s: &str) -> Value {
    Value {
        shown: s.to_string(),
        key: s.to_string(),
    }
}

/// `refused (ENXIO)`: judged on `refused` only.
fn with_detail(key: &str, detail: &str) -> Value {
    Value {
        shown: format!("{key} ({detail})"),
        key: key.to_string(),
    }
}

fn missing() -> Value {
    text("-")
}

/// `key=value` fields of one of our console lines.
fn fields(line: &str) -> HashMap<&str, &str> {
    line.split_whitespace()
        .filter_map(|w| w.split_once('='))
        .collect()
}

fn num(f: &HashMap<&str, &str>, key: &str) -> Option<u64> {
    let t = f.get(key)?;
    match t.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => t.parse().ok(),
    }
}

fn lines_with<'a>(
    text: &'a str,
    prefix: &'a str,
) -> impl Iterator<Item = HashMap<&'a str, &'a str>> + 'a {
    text.lines()
        .map(str::trim)
        .filter(move |l| l.starts_with(prefix))
        .map(fields)
}

/// Ids of the device regions our kernel added (for `altmap ID`).
pub fn device_region_ids(console: &str) -> Vec<String> {
    lines_with(console, "region: add ")
        .filter(|f| f.get("kind") != Some(&"hotplug-window"))
        .filter_map(|f| f.get("id").map(|s| s.to_string()))
        .collect()
}

/// One NVDIMM as our kernel handled it.
struct OurNvdimm {
    state: Value,
    size: u64,
    data_start: u64,
    data_size: u64,
    end_trunc: u64,
    memmap_pages: u64,
}

fn our_nvdimm(ours: &OurSide, dev: &MemoryDevice) -> OurNvdimm {
    let mut nv = OurNvdimm {
        state: missing(),
        size: dev.size,
        data_start: 0,
        data_size: 0,
        end_trunc: 0,
        memmap_pages: 0,
    };
    let start = format!("range={:#x}-", dev.addr);
    if let Some(line) = ours
        .console
        .lines()
        .find(|l| l.starts_with("region: reject ") && l.contains(&start))
    {
        nv.state = with_detail("refused", fields(line).get("reason").unwrap_or(&"?"));
        return nv;
    }
    let Some(add) = lines_with(&ours.console, "region: add ")
        .find(|f| f.get("source") == Some(&"nfit") && num(f, "start") == Some(dev.addr))
    else {
        return nv;
    };
    let id = add.get("id").copied().unwrap_or_default();
    nv.size = num(&add, "size").unwrap_or(0);
    nv.end_trunc = num(&add, "trunc").unwrap_or(0);
    let id_field = |f: &HashMap<&str, &str>| f.get("id") == Some(&id);
    if let Some(p) = lines_with(&ours.console, "region: populate ").find(id_field)
        && let Some(errno) = p.get("errno")
    {
        nv.state = with_detail("refused", &format!("populate errno={errno}"));
        return nv;
    }
    let verify = lines_with(&ours.console, "verify: ").find(id_field);
    let offset = lines_with(&ours.altmaps, "altmap: ")
        .find(id_field)
        .and_then(|a| num(&a, "offset"));
    if let (Some(v), Some(offset)) = (verify, offset) {
        let dataoff = offset * 4096;
        nv.data_start = dev.addr + dataoff;
        nv.data_size = nv.size - dataoff - nv.end_trunc;
        nv.memmap_pages = num(&v, "memmap.pages").unwrap_or(0);
        nv.state = match v.get("result") {
            Some(&"pass") => text("enabled"),
            other => with_detail("verify-failed", other.unwrap_or(&"?")),
        };
    }
    nv
}

/// One NVDIMM as Linux handled it: the region at its address, its fsdax outcome, pfn.
struct LinuxNvdimm {
    state: Value,
    ns_size: u64,
    data_start: u64,
    data_size: u64,
    end_trunc: u64,
}

fn linux_nvdimm(linux: &LinuxSide, dev: &MemoryDevice) -> LinuxNvdimm {
    let mut nv = LinuxNvdimm {
        state: missing(),
        ns_size: 0,
        data_start: 0,
        data_size: 0,
        end_trunc: 0,
    };
    let dump = &linux.after_nvdimms;
    let Some(region) = dump
        .of("linux.nd.region")
        .find(|r| r.num("resource") == Some(dev.addr))
    else {
        return nv;
    };
    let name = region.get("name").unwrap_or_default();
    let Some(event) = linux
        .boot
        .events("fsdax")
        .find(|e| e.get("region") == Some(name))
    else {
        return nv;
    };
    if event.get("state") != Some("enabled") {
        let detail = format!(
            "{} at {}",
            event.get("error").unwrap_or("?"),
            event.get("step").unwrap_or("?")
        );
        nv.state = with_detail("refused", &detail);
        return nv;
    }
    nv.state = text("enabled");
    let ns = event.get("namespace").unwrap_or_default();
    let pfn = event.get("pfn").unwrap_or_default();
    let find = |kind: &'static str, name: &str| -> Option<Record> {
        dump.of(kind).find(|r| r.get("name") == Some(name)).cloned()
    };
    if let (Some(ns), Some(pfn)) = (find("linux.nd.namespace", ns), find("linux.nd.pfn", pfn)) {
        let ns_start = ns.num("resource").unwrap_or(0);
        nv.ns_size = ns.num("size").unwrap_or(0);
        nv.data_start = pfn.num("resource").unwrap_or(0);
        nv.data_size = pfn.num("size").unwrap_or(0);
        nv.end_trunc = (ns_start + nv.ns_size).saturating_sub(nv.data_start + nv.data_size);
    }
    nv
}

/// Every figure of the scenario.
pub fn build(scenario: &Scenario, linux: &LinuxSide, ours: &OurSide) -> Table {
    let mut t = Table::default();
    let mut linux_memmap = 0u64;
    let mut our_memmap = 0u64;
    let labelled = scenario.nvdimms.iter().any(|n| n.label);
    let mut partial_failure = false;
    for (i, spec) in scenario.nvdimms.iter().enumerate() {
        let (Some(ldev), Some(odev)) = (linux.nvdimms.get(i), ours.nvdimms.get(i)) else {
            continue;
        };
        let name = format!("nvdimm{i}");
        t.push(
            format!("{name} QEMU placement"),
            place(ldev),
            place(odev),
            None,
        );
        let l = linux_nvdimm(linux, ldev);
        partial_failure |= l.state.shown.contains(" at bind");
        let o = our_nvdimm(ours, odev);
        let label = spec.label.then_some(LABELLED);
        t.push(format!("{name} state"), l.state, o.state, None);
        if l.ns_size == 0 || o.data_size == 0 {
            continue;
        }
        t.push(
            format!("{name} namespace size"),
            hex(l.ns_size),
            hex(o.size),
            label,
        );
        t.push(
            format!("{name} data start"),
            hex(l.data_start),
            hex(o.data_start),
            label,
        );
        t.push(
            format!("{name} data offset"),
            hex(l.data_start - ldev.addr),
            hex(o.data_start - odev.addr),
            label,
        );
        t.push(
            format!("{name} data size"),
            hex(l.data_size),
            hex(o.data_size),
            label,
        );
        t.push(
            format!("{name} end_trunc"),
            hex(l.end_trunc),
            hex(o.end_trunc),
            label,
        );
        our_memmap += o.memmap_pages;
    }
    if !scenario.nvdimms.is_empty() {
        let boot = linux
            .boot
            .of("linux.vmstat.boot")
            .next()
            .and_then(|r| r.num("nr_memmap_pages"));
        let after = linux.after_nvdimms.vmstat("nr_memmap_pages");
        if let (Some(boot), Some(after)) = (boot, after) {
            linux_memmap = after.saturating_sub(boot);
        }
        let why = labelled
            .then_some(VMEMMAP_ACCOUNTING)
            .or(partial_failure.then_some(ROLLBACK));
        t.push(
            "nvdimm memmap pages (nr_memmap_pages delta)".into(),
            text(&linux_memmap.to_string()),
            text(&our_memmap.to_string()),
            why,
        );
    }
    dimm_rows(&mut t, scenario, linux, ours);
    if scenario.vmem.is_some() {
        let v = |p: Option<u64>| p.map_or_else(missing, hex);
        t.push(
            "vm0 plugged size".into(),
            v(linux.vmem_plugged),
            v(ours.vmem_plugged),
            None,
        );
    }
    t
}

fn place(dev: &MemoryDevice) -> Value {
    let shown = format!("{:#x}+{}", dev.addr, crate::compare::mib(dev.size));
    Value {
        key: shown.clone(),
        shown,
    }
}

fn dimm_rows(t: &mut Table, scenario: &Scenario, linux: &LinuxSide, ours: &OurSide) {
    if scenario.dimms.is_empty() {
        return;
    }
    let ranges: Vec<HashMap<&str, &str>> = lines_with(&ours.hotplug, "hotplug.range ").collect();
    let our_block = lines_with(&ours.hotplug, "hotplug.summary ")
        .next()
        .and_then(|f| num(&f, "block.bytes"));
    t.push(
        "memory block size".into(),
        linux.end.block_size().map_or_else(missing, hex),
        our_block.map_or_else(missing, hex),
        None,
    );
    let on_memory = linux
        .end
        .of("linux.param")
        .next()
        .and_then(|r| r.get("memmap_on_memory"))
        .unwrap_or("?")
        .to_string();
    for (i, (ldev, odev)) in linux.dimms.iter().zip(&ours.dimms).enumerate() {
        let name = format!("dimm{i}");
        t.push(
            format!("{name} QEMU placement"),
            place(ldev),
            place(odev),
            None,
        );
        let lrange = ldev.addr..ldev.addr + ldev.size;
        let online = linux.end.block_bytes(&lrange, "online");
        let block = linux.end.block_size().unwrap_or(1).max(1);
        let aligned = ldev.addr.is_multiple_of(block) && ldev.size.is_multiple_of(block);
        let lstate = if online == ldev.size {
            text("online")
        } else if online == 0 && !aligned {
            with_detail(
                "refused",
                &format!("not {}-aligned", crate::compare::mib(block)),
            )
        } else {
            with_detail("partly-online", &format!("{online:#x}"))
        };
        let why_state = (!aligned).then_some(BLOCK_ALIGNED_ADD);
        let ours_range = ranges.iter().find(|f| {
            f.get("range").and_then(|r| range_field(r)) == Some((odev.addr, odev.addr + odev.size))
        });
        let ostate = match ours_range {
            Some(f) if f.get("state") == Some(&"online") => text("online"),
            Some(f) => with_detail("not-online", f.get("state").unwrap_or(&"?")),
            None => missing(),
        };
        t.push(format!("{name} range online"), lstate, ostate, why_state);
        let lplace = if matches!(on_memory.as_str(), "Y" | "force") {
            "altmap"
        } else {
            "ram"
        };
        let oplace = ours_range
            .and_then(|f| f.get("memmap").copied())
            .unwrap_or("-");
        t.push(
            format!("{name} memmap placement"),
            with_detail(lplace, &format!("memmap_on_memory={on_memory}")),
            text(oplace),
            Some(if aligned {
                MEMMAP_ON_MEMORY
            } else {
                BLOCK_ALIGNED_ADD
            }),
        );
    }
    let memmap_dimms: u64 = linux
        .end
        .vmstat("nr_memmap_pages")
        .zip(linux.after_nvdimms.vmstat("nr_memmap_pages"))
        .map_or(0, |(end, before)| end.saturating_sub(before));
    // Ours: the altmap pages of a self-hosted range, else its memmap in RAM.
    let our_dimm_memmap: u64 = ranges
        .iter()
        .filter_map(|f| match f.get("memmap") {
            Some(&"altmap") => num(f, "altmap.alloc"),
            _ => range_field(f.get("range")?).map(|(lo, hi)| (hi - lo) / 4096 * 64 / 4096),
        })
        .sum();
    if scenario.vmem.is_none() {
        let block = linux.end.block_size().unwrap_or(1).max(1);
        let refused = linux
            .dimms
            .iter()
            .any(|d| !d.addr.is_multiple_of(block) || !d.size.is_multiple_of(block));
        t.push(
            "dimm memmap pages (nr_memmap_pages delta)".into(),
            text(&memmap_dimms.to_string()),
            text(&our_dimm_memmap.to_string()),
            refused.then_some(BLOCK_ALIGNED_ADD),
        );
    }
}

/// `0x1-0x2` → (1, 2).
fn range_field(text: &str) -> Option<(u64, u64)> {
    let (a, b) = text.split_once('-')?;
    let parse = |t: &str| u64::from_str_radix(t.strip_prefix("0x")?, 16).ok();
    Some((parse(a)?, parse(b)?))
}
