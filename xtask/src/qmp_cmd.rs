//! `cargo xtask qmp --arch A <action>`: drive the memory devices of a VM started by
//! `cargo xtask run --arch A --hotplug` from a second terminal, through its QMP socket,
//! while its console (on the first terminal) shows the kernel reacting.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use qemu::hotplug::{self, MemoryDevice};
use qemu::{Arch, Qmp};
use serde_json::json;

/// What to do to the running VM.
#[derive(Subcommand)]
pub enum Action {
    /// Hot-add a pc-dimm of SIZE (e.g. 128M, 1G) backed by RAM.
    AddDimm { size: String },
    /// Hot-remove the pc-dimm with this id (from `info`).
    DelDimm { id: String },
    /// Hot-add an NVDIMM of SIZE, backed by a file in target/nvdimm-hot/.
    AddNvdimm { size: String },
    /// Set the virtio-mem device vm0's requested size (e.g. 512M, 0).
    Vmem { size: String },
    /// QEMU's memory devices beside the kernel's hotplug records (from the console log).
    Info,
}

/// Runs one action against the VM of `arch`.
pub fn run(arch: Arch, action: Action) -> Result<()> {
    let socket = crate::run::qmp_socket(arch);
    let mut qmp = Qmp::connect(&socket, Duration::from_secs(2)).with_context(|| {
        format!(
            "no VM at {} (start one with `cargo xtask run --arch {arch} --hotplug`)",
            socket.display()
        )
    })?;
    match action {
        Action::AddDimm { size } => {
            let bytes = parse_size(&size)?;
            let id = free_id(&mut qmp, "dimm")?;
            hotplug::add_ram_backend(&mut qmp, &format!("mem-{id}"), bytes)?;
            hotplug::add_pc_dimm(&mut qmp, &id, &format!("mem-{id}"))?;
            println!("added pc-dimm {id} ({size})");
        }
        Action::DelDimm { id } => {
            qmp.execute("device_del", json!({ "id": id }))?;
            match qmp.wait_event_where("DEVICE_DELETED", Duration::from_secs(10), |d| {
                d["device"] == id
            }) {
                Ok(_) => println!("removed {id} (DEVICE_DELETED)"),
                Err(_) => println!(
                    "{id}: no DEVICE_DELETED within 10 s (the guest refused or is busy; see ACPI_DEVICE_OST)"
                ),
            }
            for event in qmp.take_events() {
                println!("event: {event}");
            }
        }
        Action::AddNvdimm { size } => {
            let bytes = parse_size(&size)?;
            let id = free_id(&mut qmp, "nvdimm")?;
            let file = backing_file(&id)?;
            let backend = json!({"qom-type": "memory-backend-file", "id": format!("mem-{id}"),
                "mem-path": file, "size": bytes + (128 << 10), "share": true});
            qmp.execute("object-add", backend)?;
            qmp.execute(
                "device_add",
                json!({"driver": "nvdimm", "id": id,
                "memdev": format!("mem-{id}"), "label-size": 128 << 10}),
            )?;
            println!("added nvdimm {id} ({size}, backing {})", file.display());
        }
        Action::Vmem { size } => {
            hotplug::set_requested_size(&mut qmp, "vm0", parse_size(&size)?)?;
            println!("vm0 requested-size={size}");
        }
        Action::Info => info(arch, &mut qmp)?,
    }
    Ok(())
}

/// `query-memory-devices` as a table, then the kernel's latest records.
fn info(arch: Arch, qmp: &mut Qmp) -> Result<()> {
    println!("QEMU (query-memory-devices):");
    for d in hotplug::query_memory_devices(qmp)? {
        print_device(&d);
    }
    let log = crate::run::console_log(arch);
    println!("kernel (hotplug/region records in {}):", log.display());
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let records: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("hotplug: ") || l.starts_with("region: "))
        .collect();
    for line in records.iter().rev().take(20).rev() {
        println!("  {line}");
    }
    Ok(())
}

fn print_device(d: &MemoryDevice) {
    let id = d.id.as_deref().unwrap_or("-");
    let mut line = format!(
        "  {:<12} {:<8} addr={:#x} size={:#x}",
        d.kind, id, d.addr, d.size
    );
    if let Some(r) = d.requested_size {
        line.push_str(&format!(" requested={r:#x}"));
    }
    if let Some(b) = d.block_size {
        line.push_str(&format!(" block={b:#x}"));
    }
    println!("{line}");
}

/// `PREFIXn` for the smallest n not in use.
fn free_id(qmp: &mut Qmp, prefix: &str) -> Result<String> {
    let used: Vec<String> = hotplug::query_memory_devices(qmp)?
        .into_iter()
        .filter_map(|d| d.id)
        .collect();
    Ok((0..)
        .map(|n| format!("{prefix}{n}"))
        .find(|id| !used.contains(id))
        .expect("an unbounded range has a free id"))
}

fn backing_file(id: &str) -> Result<PathBuf> {
    let dir = qemu::cargo::target_dir().join("nvdimm-hot");
    std::fs::create_dir_all(&dir)?;
    let file = dir.join(format!("{id}.img"));
    let _ = std::fs::remove_file(&file);
    Ok(file)
}

/// `128M`, `1G`, `4096`, `0x8000000`.
pub fn parse_size(text: &str) -> Result<u64> {
    let (digits, shift) = match text.chars().last() {
        Some('K' | 'k') => (&text[..text.len() - 1], 10),
        Some('M' | 'm') => (&text[..text.len() - 1], 20),
        Some('G' | 'g') => (&text[..text.len() - 1], 30),
        _ => (text, 0),
    };
    let value = match digits.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => digits.parse(),
    }
    .with_context(|| format!("bad size {text:?} (e.g. 128M, 1G)"))?;
    value
        .checked_shl(shift)
        .filter(|v| v >> shift == value)
        .map_or_else(|| bail!("size {text} overflows"), Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_suffixes() {
        assert_eq!(parse_size("128M").unwrap(), 128 << 20);
        assert_eq!(parse_size("1G").unwrap(), 1 << 30);
        assert_eq!(parse_size("0x1000").unwrap(), 4096);
        assert_eq!(parse_size("0").unwrap(), 0);
        assert!(parse_size("12Q").is_err());
        assert!(parse_size("99999999999G").is_err());
    }
}
