//! The x86 hotplug sources (`Arch::hotplug_sources`): from the FADT (SCI, GPE0, DSDT),
//! the DSDT (MHPD slot count `MDNR`, its I/O region `HPMR`) and the MADT (SCI route),
//! the ACPI memory-hotplug controller and the NVDIMM FIT mailbox; then every
//! virtio-mem-pci device.
//!
//! `hotplug.notify=poll` on the command line forces the polling fallback.

use alloc::boxed::Box;
use alloc::vec::Vec;

use kernel::boot_info::Firmware;
use kernel::firmware::acpi::PhysWindow;
use kernel::firmware::{acpi_find, apic, cmdline, dsdt_scan, fadt, mhpd};
use kernel::hotplug::event::EventSource;
use kernel::mm::arch::MmArch;
use kernel::virtio::mem::plan::Granularity;
use kernel::{Arch, BootInfo};

use crate::X86_64;
use crate::mhpd_io::PortMhpd;
use crate::nvdimm_fit::NvdimmFit;
use crate::sci::{self, Notify};

/// QEMU's fixed MHPD base, used when the DSDT has no `HPMR` region.
const MHPD_DEFAULT_BASE: u16 = 0x0a00;

/// A whole table at `pa` (its header's length), read through `window`.
fn table_at(window: &PhysWindow, pa: u64) -> Option<&'static [u8]> {
    let head = window.slice(pa, 36)?;
    let len = u32::from_le_bytes(head[4..8].try_into().ok()?) as usize;
    (36..16 << 20)
        .contains(&len)
        .then(|| window.slice(pa, len))
        .flatten()
}

/// Every source this machine has.
pub fn sources(boot: &BootInfo) -> Vec<Box<dyn EventSource>> {
    let granularity = Granularity::new(X86_64::memory_block(boot), &MmArch::X86_64);
    let mut out: Vec<Box<dyn EventSource>> = Vec::new();
    let Firmware::Acpi { rsdp } = boot.firmware else {
        return crate::virtio_pci::sources(granularity);
    };
    // ACPI tables through the HHDM, every read bounded by what it maps.
    let window = PhysWindow::direct_map(<X86_64 as Arch>::phys_to_virt(0) as usize, &boot.memory);
    let read = |pa: u64, len: usize| window.slice(pa, len);
    let Some(fadt) = acpi_find::find(rsdp, b"FACP", &read)
        .ok()
        .and_then(|t| fadt::parse(t).ok())
    else {
        log::warn!("hotplug: no usable FADT: no ACPI hotplug sources");
        return crate::virtio_pci::sources(granularity);
    };
    let dsdt = table_at(&window, fadt.dsdt).unwrap_or(&[]);
    let slots = dsdt_scan::mdnr(dsdt).unwrap_or(0);
    let nvdimm_aml = dsdt.windows(4).any(|w| w == b"_E04");
    let madt = acpi_find::find(rsdp, b"APIC", &read)
        .ok()
        .and_then(|t| apic::parse(t).ok());
    let force_poll = cmdline::value(boot.cmdline, "hotplug.notify") == Some("poll");
    let mask = sci::GPE_MEMORY | sci::GPE_NVDIMM;
    let notify = if slots > 0 || nvdimm_aml {
        sci::init(&fadt, madt.as_ref(), mask, force_poll)
    } else {
        Notify::RegPoll
    };
    if slots > 0 {
        let base = dsdt_scan::op_region(dsdt, b"HPMR")
            .filter(|r| r.space == 1 && r.len >= 0x18)
            .and_then(|r| u16::try_from(r.base).ok())
            .unwrap_or(MHPD_DEFAULT_BASE);
        log::info!(
            "hotplug: acpi-mhpd io={base:#x} slots={slots} gpe0={:#x} gpe0.len={} sci={} notify={notify:?}",
            fadt.gpe0_blk,
            fadt.gpe0_blk_len,
            fadt.sci_int
        );
        let regs = PortMhpd { base };
        out.push(Box::new(mhpd::Mhpd::new(
            regs,
            "acpi-mhpd",
            u64::from(base),
            slots,
        )));
    } else {
        log::info!("hotplug: no MDNR in the DSDT: no memory-hotplug controller (slots=0)");
    }
    if nvdimm_aml
        && notify != Notify::RegPoll
        && let Some(src) = NvdimmFit::probe()
    {
        out.push(Box::new(src));
    }
    out.extend(crate::virtio_pci::sources(granularity));
    out
}
