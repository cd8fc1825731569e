//! The aarch64 port: Limine-protocol entry (EL1, or EL2 with VHE) and direct entry as an
//! arm64 `Image` (QEMU `-kernel`, DTB in x0, EL1 or EL2), exception vectors, the PL011
//! console found through ACPI SPCR or the device tree, the generic timer as clock, the
//! kernel's own TTBR1 tables (HHDM + W^X image), the semihosting / PSCI exit, and the
//! hotplug sources (GED + memory-hotplug controller with the GED interrupt through the
//! GICv2, NVDIMM FIT, virtio-mem-pci over ECAM).
//!
//! Rooms — every port uses the same module for the same role:
//!
//! | role | module (helpers beside it) |
//! |---|---|
//! | entry (Limine) | `boot`, `entry` (first instructions), `requests` (the DTB request) |
//! | entry (`Image`) | `direct`, `direct_entry`, `dtb_memory` |
//! | console | `console` (PL011; `platform` finds it) |
//! | exceptions | `exceptions` (the vectors are in `entry`) |
//! | clock | `clock` (the generic timer's virtual counter) |
//! | kernel page tables | `kpt` (over `kernel::kpt`), the format in `paging` |
//! | probe | `probe` (guarded peek/poke/jump) |
//! | vmemmap | `vmemmap` |
//! | memory-block size | `memory_block` (Linux's `memory_block_size_bytes()`) |
//! | hotplug sources | `hotplug` (with `ged`, `gic`, `mmio`, `pci`) |
//! | nvdimm | `nvdimm` (the FIT through QEMU's DSM mailbox) |
//! | `kernel::Arch` | `port` (with `cpu`, `power`, `platform`) |
//!
//! The page-table format ([`paging`]), the vmemmap walker with the memory-model
//! constants ([`vmemmap`], run through the kernel's shared vmemmap suite), the exit
//! encodings ([`power`]) and the direct entry's DTB reading are pure and tested on the
//! host; everything else exists only on the bare-metal target.
#![cfg_attr(target_os = "none", no_std)]

#[cfg(target_os = "none")]
extern crate alloc;

pub mod direct_entry;
pub mod dtb_memory;
pub mod memory_block;
pub mod paging;
pub mod power;
pub mod vmemmap;

#[cfg(target_os = "none")]
mod boot;
#[cfg(target_os = "none")]
mod clock;
#[cfg(target_os = "none")]
mod console;
#[cfg(target_os = "none")]
mod cpu;
#[cfg(target_os = "none")]
mod direct;
#[cfg(target_os = "none")]
mod entry;
#[cfg(target_os = "none")]
mod exceptions;
#[cfg(target_os = "none")]
mod ged;
#[cfg(target_os = "none")]
mod gic;
#[cfg(target_os = "none")]
mod hotplug;
#[cfg(target_os = "none")]
mod kpt;
#[cfg(target_os = "none")]
mod mmio;
#[cfg(target_os = "none")]
mod nvdimm;
#[cfg(target_os = "none")]
mod pci;
#[cfg(target_os = "none")]
mod platform;
#[cfg(target_os = "none")]
mod port;
#[cfg(target_os = "none")]
mod probe;
#[cfg(target_os = "none")]
mod requests;

#[cfg(target_os = "none")]
pub use port::Aarch64;

/// Host tests run on the system allocator with the kernel's per-thread heap fault rule.
#[cfg(test)]
#[global_allocator]
static TEST_ALLOC: kernel::heap::HostFaultAlloc = kernel::heap::HostFaultAlloc;
