//! Firmware descriptions turned into kernel facts: the command line for now; ACPI,
//! NFIT, SRAT and FDT parsing join here with the region issue.

pub mod acpi;
pub mod acpi_find;
pub mod cmdline;
pub mod fdt;
pub mod memmap_param;
pub mod nfit;
pub mod srat;
