//! The machine under soak: one cycle of hot-adds and hot-removes through QMP, the wait for
//! the kernel's records after each step, the checks of both views and of the counters, and
//! the report when one fails.

use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::{Value, json};

use super::counters::{Counters, HeapWatch};
use super::plan::{CyclePlan, size_text};
use super::records::{Record, is_alarm, net_bytes};
use super::views::{KernelView, QemuView, compare_views};
use super::{COMMAND_TIMEOUT, Drift, PROMPT, SETTLE_TIMEOUT, STEP_TIMEOUT, Stopped, VMEM, drift};
use crate::hotplug;
use crate::qmp::Qmp;
use crate::{Arch, Machine};

/// What a cycle did, as it happened (for the progress line).
pub(super) struct CycleDetail {
    /// `dimm 384M@0x180000000 ...`, `virtio-mem 0->650M->256M(kept 2)->0 units=3`.
    pub(super) parts: Vec<String>,
    pub(super) resizes: u64,
}

/// The machine under soak.
pub(super) struct Soak {
    pub(super) m: Machine,
    pub(super) qmp: Qmp,
    pub(super) arch: Arch,
    pub(super) seed: u64,
    /// This cycle's `hotplug: ...` records, in console order.
    pub(super) records: Vec<Record>,
    /// Alarm lines seen and not yet reported.
    pub(super) alarms: Vec<String>,
    pub(super) start: Option<Counters>,
    pub(super) pause_for_dimms: bool,
    pub(super) large: bool,
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

    pub(super) fn check_alarms(&mut self) -> Result<()> {
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

    pub(super) fn counters(&mut self) -> Result<Counters> {
        let text = self.command("mem", "mem.mm ")?;
        Counters::parse(&text)
    }

    fn kernel_view(&mut self) -> Result<KernelView> {
        let text = self.command("hotplug", "hotplug.summary ")?;
        KernelView::parse(&text)
    }

    pub(super) fn qemu_view(&mut self) -> Result<QemuView> {
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

    /// Polls both views until they agree (they may lag each other by a QMP round trip).
    pub(super) fn check_views(&mut self, what: &str) -> Result<(KernelView, QemuView)> {
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
    pub(super) fn cycle(&mut self, cycle: u32, plan: &CyclePlan) -> Result<CycleDetail> {
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
    /// unless [`super::Options::pause_for_dimms`] is off.
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
    pub(super) fn end_of_cycle(
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
    pub(super) fn stopped(&mut self, cycle: u32, plan: &str, error: &anyhow::Error) -> Stopped {
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
