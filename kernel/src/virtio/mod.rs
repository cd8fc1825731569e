//! virtio for the kernel: a [`virtio_drivers::Hal`] over the DMA pool ([`hal::PoolHal`]),
//! a little-endian request queue ([`request_queue`]; virtio-drivers 0.13's `VirtQueue`
//! keeps its rings in native byte order, which big-endian s390x cannot use with
//! VERSION_1), and the virtio-mem driver ([`mem::VirtioMem`]), generic over
//! [`virtio_drivers::transport::Transport`], so one driver serves PCI and CCW.
//!
//! # Using the driver from an arch port
//!
//! 1. Set up the DMA pool once, before probing: [`crate::dma::init`]`(phys, phys_to_virt)`.
//!    On x86_64 and aarch64, take contiguous pages from the buddy allocator (16 pages are
//!    plenty: a virtio-mem device needs one, for its ring and request buffers) and pass
//!    the direct map (`Arch::phys_to_virt`); `PoolHal::mmio_phys_to_virt` (PCI BARs) uses
//!    that map too, so the pool must exist before `PciTransport::new`. Call
//!    [`crate::dma::set_direct_map`] with the HHDM offset if direct-mapped buffers other
//!    than pool memory are ever shared. s390x uses a static pool.
//! 2. Build a transport. PCI: `virtio_drivers::transport::pci::PciTransport::new::<
//!    PoolHal, _>(&mut root, device_function)` for vendor 0x1af4 device 0x1058 (BARs
//!    assigned first). s390x: the port's virtio-ccw transport.
//! 3. `mem::VirtioMem::probe(index, name, transport, memory_block_bytes)`, where
//!    `memory_block_bytes` is `MmArch::section_bytes()` (the unit the engine adds with
//!    memmap_on_memory) and `name` goes into records (e.g. `virtio-mem-pci.0`). It
//!    negotiates VERSION_1 (+ UNPLUGGED_INACCESSIBLE when offered), sets up the request
//!    queue, validates the config (one `virtio-mem: error` line and `Err` for a hostile
//!    one: drop the device, keep running) and UNPLUG_ALLs leftovers.
//! 4. Return it boxed from `Arch::hotplug_sources`: it is an
//!    [`crate::hotplug::event::EventSource`]. Each `poll` re-reads the config (PCI:
//!    fourteen 32-bit reads inside a generation check; CCW: two READ_CONFs) and needs no
//!    interrupt.
//!
//! The crate is re-exported as [`virtio_drivers`] (and `zerocopy`, whose traits bound
//! `Transport::read_config_space`) so arch crates need no dependency of their own.

pub mod hal;
pub mod mem;
pub mod request_queue;

pub use virtio_drivers;
pub use zerocopy;
