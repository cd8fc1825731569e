//! The scan: every subchannel of set 0 (STSCH until a run of absent numbers), SENSE ID
//! on each, and a virtio-mem driver for each virtio-mem device (cu 0x3832, model 24).

extern crate alloc;

use alloc::boxed::Box;
use alloc::format;
use alloc::vec::Vec;

use kernel::Arch;
use kernel::BootInfo;
use kernel::hotplug::event::EventSource;
use kernel::virtio::mem::VirtioMem;
use kernel::virtio::mem::plan::Granularity;

use super::css::{self, Subchannel};
use super::layout::{self, CCW_FLAG_SLI, SenseId};
use super::transport::CcwTransport;

/// Bytes of the DMA pool (64 pages: about 4 per virtio-mem device plus scan pages).
const POOL_BYTES: usize = 256 << 10;
/// Stop scanning after this many absent subchannel numbers in a row.
const SCAN_GAP: u32 = 256;

#[repr(C, align(4096))]
struct Arena([u8; POOL_BYTES]);

static mut POOL: Arena = Arena([0; POOL_BYTES]);

/// Sets up the DMA pool (the image is below 2 GiB and identity-mapped) and declares the
/// identity map of RAM as the direct map.
fn init_dma(boot: &BootInfo) {
    if kernel::dma::ready() {
        return;
    }
    let base = (&raw mut POOL) as u64;
    kernel::dma::init(base..base + POOL_BYTES as u64, |pa| pa as *mut u8);
    kernel::dma::set_direct_map(0, boot.memory.ram_end());
}

/// Probes every virtio-mem-ccw device; each becomes an event source.
pub fn virtio_mem_sources(boot: &BootInfo) -> Vec<Box<dyn EventSource>> {
    init_dma(boot);
    let block = <crate::S390x as Arch>::memory_block(boot);
    let granularity = Granularity::new(block, &crate::vmemmap::MM);
    css::enable_isc(layout::ISC);
    let mut sources: Vec<Box<dyn EventSource>> = Vec::new();
    let mut gap = 0;
    for schno in 0..=u16::MAX {
        let id = layout::schid(schno);
        let Some(schib) = css::stsch(id) else {
            gap += 1;
            if gap >= SCAN_GAP {
                break;
            }
            continue;
        };
        gap = 0;
        let pmcw = layout::Pmcw::decode(&schib);
        if !pmcw.valid() {
            continue;
        }
        if let Some(source) = probe_one(id, pmcw.devno, sources.len() as u32, granularity) {
            sources.push(source);
        }
    }
    sources
}

/// Enables one subchannel and takes it if it is virtio-mem.
fn probe_one(
    id: u32,
    devno: u16,
    index: u32,
    granularity: Granularity,
) -> Option<Box<dyn EventSource>> {
    let sch = Subchannel::enable(id)?;
    let mut data = [0u8; 8];
    let sense = sch
        .run(layout::CMD_SENSE_ID, CCW_FLAG_SLI, &[], 256, &mut data)
        .ok()
        .and_then(|_| SenseId::decode(&data));
    log::info!(
        "ccw: subchannel={id:#x} devno={devno:#06x} cu={:#06x} model={}",
        sense.map_or(0, |s| s.cu_type),
        sense.map_or(0, |s| s.cu_model)
    );
    let Some(sense) = sense.filter(SenseId::is_virtio_mem) else {
        sch.disable();
        return None;
    };
    let transport = match CcwTransport::new(sch, sense) {
        Ok(t) => t,
        Err(sch) => {
            sch.disable();
            return None;
        }
    };
    let name = format!("virtio-mem-ccw.{index}");
    let driver = VirtioMem::probe(index, name, transport, granularity).ok()?;
    Some(Box::new(driver))
}
