//! The arch-neutral, pure parts of the `boot` loader: everything that is protocol logic
//! rather than firmware plumbing, written over byte slices and plain data so that it runs
//! (and is unit-tested) on the host.
//!
//! - [`acpi`]: the ACPI tables the loader must keep mapped, and the IO-APICs.
//! - [`fwcfg`]: QEMU fw_cfg directory entries (the command-line override).
//! - [`conf`]: the `limine.conf` subset (entries, `protocol`, `path`, `cmdline`).
//! - [`elf`]: reading the kernel's `PT_LOAD` segments and placing them in one block.
//! - [`scan`]: finding the base-revision tag and the requests between the markers.
//! - [`revision`]: what each base revision promises (HHDM coverage, RSDP addressing).
//! - [`memmap`]: UEFI memory map to Limine entry types, sorted and merged.
//! - [`protocol`]: request IDs and the response layouts the loader fills in.
//! - [`paging`]: page-table building (HHDM + kernel at -2 GiB) over a frame source.
//!
//! The UEFI binary (`src/main.rs`, `src/efi/`) glues these to the firmware.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod acpi;
pub mod conf;
pub mod elf;
pub mod fwcfg;
pub mod memmap;
pub mod paging;
pub mod protocol;
pub mod revision;
pub mod scan;

/// Name reported through the Bootloader Info response.
pub const LOADER_NAME: &str = "hotmem-boot";

/// Version reported through the Bootloader Info response (the crate version).
pub const LOADER_VERSION: &str = env!("CARGO_PKG_VERSION");
