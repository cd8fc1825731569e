//! The channel subsystem and virtio-ccw: find the virtio-mem devices on subchannel set 0
//! and hand them, over a virtio-ccw transport, to the kernel's virtio-mem driver.
//!
//! Channel programs and their data must lie below 2 GiB and are addressed physically:
//! they, the virtqueues and the request buffers all come from the kernel's DMA pool,
//! which this port fills with a page-aligned static of its (low, identity-mapped) image.

pub mod layout;

#[cfg(target_os = "none")]
mod css;
#[cfg(target_os = "none")]
mod transport;

#[cfg(target_os = "none")]
pub use probe::virtio_mem_sources;

#[cfg(target_os = "none")]
mod probe;
