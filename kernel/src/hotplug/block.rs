//! One memory block of a hot-added range: its frames, its altmap (memmap_on_memory),
//! the parts of its data kept offline, and the steps that add, online, offline and
//! remove it through the live memory manager.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::ops::{Deref, DerefMut, Range};

use crate::mm::addr::Pfn;
use crate::mm::altmap::VmemAltmap;
use crate::mm::error::MmError;
use crate::mm::live::{LiveMemmap, LiveMm};
use crate::mm::memmap::{FreshPages, MemmapAccess, init_online, init_with};
use crate::mm::page::{Page, PageFlags, Zone};
use crate::mm::sparse::chunks;
use crate::mm::vmemmap::VmemmapArch;

use super::engine::{AddTimes, HotplugError};
use super::parts;

/// A memory block's altmap, on the heap: a block without one (virtio-mem's, whose memmap
/// is in RAM) costs a pointer instead of the altmap's 184 bytes.
#[derive(Clone, Debug)]
pub struct BoxedAltmap(Box<[VmemAltmap; 1]>);

impl BoxedAltmap {
    /// `altmap` moved to the heap, or an error (nothing allocated) when the heap refuses.
    pub fn try_new(altmap: VmemAltmap) -> Result<Self, MmError> {
        let mut one = Vec::new();
        one.try_reserve_exact(1)?;
        one.push(altmap);
        // Length equals capacity: the boxed slice keeps the allocation as it is.
        let boxed: Box<[VmemAltmap; 1]> = one
            .into_boxed_slice()
            .try_into()
            .expect("exactly one altmap");
        Ok(BoxedAltmap(boxed))
    }
}

impl Deref for BoxedAltmap {
    type Target = VmemAltmap;

    fn deref(&self) -> &VmemAltmap {
        &self.0[0]
    }
}

impl DerefMut for BoxedAltmap {
    fn deref_mut(&mut self) -> &mut VmemAltmap {
        &mut self.0[0]
    }
}

/// One memory block of a hot-added range.
#[derive(Clone, Debug)]
pub struct Block {
    /// Frames of the block.
    pub pfns: Range<Pfn>,
    /// Its altmap (memmap_on_memory), if any.
    pub altmap: Option<BoxedAltmap>,
    /// Data frames kept offline and out of the allocator, ascending and disjoint
    /// (virtio-mem sub-blocks not plugged: Linux's `PageOffline` pages).
    pub offline: Vec<Range<Pfn>>,
}

impl Block {
    /// A block of `pfns` with `altmap`, all of its data to be onlined.
    pub fn new(pfns: Range<Pfn>, altmap: Option<BoxedAltmap>) -> Self {
        Block {
            pfns,
            altmap,
            offline: Vec::new(),
        }
    }

    /// Frames that hold the block's own memmap (none without an altmap).
    fn self_hosted(&self) -> u64 {
        self.altmap.as_ref().map_or(0, |a| a.free)
    }

    /// The frames that are RAM for the allocator (online or kept offline).
    pub fn data(&self) -> Range<Pfn> {
        self.pfns.start.add(self.self_hosted())..self.pfns.end
    }

    /// The data frames that are online, ascending (computed without allocating).
    pub fn online_parts(&self) -> impl Iterator<Item = Range<Pfn>> + '_ {
        parts::gaps(self.data(), &self.offline)
    }

    /// Pages onlined into the buddy allocator.
    pub fn online_pages(&self) -> u64 {
        let data = self.data();
        (data.end.0 - data.start.0) - parts::pages(&self.offline)
    }
}

/// Adds `block`: sections and memmap, struct pages initialised in one pass (the
/// self-hosted memmap's as reserved, the kept-offline parts as offline, the rest as
/// online free pages), then the online parts handed to the movable allocator block by
/// block. Each phase's time is added to `times`.
pub fn add<F: VmemmapArch>(
    mm: &mut LiveMm<F>,
    block: &mut Block,
    times: &mut AddTimes,
) -> Result<(), HotplugError> {
    // Room for the handles of the online parts before anything changes.
    let mut fresh: Vec<FreshPages> = Vec::new();
    fresh
        .try_reserve_exact(block.online_parts().count())
        .map_err(MmError::from)?;
    let t0 = mm.now_ns();
    mm.add(block.pfns.clone(), block.altmap.as_deref_mut())?;
    let t1 = mm.now_ns();
    let populate_ns = mm.sparse().last_add_times().populate_ns;
    times.populate_ns += populate_ns;
    times.add_ns += t1.saturating_sub(t0).saturating_sub(populate_ns);
    let arch = mm.arch();
    let hosted = block.pfns.start..block.data().start;
    init_with(mm.memmap_mut(), arch, hosted, |section| {
        let mut page = Page::new(Zone::Movable, 0, section);
        page.set(PageFlags::RESERVED | PageFlags::VMEMMAP_SELF_HOSTED);
        page
    });
    for part in &block.offline {
        init_with(mm.memmap_mut(), arch, part.clone(), |section| {
            let mut page = Page::new(Zone::Movable, 0, section);
            page.set(PageFlags::OFFLINE);
            page
        });
    }
    for part in block.online_parts() {
        fresh.push(init_online(mm.memmap_mut(), arch, part, Zone::Movable, 0));
    }
    let t2 = mm.now_ns();
    times.init_ns += t2.saturating_sub(t1);
    let (buddy, memmap) = mm.movable_and_memmap();
    for (i, pages) in fresh.into_iter().enumerate() {
        if let Err(e) = buddy.online_initialised(memmap, pages) {
            for done in block.online_parts().take(i) {
                let _ = buddy.offline(memmap, done);
            }
            let _ = mm.remove(block.pfns.clone(), block.altmap.as_deref_mut());
            return Err(e.into());
        }
    }
    times.online_ns += mm.now_ns().saturating_sub(t2);
    Ok(())
}

/// Offlines every online part of `block`, or none: a busy page brings the earlier parts
/// back online.
pub fn offline<F: VmemmapArch>(mm: &mut LiveMm<F>, block: &Block) -> Result<(), HotplugError> {
    let (buddy, memmap) = mm.movable_and_memmap();
    for (i, part) in block.online_parts().enumerate() {
        if let Err(e) = buddy.offline(memmap, part) {
            for done in block.online_parts().take(i) {
                let _ = buddy.online(memmap, done);
            }
            return Err(e.into());
        }
    }
    Ok(())
}

/// Onlines every online part of `block` again (undoing [`offline`]).
pub fn reonline<F: VmemmapArch>(mm: &mut LiveMm<F>, block: &Block) {
    let (buddy, memmap) = mm.movable_and_memmap();
    for part in block.online_parts() {
        if let Err(e) = buddy.online(memmap, part.clone()) {
            log::error!(
                "hotplug: re-onlining {:#x}-{:#x} failed: {e:?}",
                part.start.0,
                part.end.0
            );
        }
    }
}

/// Removes `block`, whose data is already offline: memmap freed through its altmap,
/// sections deactivated.
pub fn remove<F: VmemmapArch>(mm: &mut LiveMm<F>, block: &mut Block) -> Result<(), HotplugError> {
    mm.remove(block.pfns.clone(), block.altmap.as_deref_mut())?;
    Ok(())
}

/// Marks the struct pages of `range` as kept offline (`PageOffline`) or clears the mark.
pub fn set_offline(memmap: &mut LiveMemmap, range: Range<Pfn>, offline: bool) {
    if range.start >= range.end {
        return;
    }
    for chunk in chunks(memmap.arch(), range.start, range.end) {
        for page in memmap.pages_mut(chunk.first, chunk.nr_pages as usize) {
            if offline {
                page.set(PageFlags::OFFLINE);
            } else {
                page.clear(PageFlags::OFFLINE);
            }
        }
    }
}
