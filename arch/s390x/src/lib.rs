//! The s390x port: IPL entry, lowcore new PSWs, SCLP console and memory discovery,
//! STFLE facilities, DIAG 0x500, the DAT table format, and the disabled-wait exit.
//!
//! The pure parts (SCCB layouts, facility bits, the DAT format, the vmemmap walker with
//! the memory-model constants in [`vmemmap`]) compile everywhere and are tested on the
//! host (the walker through the kernel's shared vmemmap suite); the instruction-level
//! parts exist only on the bare target.
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
mod cpu;
#[cfg(target_os = "none")]
mod dat;
#[cfg(target_os = "none")]
mod ipl;
#[cfg(target_os = "none")]
mod lowcore;
#[cfg(target_os = "none")]
mod memfill;
#[cfg(target_os = "none")]
mod sclp;

#[cfg(target_os = "none")]
pub use port::S390x;

#[cfg(target_os = "none")]
use port::{init_facilities, record_dat, record_increment};

#[cfg(target_os = "none")]
mod port;
