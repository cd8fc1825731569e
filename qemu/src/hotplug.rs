//! The QMP flows of memory hotplug (qemu-hotplug.md §6): backends, pc-dimm and virtio-mem
//! devices, resizing, removal, and `query-memory-devices` as QEMU's side of the story.

use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::arch::Arch;
use crate::qmp::Qmp;

/// One entry of `query-memory-devices`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryDevice {
    /// `dimm`, `nvdimm`, `virtio-mem`, ...
    pub kind: String,
    pub id: Option<String>,
    /// Guest-physical base (`addr` or `memaddr`).
    pub addr: u64,
    /// Current (plugged) size.
    pub size: u64,
    /// virtio-mem only.
    pub requested_size: Option<u64>,
    pub max_size: Option<u64>,
    pub block_size: Option<u64>,
}

/// The virtio-mem proxy device of `arch`'s transport.
pub fn virtio_mem_driver(arch: Arch) -> &'static str {
    match arch {
        Arch::S390x => "virtio-mem-ccw",
        Arch::X86_64 | Arch::Aarch64 => "virtio-mem-pci",
    }
}

/// `object-add memory-backend-ram` of `size` bytes.
pub fn add_ram_backend(qmp: &mut Qmp, id: &str, size: u64) -> Result<()> {
    let args = json!({"qom-type": "memory-backend-ram", "id": id, "size": size});
    qmp.execute("object-add", args)?;
    Ok(())
}

/// `device_add pc-dimm` backed by `memdev` (x86_64, aarch64 with firmware), where QEMU
/// puts it.
pub fn add_pc_dimm(qmp: &mut Qmp, id: &str, memdev: &str) -> Result<()> {
    add_pc_dimm_at(qmp, id, memdev, None)
}

/// `device_add pc-dimm` backed by `memdev`, at guest-physical `addr` when given (QEMU's
/// `addr` property; QEMU refuses an address that overlaps another device).
pub fn add_pc_dimm_at(qmp: &mut Qmp, id: &str, memdev: &str, addr: Option<u64>) -> Result<()> {
    let mut args = json!({"driver": "pc-dimm", "id": id, "memdev": memdev});
    if let Some(addr) = addr {
        args["addr"] = json!(addr);
    }
    qmp.execute("device_add", args)?;
    Ok(())
}

/// The first address at or after the end of every memory device in `devices` (a
/// virtio-mem device counts its whole region, `max-size`) rounded up to `align`: where a
/// DIMM starts on a memory-block boundary. QEMU itself puts a DIMM right after the last
/// device at the backend's alignment only, which need not be a memory-block boundary.
/// `None` without devices (then QEMU's placement starts at its aligned device-memory base).
pub fn dimm_addr_after(devices: &[MemoryDevice], align: u64) -> Option<u64> {
    devices
        .iter()
        .map(|d| d.addr + d.size.max(d.max_size.unwrap_or(0)))
        .max()
        .map(|end| end.next_multiple_of(align))
}

/// [`dimm_addr_after`] over QEMU's current memory devices.
pub fn aligned_dimm_addr(qmp: &mut Qmp, align: u64) -> Result<Option<u64>> {
    Ok(dimm_addr_after(&query_memory_devices(qmp)?, align))
}

/// `device_add` of `arch`'s virtio-mem device; `bus` is needed on q35 (a root port).
pub fn add_virtio_mem(
    qmp: &mut Qmp,
    arch: Arch,
    id: &str,
    memdev: &str,
    requested_size: u64,
    bus: Option<&str>,
) -> Result<()> {
    let mut args = json!({
        "driver": virtio_mem_driver(arch),
        "id": id,
        "memdev": memdev,
        "requested-size": requested_size,
    });
    if let Some(bus) = bus {
        args["bus"] = json!(bus);
    }
    qmp.execute("device_add", args)?;
    Ok(())
}

/// Asks a virtio-mem device to grow or shrink (`qom-set requested-size`, an integer).
pub fn set_requested_size(qmp: &mut Qmp, id: &str, bytes: u64) -> Result<()> {
    let args = json!({"path": id, "property": "requested-size", "value": bytes});
    qmp.execute("qom-set", args)?;
    Ok(())
}

/// QEMU's view of every memory device.
pub fn query_memory_devices(qmp: &mut Qmp) -> Result<Vec<MemoryDevice>> {
    let list = qmp.execute("query-memory-devices", Value::Null)?;
    parse_memory_devices(&list)
}

/// Polls until virtio-mem device `id` has plugged `target` bytes (the size-change event is
/// rate-limited, so polling is the reliable signal); returns the last size seen on timeout
/// as an error.
pub fn wait_plugged_size(qmp: &mut Qmp, id: &str, target: u64, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let devices = query_memory_devices(qmp)?;
        let dev = devices
            .iter()
            .find(|d| d.id.as_deref() == Some(id))
            .with_context(|| format!("no memory device {id:?}"))?;
        if dev.size == target {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("{id}: plugged size {:#x}, wanted {target:#x}", dev.size);
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// `device_del`, then waits for `DEVICE_DELETED` naming `id`.
pub fn delete_device(qmp: &mut Qmp, id: &str, timeout: Duration) -> Result<()> {
    qmp.execute("device_del", json!({"id": id}))?;
    qmp.wait_event_where("DEVICE_DELETED", timeout, |d| d["device"] == id)?;
    Ok(())
}

/// Parses the return value of `query-memory-devices`.
pub fn parse_memory_devices(list: &Value) -> Result<Vec<MemoryDevice>> {
    let entries = list
        .as_array()
        .context("query-memory-devices: not a list")?;
    entries.iter().map(parse_device).collect()
}

fn parse_device(entry: &Value) -> Result<MemoryDevice> {
    let data = &entry["data"];
    let num = |key: &str| data[key].as_u64();
    Ok(MemoryDevice {
        kind: entry["type"]
            .as_str()
            .context("memory device without type")?
            .to_string(),
        id: data["id"].as_str().map(str::to_string),
        addr: num("addr")
            .or_else(|| num("memaddr"))
            .with_context(|| format!("memory device without address: {entry}"))?,
        size: num("size").with_context(|| format!("memory device without size: {entry}"))?,
        requested_size: num("requested-size"),
        max_size: num("max-size"),
        block_size: num("block-size"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dimm_and_virtio_mem_entries() {
        let list = json!([
            {"type": "dimm", "data": {"id": "dimm1", "addr": 4294967296u64, "size": 1073741824,
             "slot": 0, "node": 0, "memdev": "/objects/mem1", "hotplugged": true, "hotpluggable": true}},
            {"type": "virtio-mem", "data": {"id": "vm0", "memaddr": 1073741824, "size": 268435456,
             "requested-size": 268435456, "max-size": 1073741824, "block-size": 2097152,
             "node": 0, "memdev": "/objects/mem0"}}
        ]);
        let devices = parse_memory_devices(&list).unwrap();
        assert_eq!(devices[0].kind, "dimm");
        assert_eq!(devices[0].addr, 0x1_0000_0000);
        assert_eq!(devices[0].requested_size, None);
        assert_eq!(devices[1].id.as_deref(), Some("vm0"));
        assert_eq!(devices[1].addr, 0x4000_0000);
        assert_eq!(devices[1].block_size, Some(2 << 20));
        assert_eq!(devices[1].max_size, Some(1 << 30));
    }

    #[test]
    fn dimms_go_after_every_device_on_the_alignment() {
        let dev = |addr: u64, size: u64, max_size: Option<u64>| MemoryDevice {
            kind: "x".into(),
            id: None,
            addr,
            size,
            requested_size: None,
            max_size,
            block_size: None,
        };
        const GIB: u64 = 1 << 30;
        assert_eq!(dimm_addr_after(&[], GIB), None);
        // virtio-mem with nothing plugged still owns its whole region.
        let vmem = dev(4 * GIB, 0, Some(4 * GIB));
        assert_eq!(
            dimm_addr_after(std::slice::from_ref(&vmem), GIB),
            Some(8 * GIB)
        );
        // A DIMM that ends off the grid pushes the next one to the boundary after it.
        let odd = dev(8 * GIB, (64 << 20) + (2 << 20), None);
        assert_eq!(
            dimm_addr_after(&[odd, vmem], 128 << 20),
            Some(8 * GIB + (128 << 20))
        );
    }

    #[test]
    fn rejects_malformed_lists() {
        assert!(parse_memory_devices(&json!({})).is_err());
        assert!(parse_memory_devices(&json!([{"type": "dimm", "data": {}}])).is_err());
    }

    #[test]
    fn picks_the_transport() {
        assert_eq!(virtio_mem_driver(Arch::S390x), "virtio-mem-ccw");
        assert_eq!(virtio_mem_driver(Arch::X86_64), "virtio-mem-pci");
    }
}
