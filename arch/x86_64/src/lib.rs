//! The x86_64 port: Limine-protocol entry and PVH direct entry (QEMU `-kernel`), the COM1
//! console, the IDT, the TSC clock, the kernel's own page tables (HHDM + W^X image), the
//! isa-debug-exit stop, and the hotplug sources (ACPI memory-hotplug controller and
//! NVDIMM FIT behind the SCI, virtio-mem-pci).
//!
//! Rooms — every port uses the same module for the same role:
//!
//! | role | module (helpers beside it) |
//! |---|---|
//! | entry (Limine) | `boot` |
//! | entry (PVH) | `direct`, `direct_entry`, `start_info` |
//! | console | `console` (COM1 through `uart_16550`) |
//! | exceptions | `exceptions` (the IDT; `gdt` holds the IST stacks) |
//! | clock | `clock` (TSC, calibrated against the PIT when CPUID is silent) |
//! | kernel page tables | `kpt` (over `kernel::kpt`), the format in `paging` |
//! | probe | `probe` (guarded peek/poke/jump) |
//! | vmemmap | `vmemmap` |
//! | memory-block size | `memory_block` (Linux's `memory_block_size_bytes()`) |
//! | hotplug sources | `hotplug` (with `sci`, `apic`, `mhpd_io`, `pci`, `virtio_pci`) |
//! | nvdimm | `nvdimm` (the FIT through QEMU's DSM mailbox) |
//! | `kernel::Arch` | `port` (with `cpu`) |
//!
//! The Limine requests are the kernel's (`kernel::firmware::limine::requests`).
//! The page-table format ([`paging`]), the vmemmap walker with the memory-model
//! constants ([`vmemmap`]) and the PVH start-info reader are tested on the host (the
//! walker through the kernel's shared vmemmap suite); everything else exists only on the
//! bare-metal target.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", feature(abi_x86_interrupt))]

#[cfg(target_os = "none")]
extern crate alloc;

pub mod direct_entry;
pub mod memory_block;
pub mod paging;
pub mod start_info;
pub mod vmemmap;

#[cfg(target_os = "none")]
mod apic;
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
mod exceptions;
#[cfg(target_os = "none")]
mod gdt;
#[cfg(target_os = "none")]
mod hotplug;
#[cfg(target_os = "none")]
mod kpt;
#[cfg(target_os = "none")]
mod mhpd_io;
#[cfg(target_os = "none")]
mod nvdimm;
#[cfg(target_os = "none")]
mod pci;
#[cfg(target_os = "none")]
mod port;
#[cfg(target_os = "none")]
mod probe;
#[cfg(target_os = "none")]
mod sci;
#[cfg(target_os = "none")]
mod virtio_pci;

#[cfg(target_os = "none")]
pub use port::X86_64;

/// Host tests run on the system allocator with the kernel's per-thread heap fault rule.
#[cfg(test)]
#[global_allocator]
static TEST_ALLOC: kernel::heap::HostFaultAlloc = kernel::heap::HostFaultAlloc;
