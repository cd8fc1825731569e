//! virtio-mem-pci on x86: find 1af4:1058 on PCI, map its memory BARs (as the firmware
//! assigned them) uncached in the HHDM, enable memory decoding and bus mastering, build
//! virtio-drivers' `PciTransport` and hand it to the shared virtio-mem driver
//! (`kernel::virtio::mem`), which is itself the event source.
//!
//! The DMA pool is a static 256 KiB array in the kernel image's `.bss` (physically
//! contiguous RAM below 4 GiB, reached through the HHDM), so no buddy pages are needed.

use alloc::boxed::Box;
use alloc::format;
use alloc::vec::Vec;

use kernel::hotplug::event::EventSource;
use kernel::virtio::hal::PoolHal;
use kernel::virtio::mem::VirtioMem;
use kernel::virtio::mem::plan::Granularity;
use kernel::virtio::virtio_drivers::transport::pci::PciTransport;
use kernel::virtio::virtio_drivers::transport::pci::bus::{Command, PciRoot};
use kernel::{Arch, dma};

use crate::pci::{self, PortCam};
use crate::{X86_64, kpt};

const VENDOR_VIRTIO: u16 = 0x1af4;
const DEVICE_VIRTIO_MEM: u16 = 0x1058;
const POOL_PAGES: usize = 64;

#[repr(C, align(4096))]
struct Pool([u8; POOL_PAGES * 4096]);

/// The DMA pool's memory; handed to `kernel::dma` once and used only through it.
static mut POOL: Pool = Pool([0; POOL_PAGES * 4096]);

/// Hands the static pool to `kernel::dma` (once).
fn init_pool() -> bool {
    if dma::ready() {
        return true;
    }
    let Some(pa) = kpt::image_pa(&raw const POOL as u64) else {
        return false;
    };
    dma::init(
        pa..pa + (POOL_PAGES * 4096) as u64,
        <X86_64 as Arch>::phys_to_virt,
    );
    dma::set_direct_map(<X86_64 as Arch>::phys_to_virt(0) as u64, 1 << 46);
    true
}

/// Every virtio-mem-pci device, probed (UNPLUG_ALL of leftovers included).
pub fn sources(granularity: Granularity) -> Vec<Box<dyn EventSource>> {
    let mut out: Vec<Box<dyn EventSource>> = Vec::new();
    let mut root = PciRoot::new(PortCam);
    let found = pci::find(&root, VENDOR_VIRTIO, DEVICE_VIRTIO_MEM);
    if found.is_empty() || !init_pool() {
        return out;
    }
    for (index, df) in found.into_iter().enumerate() {
        let Ok(bars) = root.bars(df) else {
            log::warn!("virtio-mem-pci: {df}: cannot read its BARs");
            continue;
        };
        for (i, bar) in bars.iter().enumerate() {
            if let Some((addr, size)) = bar.as_ref().and_then(|b| b.memory_address_size()) {
                if addr == 0 || size == 0 {
                    continue;
                }
                kpt::map_device(addr, size);
                log::info!("virtio-mem-pci: {df} bar{i}={addr:#x} size={size:#x}");
            }
        }
        root.set_command(df, Command::MEMORY_SPACE | Command::BUS_MASTER);
        let transport = match PciTransport::new::<PoolHal, _>(&mut root, df) {
            Ok(t) => t,
            Err(e) => {
                log::warn!("virtio-mem-pci: {df}: transport refused: {e}");
                continue;
            }
        };
        let name = format!("virtio-mem-pci.{index}");
        match VirtioMem::probe(index as u32, name, transport, granularity) {
            Ok(dev) => out.push(Box::new(dev)),
            Err(e) => log::warn!("virtio-mem-pci: {df}: probe failed: {e}"),
        }
    }
    out
}
