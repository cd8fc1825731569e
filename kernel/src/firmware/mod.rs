//! Firmware descriptions turned into kernel facts: the command line for now; ACPI,
//! NFIT, SRAT and FDT parsing join here with the region issue.

pub mod acpi;
pub mod acpi_find;
pub mod apic;
pub mod cmdline;
pub mod dsdt_scan;
pub mod fadt;
pub mod fdt;
pub mod limine;
pub mod memmap_param;
pub mod mhpd;
pub mod nfit;
pub mod sdt;
pub mod srat;
