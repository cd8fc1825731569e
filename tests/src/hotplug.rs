//! Helpers shared by the QEMU hotplug tests (x86_64 and aarch64 pc-dimm flows): reading
//! one kernel record, waiting for the prompt, `lo-hi` range fields, QEMU's placement of a
//! memory device, and matching `ACPI_DEVICE_OST` events.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, Result};
use qemu::Machine;
use qemu::hotplug::query_memory_devices;
use qemu::qmp::Qmp;
use serde_json::Value;

/// How long one kernel record may take to appear.
const RECORD_TIMEOUT: Duration = Duration::from_secs(60);

/// Waits for the next console record starting with `prefix` and returns the whole line.
pub fn record(m: &mut Machine, prefix: &str) -> Result<String> {
    m.expect(prefix, RECORD_TIMEOUT)?;
    let rest = m.expect("\n", RECORD_TIMEOUT)?;
    Ok(format!("{prefix}{}", rest.trim_end()))
}

/// Consumes the prompt the shell prints again after a group of records.
pub fn settle(m: &mut Machine) -> Result<()> {
    m.expect(crate::PROMPT, RECORD_TIMEOUT)?;
    Ok(())
}

/// A `lo-hi` range field.
pub fn range(f: &HashMap<&str, &str>, key: &str) -> Result<(u64, u64)> {
    let text = f.get(key).with_context(|| format!("no {key} in {f:?}"))?;
    let (lo, hi) = text.split_once('-').context("range without '-'")?;
    let parse = |t: &str| u64::from_str_radix(t.trim_start_matches("0x"), 16);
    Ok((parse(lo)?, parse(hi)?))
}

/// QEMU's `[addr, addr + size)` of memory device `id`.
pub fn qemu_range(qmp: &mut Qmp, id: &str) -> Result<Option<(u64, u64)>> {
    Ok(query_memory_devices(qmp)?
        .into_iter()
        .find(|d| d.id.as_deref() == Some(id))
        .map(|d| (d.addr, d.addr + d.size)))
}

/// Whether an `ACPI_DEVICE_OST` event is for `device` (any, if `None`) with this source
/// (1 insert, 3 eject) and status.
pub fn ost_matches(data: &Value, device: Option<&str>, source: u64, status: u64) -> bool {
    let info = &data["info"];
    let device_ok = device.is_none_or(|d| info["device"] == d);
    device_ok && info["source"] == source && info["status"] == status
}
