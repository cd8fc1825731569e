//! The hotplug event sources of this machine, built once after the memory manager is
//! up (`Arch::hotplug_sources`): on an ACPI boot the memory-hotplug controller and the
//! NVDIMM FIT, both signalled through the GED and its interrupt on the GIC
//! (`hotplug.notify=poll` reads the GED selector instead); virtio-mem-pci devices on
//! every boot (see [`crate::pci`]), ECAM from the MCFG or the DT (`pci.reassign=1`
//! places their BARs anew).

use alloc::boxed::Box;
use alloc::vec::Vec;

use kernel::BootInfo;
use kernel::boot_info::Firmware;
use kernel::firmware::acpi::{self, PhysWindow};
use kernel::firmware::{acpi_find, cmdline, dsdt_scan, fdt, mhpd};
use kernel::hotplug::event::EventSource;

use crate::ged::{self, GedMhpdRegs};
use crate::gic::{self, Gic};
use crate::nvdimm::FitReader;
use crate::pci::{self, Windows};
use crate::{kpt, nvdimm, port};

/// Every source this boot has.
pub fn sources(boot: &BootInfo) -> Vec<Box<dyn EventSource>> {
    let mut sources: Vec<Box<dyn EventSource>> = Vec::new();
    let window = PhysWindow::direct_map(port::hhdm() as usize, &boot.memory);
    let reassign = cmdline::value(boot.cmdline, "pci.reassign") == Some("1");
    match boot.firmware {
        Firmware::Acpi { rsdp } => {
            acpi_sources(rsdp, boot.cmdline, &mut sources);
            let ecam = acpi::parse(rsdp, &read_phys)
                .ok()
                .and_then(|i| i.ecam.items().iter().find(|e| e.segment == 0).copied());
            match ecam {
                Some(e) => {
                    pci::virtio_mem_sources(e.base, &Windows::virt(), reassign, &mut sources)
                }
                None => log::info!("hotplug: no MCFG: no PCI sources"),
            }
        }
        Firmware::Fdt { dtb } => {
            let bytes = fdt::bytes(dtb, window).ok();
            let ecam = bytes
                .and_then(|b| fdt::parse(b).ok())
                .and_then(|i| i.ecam)
                .filter(|e| e.bus_start == 0);
            let windows = bytes
                .and_then(Windows::from_dtb)
                .unwrap_or_else(Windows::virt);
            match ecam {
                Some(e) => {
                    log::info!(
                        "hotplug: pci ecam={:#x} windows={} mem32={:#x}-{:#x} mem64={:x?}",
                        e.base,
                        windows.source,
                        windows.mem32.start,
                        windows.mem32.end,
                        windows.mem64
                    );
                    pci::virtio_mem_sources(e.base, &windows, reassign, &mut sources);
                }
                None => log::info!("hotplug: no PCI host bridge in the DT: no PCI sources"),
            }
        }
        _ => {}
    }
    sources
}

/// Reads firmware memory through the HHDM, every page checked mapped by our tables.
fn read_phys(pa: u64, len: usize) -> Option<&'static [u8]> {
    acpi_find::read_direct_map::<port::Aarch64>(pa, len)
}

/// What the DSDT and SSDT say about the GED's devices.
struct AcpiHotplug {
    /// `Name(MDNR, N)`: DIMM slots (0: no memory hotplug).
    slots: u32,
    /// `OperationRegion(HPMR, SystemMemory, base, len)`: the MHPD block.
    mhpd: u64,
    /// `OperationRegion(EREG, SystemMemory, base, 4)`: the GED selector.
    ged: Option<u64>,
    /// QEMU's NVDIMM SSDT (OEM table id "NVDIMM"): the DSM mailbox exists.
    nvdimm: bool,
}

fn acpi_hotplug(rsdp: u64) -> AcpiHotplug {
    let dsdt = acpi_find::dsdt(rsdp, &read_phys).unwrap_or(&[]);
    let mhpd = dsdt_scan::op_region(dsdt, b"HPMR").filter(|r| r.space == 0 && r.len >= 0x18);
    let ged = dsdt_scan::op_region(dsdt, b"EREG").filter(|r| r.space == 0 && r.len >= 4);
    AcpiHotplug {
        slots: if mhpd.is_some() {
            dsdt_scan::mdnr(dsdt).unwrap_or(0)
        } else {
            0
        },
        mhpd: mhpd.map_or(ged::MHPD_BASE, |r| r.base),
        ged: ged.map(|r| r.base),
        nvdimm: acpi_find::find::<acpi_find::Ssdt>(rsdp, &read_phys)
            .is_ok_and(|t| t.len() >= 24 && t[16..22] == *b"NVDIMM"),
    }
}

/// The GED-signalled sources: QEMU creates the GED exactly when firmware is loaded and
/// ACPI is on (this boot); the DSDT tells whether it has the MHPD and how many slots.
/// `hotplug.notify=poll` on the command line keeps the GED line off (polling fallback).
fn acpi_sources(rsdp: u64, cmd: &str, sources: &mut Vec<Box<dyn EventSource>>) {
    let found = acpi_hotplug(rsdp);
    if found.ged != Some(ged::GED_BASE) || found.mhpd != ged::MHPD_BASE {
        log::info!(
            "hotplug: no GED at {:#x} (DSDT EREG {:x?}, HPMR {:#x}): no ACPI hotplug sources",
            ged::GED_BASE,
            found.ged,
            found.mhpd
        );
        return;
    }
    let mut devices = alloc::vec![(ged::GED_BASE, 4), (ged::MHPD_BASE, ged::MHPD_BYTES)];
    if found.nvdimm {
        devices.push((nvdimm::DSM_MAILBOX, 4));
    }
    let info = acpi::parse(rsdp, &read_phys).ok();
    let gicv2 = info
        .as_ref()
        .and_then(|i| i.gic)
        .filter(|g| g.version == 2 || g.gicr.is_none())
        .and_then(|g| Some((g.gicd, g.gicc?)));
    if let Some((gicd, gicc)) = gicv2 {
        devices.push((gicd, gic::GICD_BYTES));
        devices.push((gicc, gic::GICC_BYTES));
    }
    for &(pa, len) in &devices {
        if let Err(e) = kpt::map_device(pa, len) {
            log::error!("hotplug: mapping {pa:#x}+{len:#x} failed ({e:?}): no ACPI sources");
            return;
        }
    }
    // SAFETY: the distributor and CPU interface the MADT names, mapped just above.
    let gic = gicv2.map(|(gicd, gicc)| unsafe { Gic::init(gicd, gicc) });
    let force_poll = cmdline::value(cmd, "hotplug.notify") == Some("poll");
    let by_irq = !force_poll
        && gic
            .as_ref()
            .is_some_and(|g| g.enable_spi(ged::GED_INTID, true, ged::on_irq));
    // SAFETY: the DSDT describes the GED selector at GED_BASE; mapped above.
    unsafe { ged::init(by_irq) };
    if found.slots > 0 {
        // SAFETY: the DSDT describes the MHPD (HPMR) at MHPD_BASE; mapped above.
        let regs = unsafe { GedMhpdRegs::new() };
        sources.push(Box::new(mhpd::Mhpd::new(
            regs,
            "acpi-mhpd",
            ged::MHPD_BASE,
            found.slots,
        )));
    }
    if found.nvdimm {
        // SAFETY: the NVDIMM SSDT means `nvdimm=on`, so the DSM mailbox exists; mapped.
        match unsafe { FitReader::new() } {
            Ok(fit) => sources.push(Box::new(fit)),
            Err(e) => log::warn!("hotplug: NVDIMM FIT unreadable ({e:?}): no NVDIMM hot-add"),
        }
    }
    if by_irq {
        gic::unmask_irqs();
    }
    log::info!(
        "hotplug: ged={:#x} mhpd={:#x} slots={} nvdimm={} intid={} gic={} notify={}",
        ged::GED_BASE,
        ged::MHPD_BASE,
        found.slots,
        u8::from(found.nvdimm),
        ged::GED_INTID,
        gic.as_ref().map_or("none".into(), Gic::label),
        if by_irq { "irq" } else { "poll" }
    );
}
