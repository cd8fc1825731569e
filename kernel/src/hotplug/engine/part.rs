//! Onlining and offlining a part of an added range, the range staying added (Linux's
//! virtio-mem fake-online / fake-offline): finding the part's block, the checks that
//! it is wholly offline (online), and the offline-part list kept in step.

use core::ops::Range;

use crate::hotplug::{block, parts};
use crate::mm::addr::{PAGE_SIZE, Pfn};
use crate::mm::error::MmError;
use crate::mm::live::LiveMm;
use crate::mm::vmemmap::VmemmapArch;

use super::{HotRange, Hotplug, HotplugError};

impl Hotplug {
    /// Onlines `part`, which must lie inside one memory block of an added range and be
    /// wholly offline there. Returns the range it belongs to.
    pub fn online_part<F: VmemmapArch>(
        &mut self,
        mm: &mut LiveMm<F>,
        part: Range<u64>,
    ) -> Result<&HotRange, HotplugError> {
        let (r, b, pfns) = self.find_part(&part)?;
        let blk = &self.ranges[r].blocks[b];
        if !parts::covers(&blk.offline, &pfns) {
            return Err(HotplugError::BadPart {
                why: "not wholly offline",
            });
        }
        // Room for the split the part may cause, before anything changes.
        let offline = &mut self.ranges[r].blocks[b].offline;
        offline.try_reserve(1).map_err(MmError::from)?;
        block::set_offline(mm.memmap_mut(), pfns.clone(), false);
        let (buddy, memmap) = mm.movable_and_memmap();
        if let Err(e) = buddy.online(memmap, pfns.clone()) {
            block::set_offline(mm.memmap_mut(), pfns, true);
            return Err(e.into());
        }
        parts::remove(&mut self.ranges[r].blocks[b].offline, &pfns).expect("room reserved above");
        Ok(&self.ranges[r])
    }

    /// Takes `part` offline (every page must be free), keeping its range added. `part`
    /// must lie inside one memory block of an added range and be wholly online there.
    pub fn offline_part<F: VmemmapArch>(
        &mut self,
        mm: &mut LiveMm<F>,
        part: Range<u64>,
    ) -> Result<&HotRange, HotplugError> {
        let (r, b, pfns) = self.find_part(&part)?;
        let blk = &self.ranges[r].blocks[b];
        if !parts::disjoint(&blk.offline, &pfns) {
            return Err(HotplugError::BadPart {
                why: "not wholly online",
            });
        }
        // Room for the part in the offline list, before anything changes.
        let offline = &mut self.ranges[r].blocks[b].offline;
        offline.try_reserve(1).map_err(MmError::from)?;
        let (buddy, memmap) = mm.movable_and_memmap();
        buddy.offline(memmap, pfns.clone())?;
        block::set_offline(mm.memmap_mut(), pfns.clone(), true);
        parts::insert(&mut self.ranges[r].blocks[b].offline, pfns).expect("room reserved above");
        Ok(&self.ranges[r])
    }

    /// The range, block and frames of `part`, which must be page-aligned, non-empty and
    /// inside the data of one block of a live range.
    fn find_part(&self, part: &Range<u64>) -> Result<(usize, usize, Range<Pfn>), HotplugError> {
        let aligned = part.start.is_multiple_of(PAGE_SIZE) && part.end.is_multiple_of(PAGE_SIZE);
        if !aligned || part.start >= part.end {
            return Err(HotplugError::BadPart {
                why: "empty or not page-aligned",
            });
        }
        let pfns = Pfn(part.start / PAGE_SIZE)..Pfn(part.end / PAGE_SIZE);
        let r = self
            .index_containing(part)
            .ok_or_else(|| HotplugError::NotAdded(part.clone()))?;
        let b = self.ranges[r]
            .blocks
            .iter()
            .position(|b| b.data().start <= pfns.start && pfns.end <= b.data().end)
            .ok_or(HotplugError::BadPart {
                why: "not inside the data of one memory block",
            })?;
        Ok((r, b, pfns))
    }
}
