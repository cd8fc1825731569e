//! The remove path of [`Hotplug`]: offline every block, check each removable, remove
//! them (the memmap freed through the same altmap) and check the teardown; should a
//! removal fail half-way, the blocks already gone are added back.

use alloc::vec::Vec;
use core::ops::Range;

use crate::hotplug::block::{self, Block};
use crate::mm::addr::PAGE_SIZE;
use crate::mm::altmap::VmemAltmap;
use crate::mm::live::LiveMm;
use crate::mm::vmemmap::VmemmapArch;

use super::{AddTimes, Hotplug, HotplugError, RemoveTimes, Removed};

/// Adds back blocks a failed remove had already removed, each with a fresh altmap (the
/// old one's `align` is never returned, as in Linux), and onlines them as they were.
fn restore<F: VmemmapArch>(mm: &mut LiveMm<F>, blocks: &mut [Block]) {
    for b in blocks {
        if let Some(a) = &mut b.altmap {
            **a = VmemAltmap::new(a.base_pfn, a.end_pfn, a.reserve, a.free);
        }
        if let Err(e) = block::add(mm, b, &mut AddTimes::default()) {
            log::error!(
                "hazard: remove of pfns {:#x}-{:#x} failed half-way and the block could not be added back: {e}",
                b.pfns.start.0,
                b.pfns.end.0
            );
        }
    }
}

impl Hotplug {
    /// Offlines and removes `range`, which must equal a range added before. Either all
    /// of it goes or nothing changes: every block is offlined and checked removable
    /// before the first is removed, and should a removal still fail, the blocks already
    /// gone are added back. After each block the teardown is checked (altmap back to
    /// `alloc == 0`, nothing of it present or mapped); what is left is returned.
    pub fn remove_memory<F: VmemmapArch>(
        &mut self,
        mm: &mut LiveMm<F>,
        range: Range<u64>,
    ) -> Result<Removed, HotplugError> {
        let index = self
            .index_of(&range)
            .ok_or_else(|| HotplugError::NotAdded(range.clone()))?;
        let hot = &mut self.ranges[index];
        let t0 = mm.now_ns();
        for (i, b) in hot.blocks.iter().enumerate() {
            if let Err(e) = block::offline(mm, b) {
                for earlier in &hot.blocks[..i] {
                    block::reonline(mm, earlier);
                }
                return Err(e);
            }
        }
        let t1 = mm.now_ns();
        let checked = hot
            .blocks
            .iter_mut()
            .try_for_each(|b| mm.check_remove(b.pfns.clone(), b.altmap.as_deref_mut()));
        if let Err(e) = checked {
            hot.blocks.iter().for_each(|b| block::reonline(mm, b));
            return Err(e.into());
        }
        let mut leftovers = Vec::new();
        let mut teardown_ns = 0;
        for i in (0..hot.blocks.len()).rev() {
            let b = &mut hot.blocks[i];
            if let Err(e) = block::remove(mm, b) {
                // The blocks after `i` are gone: added back and onlined; those up to `i`
                // are still added, only offline.
                restore(mm, &mut hot.blocks[i + 1..]);
                hot.blocks[..=i].iter().for_each(|b| block::reonline(mm, b));
                return Err(e);
            }
            let t = mm.now_ns();
            if let Err(left) = mm.teardown_check(b.pfns.clone(), b.altmap.as_deref()) {
                // A remove never needs the heap: without room the hazard is logged here.
                if leftovers.try_reserve(1).is_ok() {
                    leftovers.push((b.pfns.clone(), left));
                } else {
                    log::error!(
                        "hazard: remove block={:#x}-{:#x} {left} (not recorded: no heap room)",
                        b.pfns.start.0 * PAGE_SIZE,
                        b.pfns.end.0 * PAGE_SIZE
                    );
                }
            }
            teardown_ns += mm.now_ns().saturating_sub(t);
        }
        let times = RemoveTimes {
            offline_ns: t1.saturating_sub(t0),
            depopulate_ns: mm.now_ns().saturating_sub(t1).saturating_sub(teardown_ns),
            teardown_ns,
        };
        self.unverified.retain(|r| *r != range);
        Ok(Removed {
            hot: self.ranges.remove(index),
            leftovers,
            times,
        })
    }
}
