//! ZONE_DEVICE memory (pmem / NVDIMM regions): Linux's `memremap_pages` with an altmap.
//! The sections are activated and their memmap populated with leaves from the region's
//! own altmap; then the struct pages of the memmap storage and of the data pages are
//! initialised for ZONE_DEVICE. The `reserve` pfns (the info block) stay uninitialised,
//! as in Linux, and walkers skip them.

use core::ops::Range;

use crate::mm::addr::{PAGE_SIZE, Pfn};
use crate::mm::altmap::VmemAltmap;
use crate::mm::error::MmError;
use crate::mm::live::{LiveMemmap, LiveMm};
use crate::mm::memmap::init_with;
use crate::mm::page::{Page, PageFlags, Zone};
use crate::mm::vmemmap::VmemmapArch;

/// A device range that is live: its sections are active and its memmap populated.
#[derive(Clone, Debug)]
pub struct DeviceMemory {
    /// The region this memory belongs to (the pgmap id stored in its pages).
    pub region_id: u32,
    /// Frames of the whole range, reserve and memmap storage included.
    pub range: Range<Pfn>,
    /// The altmap the memmap came from; `alloc`/`align` show what population used.
    pub altmap: VmemAltmap,
}

impl DeviceMemory {
    /// The first data frame: `base_pfn + reserve + free` (`vmem_altmap_offset`).
    pub fn first_data_pfn(&self) -> Pfn {
        Pfn(self.altmap.base_pfn + self.altmap.offset())
    }

    /// The data frames, whose struct pages are ZONE_DEVICE pages of this region.
    pub fn data_pfns(&self) -> Range<Pfn> {
        self.first_data_pfn()..self.range.end
    }

    /// `pgmap_pfn_valid`: whether `pfn` is a data frame (reserve and memmap storage are
    /// not, and their struct pages must not be read as device pages).
    pub fn pfn_valid(&self, pfn: Pfn) -> bool {
        self.data_pfns().contains(&pfn)
    }
}

/// Adds `[start, start + size)` as device memory of region `region_id` with `altmap`.
/// On failure nothing remains of the add (sections, tables, altmap counters).
pub fn add<F: VmemmapArch>(
    mm: &mut LiveMm<F>,
    region_id: u32,
    start: u64,
    size: u64,
    altmap: VmemAltmap,
) -> Result<DeviceMemory, MmError> {
    let device = populate(mm, region_id, start, size, altmap)?;
    init_pages(mm, &device);
    Ok(device)
}

/// The first half of [`add`]: sections activated and memmap populated from the altmap,
/// struct pages not yet initialised (the benchmark times the halves separately).
pub fn populate<F: VmemmapArch>(
    mm: &mut LiveMm<F>,
    region_id: u32,
    start: u64,
    size: u64,
    mut altmap: VmemAltmap,
) -> Result<DeviceMemory, MmError> {
    let range = Pfn(start / PAGE_SIZE)..Pfn((start + size) / PAGE_SIZE);
    if altmap.base_pfn != range.start.0 {
        return Err(MmError::AltmapInvalid(
            "altmap base_pfn is not the start of the range",
        ));
    }
    mm.add(range.clone(), Some(&mut altmap))?;
    Ok(DeviceMemory {
        region_id,
        range,
        altmap,
    })
}

/// The second half of [`add`]: the memmap storage's struct pages initialised (Linux's
/// memmap_init_range for the altmap pages), and the data pages as ZONE_DEVICE pages
/// pointing at their pgmap (memmap_init_zone_device). The reserve pfns stay untouched.
pub fn init_pages<F: VmemmapArch>(mm: &mut LiveMm<F>, device: &DeviceMemory) {
    let arch = mm.arch();
    let memmap = mm.memmap_mut();
    let storage = Pfn(device.altmap.base_pfn + device.altmap.reserve)..device.first_data_pfn();
    init(memmap, arch, storage, PageFlags::RESERVED, 0);
    let pgmap = u64::from(device.region_id) + 1;
    init(memmap, arch, device.data_pfns(), PageFlags::DEVICE, pgmap);
}

/// Removes device memory added by [`add`]: the struct pages are poisoned back to
/// "uninitialised", then the memmap is freed through the same altmap (`alloc` back to 0)
/// and the sections deactivated.
pub fn remove<F: VmemmapArch>(
    mm: &mut LiveMm<F>,
    device: &mut DeviceMemory,
) -> Result<(), MmError> {
    mm.remove(device.range.clone(), Some(&mut device.altmap))
}

/// Fills the struct pages of `range` with a ZONE_DEVICE template.
fn init(
    memmap: &mut LiveMemmap,
    arch: &crate::mm::arch::MmArch,
    range: Range<Pfn>,
    flags: PageFlags,
    pgmap: u64,
) {
    init_with(memmap, arch, range, |section| {
        let mut template = Page::new(Zone::Device, 0, section);
        template.set(flags);
        template.pgmap = pgmap;
        template
    });
}
