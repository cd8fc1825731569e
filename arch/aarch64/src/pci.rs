//! virtio-mem-pci on QEMU `virt`: PCI ECAM bus 0 as a `virtio-drivers` configuration
//! access, BAR assignment when firmware left a BAR unassigned (a `-kernel` boot, or a
//! device UEFI had no driver for), the BARs mapped as device memory, and one
//! [`kernel::virtio::mem::VirtioMem`] source per 1af4:1058 function.
//!
//! BARs go into the host bridge's windows: from the DT's `ranges` on an FDT boot, else
//! QEMU `virt`'s fixed ones (`base_memmap[VIRT_PCIE_MMIO]` 0x10000000-0x3efeffff and
//! `VIRT_HIGH_PCIE_MMIO` at 512 GiB), above every BAR already assigned on the bus.

use alloc::boxed::Box;
use alloc::format;
use alloc::vec::Vec;
use core::ops::Range;

use kernel::hotplug::event::EventSource;
use kernel::virtio::hal::PoolHal;
use kernel::virtio::mem::VirtioMem;
use kernel::virtio::mem::plan::Granularity;
use kernel::virtio::virtio_drivers::transport::pci::PciTransport;
use kernel::virtio::virtio_drivers::transport::pci::bus::{
    BarInfo, Command, ConfigurationAccess, DeviceFunction, MemoryBarType, PciRoot,
};

use crate::mmio::Mmio;
use crate::{kpt, port};

/// Bytes of ECAM per bus (32 devices x 8 functions x 4 KiB).
const ECAM_BUS_BYTES: u64 = 1 << 20;
/// virtio-mem-pci (modern only).
const VIRTIO_VENDOR: u16 = 0x1af4;
const VIRTIO_MEM_DEVICE: u16 = 0x1058;
/// QEMU `virt`'s windows, used when the DT does not give them.
pub const VIRT_MEM32: Range<u64> = 0x1000_0000..0x3eff_0000;
/// The 64-bit window (512 GiB at 512 GiB, QEMU `virt` highmem).
pub const VIRT_MEM64: Range<u64> = 0x80_0000_0000..0x100_0000_0000;
/// Pages of the DMA pool (rings and request buffers) in `.bss`.
const DMA_PAGES: usize = 64;

#[repr(C, align(4096))]
struct DmaPool([u8; DMA_PAGES * 4096]);

/// Backing of the DMA pool; reached only through `kernel::dma` after `dma::init`.
static mut DMA_POOL: DmaPool = DmaPool([0; DMA_PAGES * 4096]);

/// The host bridge's memory windows.
#[derive(Clone, Debug)]
pub struct Windows {
    /// 32-bit non-prefetchable window.
    pub mem32: Range<u64>,
    /// 64-bit window.
    pub mem64: Option<Range<u64>>,
    /// Where they came from (`dt` or `virt`).
    pub source: &'static str,
}

impl Windows {
    /// QEMU `virt`'s fixed windows.
    pub fn virt() -> Windows {
        Windows {
            mem32: VIRT_MEM32,
            mem64: Some(VIRT_MEM64),
            source: "virt",
        }
    }

    /// The windows of the DT's `pci-host-ecam-generic` node (`ranges`: 3 child address
    /// cells, 2 parent, 2 size), or `None` if it has no memory window.
    pub fn from_dtb(dtb: &[u8]) -> Option<Windows> {
        let fdt = fdt::Fdt::new(dtb).ok()?;
        let node = fdt.find_compatible(&["pci-host-ecam-generic"])?;
        let ranges = node.property("ranges")?.value;
        let cell = |b: &[u8]| u64::from(u32::from_be_bytes(b.try_into().unwrap_or([0; 4])));
        let mut w = Windows {
            mem32: 0..0,
            mem64: None,
            source: "dt",
        };
        for e in ranges.chunks_exact(28) {
            let space = (cell(&e[0..4]) >> 24) & 3;
            let cpu = cell(&e[12..16]) << 32 | cell(&e[16..20]);
            let size = cell(&e[20..24]) << 32 | cell(&e[24..28]);
            match space {
                2 => w.mem32 = cpu..cpu + size,
                3 => w.mem64 = Some(cpu..cpu + size),
                _ => {}
            }
        }
        (!w.mem32.is_empty() || w.mem64.is_some()).then_some(w)
    }
}

/// ECAM of bus 0 (the only bus `virt`'s pcie.0 devices are on) over MMIO.
struct Ecam(Mmio);

impl ConfigurationAccess for Ecam {
    fn read_word(&self, df: DeviceFunction, offset: u8) -> u32 {
        match Self::offset(df, offset) {
            Some(at) => self.0.read32(at),
            None => u32::MAX,
        }
    }

    fn write_word(&mut self, df: DeviceFunction, offset: u8, data: u32) {
        if let Some(at) = Self::offset(df, offset) {
            self.0.write32(at, data);
        }
    }

    unsafe fn unsafe_clone(&self) -> Self {
        Ecam(self.0)
    }
}

impl Ecam {
    fn offset(df: DeviceFunction, offset: u8) -> Option<u64> {
        (df.bus == 0 && df.valid()).then(|| {
            u64::from(df.device) << 15 | u64::from(df.function) << 12 | u64::from(offset & !3)
        })
    }
}

/// A bump allocator over the windows, above every BAR already assigned.
struct BarAlloc {
    next32: u64,
    end32: u64,
    next64: Option<(u64, u64)>,
}

impl BarAlloc {
    fn new(w: &Windows) -> BarAlloc {
        BarAlloc {
            next32: w.mem32.start,
            end32: w.mem32.end,
            next64: w.mem64.as_ref().map(|r| (r.start, r.end)),
        }
    }

    /// Moves past an assigned BAR `[addr, addr + size)`.
    fn reserve(&mut self, addr: u64, size: u64) {
        if (self.next32..self.end32).contains(&addr) {
            self.next32 = self.next32.max(addr + size);
        }
        if let Some((next, end)) = self.next64.as_mut()
            && (*next..*end).contains(&addr)
        {
            *next = (*next).max(addr + size);
        }
    }

    /// A naturally aligned place for a BAR of `size` bytes.
    fn take(&mut self, size: u64, wide: bool) -> Option<u64> {
        let size = size.max(0x1000);
        if wide && let Some((next, end)) = self.next64.as_mut() {
            let at = next.next_multiple_of(size);
            if at + size <= *end {
                *next = at + size;
                return Some(at);
            }
        }
        let at = self.next32.next_multiple_of(size);
        (at + size <= self.end32).then(|| {
            self.next32 = at + size;
            at
        })
    }
}

/// Hands the `.bss` pool to `kernel::dma` (once).
fn dma_pool() -> bool {
    if kernel::dma::ready() {
        return true;
    }
    let Some(pa) = kpt::image_pa(&raw const DMA_POOL as u64) else {
        return false;
    };
    kernel::dma::init(pa..pa + (DMA_PAGES * 4096) as u64, port::phys_to_virt);
    kernel::dma::set_direct_map(port::hhdm(), 1 << 47);
    true
}

/// Every virtio-mem-pci device on bus 0 of the ECAM at `ecam`, as event sources. With
/// `reassign`, their BARs are placed anew even where firmware assigned them
/// (`pci.reassign=1`: firmware always assigns under AAVMF, this proves our own placement).
pub fn virtio_mem_sources(
    ecam: u64,
    windows: &Windows,
    reassign: bool,
    out: &mut Vec<Box<dyn EventSource>>,
) {
    if let Err(e) = kpt::map_device(ecam, ECAM_BUS_BYTES) {
        log::error!("pci: mapping ECAM {ecam:#x} failed ({e:?})");
        return;
    }
    // SAFETY: bus 0 of the ECAM firmware described, mapped as device memory just above.
    let mut root = PciRoot::new(Ecam(unsafe { Mmio::new(ecam, ECAM_BUS_BYTES) }));
    let functions: Vec<_> = root.enumerate_bus(0).collect();
    let mut bars = BarAlloc::new(windows);
    for (df, _) in &functions {
        for bar in root.bars(*df).into_iter().flatten().flatten() {
            if let Some((addr, size)) = bar.memory_address_size()
                && addr != 0
            {
                bars.reserve(addr, size);
            }
        }
    }
    let mut index = 0;
    for (df, info) in functions {
        if (info.vendor_id, info.device_id) != (VIRTIO_VENDOR, VIRTIO_MEM_DEVICE) {
            continue;
        }
        if !dma_pool() {
            log::error!("pci: no DMA pool; virtio-mem at {df} ignored");
            return;
        }
        if let Err(e) = assign_bars(&mut root, df, &mut bars, reassign) {
            log::error!("pci: {df} BARs: {e}; device ignored");
            continue;
        }
        let transport = match PciTransport::new::<PoolHal, _>(&mut root, df) {
            Ok(t) => t,
            Err(e) => {
                log::error!("pci: {df} virtio transport: {e:?}; device ignored");
                continue;
            }
        };
        let name = format!("virtio-mem-pci.{index}");
        let granularity = Granularity::new(crate::memory_block::size(), &crate::vmemmap::MM);
        if let Ok(dev) = VirtioMem::probe(index, name, transport, granularity) {
            out.push(Box::new(dev));
            index += 1;
        }
    }
}

/// Gives every unassigned memory BAR of `df` a place in the windows, maps every memory
/// BAR as device memory and turns on memory decoding and bus mastering.
fn assign_bars(
    root: &mut PciRoot<Ecam>,
    df: DeviceFunction,
    alloc: &mut BarAlloc,
    reassign: bool,
) -> Result<(), alloc::string::String> {
    let bars = root.bars(df).map_err(|e| format!("{e:?}"))?;
    let (_, command) = root.get_status_command(df);
    root.set_command(df, command & !(Command::MEMORY_SPACE | Command::BUS_MASTER));
    for (i, bar) in bars.iter().enumerate() {
        let Some(BarInfo::Memory {
            address_type,
            address,
            size,
            ..
        }) = bar
        else {
            continue;
        };
        let (wide, mut addr) = (*address_type == MemoryBarType::Width64, *address);
        let how = if addr == 0 || reassign {
            addr = alloc
                .take(*size, wide)
                .ok_or_else(|| format!("no window room for BAR{i} of {size:#x}"))?;
            if wide {
                root.set_bar_64(df, i as u8, addr);
            } else {
                root.set_bar_32(df, i as u8, addr as u32);
            }
            if reassign {
                "kernel(reassign)"
            } else {
                "kernel"
            }
        } else {
            "firmware"
        };
        kpt::map_device(addr, *size).map_err(|e| format!("mapping BAR{i}: {e:?}"))?;
        log::info!(
            "pci: {df} bar{i} addr={addr:#x} size={size:#x} width={} by={how}",
            if wide { 64 } else { 32 }
        );
    }
    root.set_command(df, command | Command::MEMORY_SPACE | Command::BUS_MASTER);
    Ok(())
}
