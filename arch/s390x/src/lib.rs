//! The s390x port: IPL entry, lowcore new PSWs, the SCLP console and memory discovery,
//! STFLE facilities, DIAG 0x500, the DAT table format, virtio-mem over the channel
//! subsystem, and the disabled-wait exit.
//!
//! Rooms — every port uses the same module for the same role:
//!
//! | role | module (helpers beside it) |
//! |---|---|
//! | entry | `boot` (after `entry.S`; the IPL command line in `ipl`) |
//! | console | `console` (the SCLP ASCII console, over `sclp` and `sccb`) |
//! | exceptions | `exceptions` (the lowcore; the new PSWs are set in `entry.S`) |
//! | clock | `clock` (the TOD clock) |
//! | kernel page tables | `kpt` (the identity map, DAT on), the format in `paging` |
//! | probe | `probe` (guarded peek/poke/jump) |
//! | vmemmap | `vmemmap` |
//! | memory-block size | `memory_block` (Linux's `memory_block_size_bytes()`) |
//! | hotplug sources | `hotplug` (virtio-mem-ccw, found by `ccw`) |
//! | nvdimm | none: the s390-ccw-virtio machine has no NVDIMM device, ACPI or NFIT |
//! | `kernel::Arch` | `port` (with `cpu`, `facility`) |
//!
//! The pure parts (SCCB layouts, facility bits, channel-subsystem layouts, the DAT format,
//! the vmemmap walker with the memory-model constants in [`vmemmap`]) compile everywhere
//! and are tested on the host (the walker through the kernel's shared vmemmap suite); the
//! instruction-level parts exist only on the bare target.
#![cfg_attr(target_os = "none", no_std)]

/// Host tests run on the system allocator with the kernel's per-thread heap fault rule.
#[cfg(test)]
#[global_allocator]
static TEST_ALLOC: kernel::heap::HostFaultAlloc = kernel::heap::HostFaultAlloc;

pub mod ccw;
pub mod facility;
pub mod memory_block;
pub mod paging;
pub mod sccb;
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
mod exceptions;
#[cfg(target_os = "none")]
mod hotplug;
#[cfg(target_os = "none")]
mod ipl;
#[cfg(target_os = "none")]
mod kpt;
#[cfg(target_os = "none")]
mod memfill;
#[cfg(target_os = "none")]
mod probe;
#[cfg(target_os = "none")]
mod sclp;

#[cfg(target_os = "none")]
pub use port::S390x;

#[cfg(target_os = "none")]
use port::{init_facilities, record_dat, record_increment};

#[cfg(target_os = "none")]
mod port;
