//! The figures of `cargo xtask compare`, read from both sides' records, and the rules that
//! say which differences are documented (each rule's text is the reason given in
//! docs/linux-compare.md).
//!
//! Rooms: the table, its rules and [`build`] here; how both sides' text is read
//! (`values`); one NVDIMM as each side handled it (`nvdimm`); the pc-dimm rows (`dimm`).

use std::collections::HashMap;
use std::fmt::Write as _;

use qemu::Arch;
use qemu::hotplug::MemoryDevice;

use crate::linux::guest::{Record, Records};

mod dimm;
mod nvdimm;
mod values;

use dimm::dimm_rows;
use nvdimm::{linux_nvdimm, our_nvdimm};
use values::{Value, hex, lines_with, missing, text};

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

/// Ids of the device regions our kernel added (for `altmap ID`).
pub fn device_region_ids(console: &str) -> Vec<String> {
    lines_with(console, "region: add ")
        .filter(|f| f.get("kind") != Some(&"hotplug-window"))
        .filter_map(|f| f.get("id").map(|s| s.to_string()))
        .collect()
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
