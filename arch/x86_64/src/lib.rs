//! The x86_64 port: Limine-protocol entry and PVH direct entry (QEMU `-kernel`),
//! GDT/TSS/IDT, the COM1 console, TSC clock, CPU feature report, the kernel's own page tables (HHDM + W^X image), the
//! isa-debug-exit stop, and the hotplug sources (ACPI memory-hotplug controller and
//! NVDIMM FIT behind the SCI).
//!
//! The page-table format ([`paging`]) and the vmemmap walker with the memory-model
//! constants ([`vmemmap`]) are tested on the host (the kernel's shared vmemmap suite);
//! everything else exists only on the bare-metal target.
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
mod cpu;
#[cfg(target_os = "none")]
mod direct;
#[cfg(target_os = "none")]
mod gdt;
#[cfg(target_os = "none")]
mod hotplug;
#[cfg(target_os = "none")]
mod idt;
#[cfg(target_os = "none")]
mod kpt;
#[cfg(target_os = "none")]
mod mhpd_io;
#[cfg(target_os = "none")]
mod nvdimm_fit;
#[cfg(target_os = "none")]
mod pci;
#[cfg(target_os = "none")]
mod port;
#[cfg(target_os = "none")]
mod probe;
#[cfg(target_os = "none")]
mod requests;
#[cfg(target_os = "none")]
mod sci;
#[cfg(target_os = "none")]
mod serial;
#[cfg(target_os = "none")]
mod tsc;
#[cfg(target_os = "none")]
mod virtio_pci;

#[cfg(target_os = "none")]
pub use port::X86_64;

/// Host tests run on the system allocator with the kernel's per-thread heap fault rule.
#[cfg(test)]
#[global_allocator]
static TEST_ALLOC: kernel::heap::HostFaultAlloc = kernel::heap::HostFaultAlloc;
