//! What the firmware says about the machine, read before the console exists: which
//! description the kernel got (ACPI wins when both are present), the console PL011
//! (ACPI SPCR or the DTB's `stdout-path`) and the PSCI conduit (FADT Arm boot flags or
//! the DTB's `/psci` `method`).

use kernel::boot_info::Firmware;
use kernel::firmware::acpi::{self, PhysWindow};
use kernel::firmware::acpi_find::ReadPhys;
use kernel::firmware::fdt;

use crate::power::Conduit;
use kernel::firmware::limine::requests::{Handover, hhdm_maps};

/// QEMU `virt`'s PL011 (hw/arm/virt.c `base_memmap[VIRT_UART]`), used only when
/// firmware names no console UART.
pub const DEFAULT_PL011: u64 = 0x0900_0000;

/// The platform facts the port needs.
#[derive(Clone, Copy, Debug)]
pub struct Platform {
    /// The description handed to the kernel.
    pub firmware: Firmware,
    /// Physical base of the console PL011.
    pub uart: u64,
    /// Where [`Platform::uart`] came from: `spcr`, `dtb` or `default`.
    pub uart_source: &'static str,
    /// The PSCI conduit (HVC when firmware says nothing).
    pub conduit: Conduit,
}

/// Reads the ACPI tables (RSDP at `rsdp`) through the checked reader `acpi_read`, or the
/// DTB (at `dtb`) through `window` (the loader's HHDM, or the direct entry's identity map).
pub fn discover(
    rsdp: Option<u64>,
    dtb: Option<u64>,
    window: PhysWindow,
    acpi_read: ReadPhys<'_>,
) -> Platform {
    let mut p = Platform {
        firmware: Firmware::None,
        uart: DEFAULT_PL011,
        uart_source: "default",
        conduit: Conduit::Hvc,
    };
    if let Some(rsdp) = rsdp {
        p.firmware = Firmware::Acpi { rsdp };
        if let Ok(info) = acpi::parse_boot(rsdp, acpi_read) {
            if let Some(u) = info.uart.filter(|u| u.kind == "pl011" && !u.io) {
                (p.uart, p.uart_source) = (u.base, "spcr");
            }
            if info.psci_hvc == Some(false) {
                p.conduit = Conduit::Smc;
            }
        }
    } else if let Some(dtb) = dtb {
        p.firmware = Firmware::Fdt { dtb };
        if let Ok(info) = fdt::bytes(dtb, window).and_then(fdt::parse) {
            if let Some(base) = info.pl011 {
                (p.uart, p.uart_source) = (base, "dtb");
            }
            if let Some(c) = info.psci.and_then(Conduit::from_method) {
                p.conduit = c;
            }
        }
    }
    p
}

/// Firmware memory through the loader's HHDM, before our own tables exist: only bytes
/// inside memory-map entries that HHDM maps (base revision 4 on: everything but
/// RESERVED and BAD_MEMORY, and every ACPI table lies in ACPI_RECLAIMABLE, ACPI_NVS or
/// RESERVED_MAPPED memory).
pub(crate) fn loader_hhdm(h: &Handover, pa: u64, len: usize) -> Option<&'static [u8]> {
    let end = pa.checked_add(len as u64)?;
    let mut at = pa;
    while at < end {
        let entry = h.entries.iter().find(|e| {
            hhdm_maps(e.type_) && (e.base..e.base.saturating_add(e.length)).contains(&at)
        })?;
        at = entry.base.saturating_add(entry.length);
    }
    // SAFETY: every byte of the range lies in memory the loader's HHDM maps (checked
    // above against its memory map), and firmware tables are never written.
    Some(unsafe { core::slice::from_raw_parts((h.hhdm + pa) as *const u8, len) })
}

/// The `firmware=` value of the platform record.
pub fn kind(f: Firmware) -> &'static str {
    match f {
        Firmware::Acpi { .. } => "acpi",
        Firmware::Fdt { .. } => "fdt",
        Firmware::Sclp => "sclp",
        Firmware::None => "none",
    }
}
