//! The two views a soak holds against each other after every step: the kernel's
//! `hotplug` listing ([`KernelView`]) and QEMU's `query-memory-devices` ([`QemuView`]),
//! and every way they disagree ([`compare_views`]).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result};
use serde_json::Value;

use super::PAGE;
use super::records::{fields, number, opt, parse_number, parse_range};
use crate::hotplug::{self, MemoryDevice};

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
