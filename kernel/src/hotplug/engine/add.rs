//! The add path of [`Hotplug`]: checking the range (whole memory blocks, nothing live),
//! planning its memory blocks (an altmap each when memmap_on_memory applies, offline
//! parts for a partial add), adding them one by one and the sampled check before the
//! range is reported online. A failure undoes the blocks already added.

use alloc::vec::Vec;
use core::ops::Range;

use crate::hotplug::block::{self, Block, BoxedAltmap};
use crate::hotplug::event::Via;
use crate::hotplug::parts;
use crate::mm::addr::{PAGE_SIZE, Pfn};
use crate::mm::error::MmError;
use crate::mm::live::LiveMm;
use crate::mm::memmap_on_memory::memmap_on_memory_altmap;
use crate::mm::vmemmap::VmemmapArch;

use super::{AddTimes, HotRange, Hotplug, HotplugError, MemmapFrom};

impl Hotplug {
    /// Adds `range`, onlining all of it, or with `online`, only that part (see the module
    /// header).
    pub fn add_memory<F: VmemmapArch>(
        &mut self,
        mm: &mut LiveMm<F>,
        range: Range<u64>,
        via: Via,
        online: Option<Range<u64>>,
    ) -> Result<&HotRange, HotplugError> {
        let t0 = mm.now_ns();
        if !self.block.whole_blocks(range.start, range.end) {
            return Err(HotplugError::Misaligned {
                block: self.block.bytes,
            });
        }
        if let Some(part) = &online {
            let inside = range.start <= part.start && part.start <= part.end;
            let aligned =
                part.start.is_multiple_of(PAGE_SIZE) && part.end.is_multiple_of(PAGE_SIZE);
            if !inside || part.end > range.end || !aligned {
                return Err(HotplugError::BadPart {
                    why: "online part not page-aligned inside the range",
                });
            }
        }
        self.check_free(mm, &range)?;
        let on_memory = online.is_none() && via.memmap_on_memory();
        // Room for the records an add keeps, reserved before anything changes.
        self.ranges.try_reserve(1).map_err(MmError::from)?;
        self.unverified.try_reserve(1).map_err(MmError::from)?;
        let blocks = self.plan(mm, &range, on_memory, online.as_ref())?;
        let memmap = if blocks.iter().all(|b| b.altmap.is_some()) {
            MemmapFrom::Altmap
        } else {
            MemmapFrom::Ram
        };
        let mut times = AddTimes {
            add_ns: mm.now_ns().saturating_sub(t0),
            ..AddTimes::default()
        };
        let mut done: Vec<Block> = Vec::new();
        done.try_reserve_exact(blocks.len())
            .map_err(MmError::from)?;
        for mut b in blocks {
            if let Err(e) = block::add(mm, &mut b, &mut times) {
                for mut earlier in done.into_iter().rev() {
                    let _ = block::offline(mm, &earlier);
                    let _ = block::remove(mm, &mut earlier);
                }
                return Err(e);
            }
            done.push(b);
        }
        let t1 = mm.now_ns();
        let arch = mm.arch();
        let sampled = crate::hotplug::verify_ram::sample(mm.memmap_mut(), arch, &done);
        times.verify_ns = mm.now_ns().saturating_sub(t1);
        if !sampled.passed() {
            for mut b in done.into_iter().rev() {
                let _ = block::offline(mm, &b);
                let _ = block::remove(mm, &mut b);
            }
            return Err(HotplugError::Verify(sampled));
        }
        self.unverified.push_back(range.clone());
        self.last_add = times;
        let at = self.ranges.partition_point(|r| r.range.start < range.start);
        self.ranges.insert(
            at,
            HotRange {
                range,
                via,
                memmap,
                blocks: done,
                verified: None,
            },
        );
        Ok(&self.ranges[at])
    }

    /// Memory blocks of `range`, with an altmap each when memmap_on_memory applies, and
    /// everything outside `online` (if given) kept offline. The list is allocated
    /// fallibly (a refused heap allocation refuses the add).
    fn plan<F: VmemmapArch>(
        &self,
        mm: &LiveMm<F>,
        range: &Range<u64>,
        on_memory: bool,
        online: Option<&Range<u64>>,
    ) -> Result<Vec<Block>, HotplugError> {
        let arch = mm.arch();
        let bytes = self.block.bytes;
        let altmap = |first: Pfn| {
            on_memory
                .then(|| memmap_on_memory_altmap(arch, first, bytes, self.mode).ok())
                .flatten()
        };
        let count = ((range.end - range.start) / bytes) as usize;
        let first_of = |i: usize| Pfn((range.start + i as u64 * bytes) / PAGE_SIZE);
        // Linux refuses to mix blocks with and without an altmap in one range.
        let every_block_hosts = (0..count).all(|i| altmap(first_of(i)).is_some());
        let mut blocks = Vec::new();
        blocks.try_reserve_exact(count).map_err(MmError::from)?;
        for i in 0..count {
            let first = first_of(i);
            let hosted = if every_block_hosts {
                altmap(first).map(BoxedAltmap::try_new).transpose()?
            } else {
                None
            };
            let mut b = Block::new(first..first.add(bytes / PAGE_SIZE), hosted);
            if let Some(part) = online {
                let keep = Pfn(part.start / PAGE_SIZE)..Pfn(part.end / PAGE_SIZE);
                b.offline = parts::complement(b.data(), core::slice::from_ref(&keep))?;
            }
            blocks.push(b);
        }
        Ok(blocks)
    }

    /// Refuses a range that overlaps an earlier add or anything with a memmap.
    fn check_free<F: VmemmapArch>(
        &self,
        mm: &LiveMm<F>,
        range: &Range<u64>,
    ) -> Result<(), HotplugError> {
        // The ranges are disjoint and ascending: the first ending above `range.start`
        // is the only one that can overlap first.
        let first_above = self.ranges.partition_point(|r| r.range.end <= range.start);
        if let Some(r) = self
            .ranges
            .get(first_above)
            .filter(|r| r.range.start < range.end)
        {
            return Err(HotplugError::Overlap {
                at: r.range.start.max(range.start),
            });
        }
        let step = mm.arch().pages_per_subsection() * PAGE_SIZE;
        for at in (range.start..range.end).step_by(step as usize) {
            if mm.sparse().pfn_valid(Pfn(at / PAGE_SIZE)) {
                return Err(HotplugError::Overlap { at });
            }
        }
        Ok(())
    }
}
