//! The x86 hotplug sources (`Arch::hotplug_sources`): from the FADT (SCI, GPE0, DSDT),
//! the DSDT (MHPD slot count `MDNR`, its I/O region `HPMR`) and the MADT (SCI route),
//! the ACPI memory-hotplug controller and the NVDIMM FIT mailbox; then every
//! virtio-mem-pci device.
//!
//! `hotplug.notify=poll` on the command line forces the polling fallback.

use alloc::boxed::Box;
use alloc::vec::Vec;

use kernel::Arch;
use kernel::BootInfo;
use kernel::boot_info::Firmware;
use kernel::firmware::{acpi_find, apic, cmdline, dsdt_scan, fadt, mhpd};
use kernel::hotplug::event::EventSource;
use kernel::virtio::mem::plan::Granularity;

use crate::X86_64;
use crate::mhpd_io::PortMhpd;
use crate::nvdimm::NvdimmFit;
use crate::sci::{self, Notify};

/// QEMU's fixed MHPD base, used when the DSDT has no `HPMR` region.
const MHPD_DEFAULT_BASE: u16 = 0x0a00;

/// Reads firmware memory through the HHDM, every page checked mapped by our tables.
fn read(pa: u64, len: usize) -> Option<&'static [u8]> {
    acpi_find::read_direct_map::<X86_64>(pa, len)
}

/// Every source this machine has.
pub fn sources(boot: &BootInfo) -> Vec<Box<dyn EventSource>> {
    let granularity = Granularity::new(X86_64::memory_block(boot), &crate::vmemmap::MM);
    let mut out: Vec<Box<dyn EventSource>> = Vec::new();
    let Firmware::Acpi { rsdp } = boot.firmware else {
        return crate::virtio_pci::sources(granularity);
    };
    let Ok(fadt) = fadt::find(rsdp, &read) else {
        log::warn!("hotplug: no usable FADT: no ACPI hotplug sources");
        return crate::virtio_pci::sources(granularity);
    };
    let dsdt = acpi_find::dsdt(rsdp, &read).unwrap_or(&[]);
    let slots = dsdt_scan::mdnr(dsdt).unwrap_or(0);
    let nvdimm_aml = dsdt.windows(4).any(|w| w == b"_E04");
    let madt = apic::find(rsdp, &read).ok();
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
