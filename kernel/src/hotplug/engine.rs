//! The one `add_memory` / `remove_memory` path for hot-plugged RAM (pc-dimm, virtio-mem).
//!
//! Add: the range must be 2 MiB-aligned and overlap nothing live. When it is a whole
//! number of memory blocks (one section each) and memmap_on_memory is on, each block's
//! altmap is carved from its own start under Linux's rules (memmap pages page- and
//! pageblock-aligned, not the whole block) and the memmap lives in the block itself;
//! otherwise the memmap comes from RAM and the record says `memmap=ram`. The rest of each
//! block is onlined into the buddy allocator: its struct pages are written online in the
//! one init pass, then handed over block by block.
//!
//! Remove: every data page must be free (else the remove is refused and nothing
//! changes); the pages are offlined, the memmap freed through the same altmap (which
//! must end at `alloc == 0`), the sections deactivated and empty tables freed.
//!
//! Hot-added RAM is onlined into the movable allocator (Linux's ZONE_MOVABLE): it is not
//! in the direct map, so page tables and other kernel memory never come from it.

use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;

use crate::mm::addr::{PAGE_SIZE, Pfn};
use crate::mm::altmap::VmemAltmap;
use crate::mm::error::MmError;
use crate::mm::live::LiveMm;
use crate::mm::memmap::{MemmapAccess, init_online, init_with};
use crate::mm::memmap_on_memory::{MemmapOnMemoryMode, memmap_on_memory_altmap};
use crate::mm::page::{Page, PageFlags, Zone};
use crate::mm::vmemmap::VmemmapArch;

use super::event::Via;
use super::verify_ram::RamReport;

/// Hot-added memory is added and removed in 2 MiB (subsection) units at least.
pub const HOTPLUG_ALIGN: u64 = 2 << 20;

/// Why an add or remove was refused. Nothing changed in every case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HotplugError {
    /// Start or end not 2 MiB-aligned, or an empty range.
    Misaligned(Range<u64>),
    /// Part of the range is already live (boot RAM, a device region, an earlier add).
    Overlap {
        /// The first 2 MiB subsection found live.
        at: u64,
    },
    /// No earlier add has exactly this range.
    NotAdded(Range<u64>),
    /// A page of the range is in use; the memory stays online.
    Busy {
        /// The first busy frame.
        pfn: u64,
    },
    /// The memory manager refused (out of memory, altmap exhausted, ...).
    Mm(MmError),
    /// The memory manager is down (boot RAM bring-up failed).
    NoMm,
    /// The sampled check through the MMU failed; the add was undone.
    Verify(RamReport),
}

impl fmt::Display for HotplugError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HotplugError::Misaligned(r) => write!(
                f,
                "reason=misaligned range={:#x}-{:#x} align=0x200000",
                r.start, r.end
            ),
            HotplugError::Overlap { at } => write!(f, "reason=overlap at={at:#x}"),
            // The refusal record names the range already.
            HotplugError::NotAdded(_) => {
                write!(f, "reason=not-added")
            }
            HotplugError::Busy { pfn } => write!(f, "reason=busy pfn={pfn:#x}"),
            HotplugError::Mm(e) => write!(f, "reason=mm errno={} detail={e:?}", e.errno()),
            HotplugError::NoMm => write!(f, "reason=no-memory-manager"),
            HotplugError::Verify(r) => write!(
                f,
                "reason=verify pages={} state.failures={} rw.failures={}",
                r.pages, r.state_failures, r.rw_failures
            ),
        }
    }
}

impl From<MmError> for HotplugError {
    fn from(e: MmError) -> Self {
        match e {
            MmError::Busy(pfn) => HotplugError::Busy { pfn: pfn.0 },
            other => HotplugError::Mm(other),
        }
    }
}

/// Where a hot-added range's memmap lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemmapFrom {
    /// In the range itself (memmap_on_memory, one altmap per memory block).
    Altmap,
    /// In RAM (the range is not whole memory blocks, or memmap_on_memory is off).
    Ram,
}

/// One memory block of a hot-added range.
#[derive(Clone, Debug)]
pub struct Block {
    /// Frames of the block.
    pub pfns: Range<Pfn>,
    /// Its altmap (memmap_on_memory), if any.
    pub altmap: Option<VmemAltmap>,
}

impl Block {
    /// Frames that hold the block's own memmap (none without an altmap).
    fn self_hosted(&self) -> u64 {
        self.altmap.as_ref().map_or(0, |a| a.free)
    }

    /// The frames onlined into the buddy allocator.
    pub fn data(&self) -> Range<Pfn> {
        self.pfns.start.add(self.self_hosted())..self.pfns.end
    }
}

/// Where one hot-add spent its time, in nanoseconds: the `us.*` fields of its `online`
/// record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AddTimes {
    /// Range checks, memory-block planning, subsection activation and the TLB flush.
    pub add_ns: u64,
    /// vmemmap populate: tables and leaves.
    pub populate_ns: u64,
    /// Struct-page initialisation.
    pub init_ns: u64,
    /// Handing the data pages to the buddy allocator.
    pub online_ns: u64,
    /// Checks made before the range is reported online.
    pub verify_ns: u64,
}

/// Where one hot-remove spent its time, in nanoseconds: the `us.*` fields of its
/// `remove` record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RemoveTimes {
    /// Taking the data pages back from the buddy allocator.
    pub offline_ns: u64,
    /// Freeing the memmap (leaves back to the altmap, empty tables) and deactivating the
    /// subsections.
    pub depopulate_ns: u64,
}

/// A live hot-added range.
#[derive(Clone, Debug)]
pub struct HotRange {
    /// Physical range.
    pub range: Range<u64>,
    /// Who added it.
    pub via: Via,
    /// Where its memmap lives.
    pub memmap: MemmapFrom,
    /// Its memory blocks (one when the memmap is in RAM).
    pub blocks: Vec<Block>,
    /// Where its add spent its time.
    pub times: AddTimes,
    /// The last full verification ([`super::verify_ram::verify`]); `None` until it ran.
    pub verified: Option<RamReport>,
}

impl HotRange {
    /// Pages onlined into the buddy allocator.
    pub fn online_pages(&self) -> u64 {
        self.blocks
            .iter()
            .map(|b| b.data().end.0 - b.data().start.0)
            .sum()
    }

    /// Sum of `alloc` and of `align` over the blocks' altmaps.
    pub fn altmap_totals(&self) -> (u64, u64) {
        self.blocks
            .iter()
            .filter_map(|b| b.altmap.as_ref())
            .fold((0, 0), |(al, pad), a| (al + a.alloc, pad + a.align))
    }
}

/// Every hot-added range, and the memmap_on_memory setting.
pub struct Hotplug {
    ranges: Vec<HotRange>,
    mode: MemmapOnMemoryMode,
    unverified: Vec<Range<u64>>,
}

impl Hotplug {
    /// No hot-added memory yet; `mode` is `memory_hotplug.memmap_on_memory`.
    pub fn new(mode: MemmapOnMemoryMode) -> Self {
        Hotplug {
            ranges: Vec::new(),
            mode,
            unverified: Vec::new(),
        }
    }

    /// The live ranges, in the order they were added.
    pub fn ranges(&self) -> &[HotRange] {
        &self.ranges
    }

    /// The memmap_on_memory setting.
    pub fn mode(&self) -> MemmapOnMemoryMode {
        self.mode
    }

    /// Ranges added since the last call whose full verification is still to run (the
    /// dispatcher runs it once their events are done and acknowledged).
    pub fn take_unverified(&mut self) -> Vec<Range<u64>> {
        core::mem::take(&mut self.unverified)
    }

    /// Runs the full verification of the live range `range` now and keeps its report.
    pub fn verify<F: VmemmapArch>(
        &mut self,
        mm: &mut LiveMm<F>,
        range: &Range<u64>,
    ) -> Option<RamReport> {
        let hot = self.ranges.iter_mut().find(|r| r.range == *range)?;
        let report = super::verify_ram::verify(mm, hot);
        hot.verified = Some(report);
        Some(report)
    }

    /// Adds and onlines `range` (see the module header).
    pub fn add_memory<F: VmemmapArch>(
        &mut self,
        mm: &mut LiveMm<F>,
        range: Range<u64>,
        via: Via,
    ) -> Result<&HotRange, HotplugError> {
        let t0 = mm.now_ns();
        check_aligned(&range)?;
        self.check_free(mm, &range)?;
        let blocks = self.plan(mm, &range);
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
        for mut block in blocks {
            if let Err(e) = add_block(mm, &mut block, &mut times) {
                for mut earlier in done.into_iter().rev() {
                    let _ = remove_block(mm, &mut earlier);
                }
                return Err(e);
            }
            done.push(block);
        }
        let t1 = mm.now_ns();
        let arch = mm.arch();
        let sampled = super::verify_ram::sample(mm.memmap_mut(), arch, &done);
        times.verify_ns = mm.now_ns().saturating_sub(t1);
        if !sampled.passed() {
            let _ = offline_all(mm, &done);
            for mut block in done.into_iter().rev() {
                let _ = remove_block(mm, &mut block);
            }
            return Err(HotplugError::Verify(sampled));
        }
        self.unverified.push(range.clone());
        self.ranges.push(HotRange {
            range,
            via,
            memmap,
            blocks: done,
            times,
            verified: None,
        });
        Ok(self.ranges.last().expect("just pushed"))
    }

    /// Offlines and removes `range`, which must equal a range added before.
    pub fn remove_memory<F: VmemmapArch>(
        &mut self,
        mm: &mut LiveMm<F>,
        range: Range<u64>,
    ) -> Result<(HotRange, RemoveTimes), HotplugError> {
        let index = self
            .ranges
            .iter()
            .position(|r| r.range == range)
            .ok_or_else(|| HotplugError::NotAdded(range.clone()))?;
        let hot = &mut self.ranges[index];
        let t0 = mm.now_ns();
        offline_all(mm, &hot.blocks)?;
        let t1 = mm.now_ns();
        for block in hot.blocks.iter_mut().rev() {
            remove_block(mm, block)?;
        }
        let times = RemoveTimes {
            offline_ns: t1.saturating_sub(t0),
            depopulate_ns: mm.now_ns().saturating_sub(t1),
        };
        self.unverified.retain(|r| *r != range);
        Ok((self.ranges.remove(index), times))
    }

    /// Memory blocks of `range`: one altmap each when memmap_on_memory applies.
    fn plan<F: VmemmapArch>(&self, mm: &LiveMm<F>, range: &Range<u64>) -> Vec<Block> {
        let arch = mm.arch();
        let block_bytes = arch.section_bytes();
        let pfns = Pfn(range.start / PAGE_SIZE)..Pfn(range.end / PAGE_SIZE);
        let whole_blocks =
            range.start.is_multiple_of(block_bytes) && range.end.is_multiple_of(block_bytes);
        if whole_blocks {
            let per_block: Option<Vec<Block>> = (range.start..range.end)
                .step_by(block_bytes as usize)
                .map(|start| {
                    let first = Pfn(start / PAGE_SIZE);
                    let altmap =
                        memmap_on_memory_altmap(arch, first, block_bytes, self.mode).ok()?;
                    Some(Block {
                        pfns: first..first.add(block_bytes / PAGE_SIZE),
                        altmap: Some(altmap),
                    })
                })
                .collect();
            if let Some(blocks) = per_block {
                return blocks;
            }
        }
        alloc::vec![Block { pfns, altmap: None }]
    }

    /// Refuses a range that overlaps an earlier add or anything with a memmap.
    fn check_free<F: VmemmapArch>(
        &self,
        mm: &LiveMm<F>,
        range: &Range<u64>,
    ) -> Result<(), HotplugError> {
        if let Some(r) = self
            .ranges
            .iter()
            .find(|r| r.range.start < range.end && range.start < r.range.end)
        {
            return Err(HotplugError::Overlap {
                at: r.range.start.max(range.start),
            });
        }
        for at in (range.start..range.end).step_by(HOTPLUG_ALIGN as usize) {
            if mm.sparse().pfn_valid(Pfn(at / PAGE_SIZE)) {
                return Err(HotplugError::Overlap { at });
            }
        }
        Ok(())
    }
}

fn check_aligned(range: &Range<u64>) -> Result<(), HotplugError> {
    let aligned =
        range.start.is_multiple_of(HOTPLUG_ALIGN) && range.end.is_multiple_of(HOTPLUG_ALIGN);
    if !aligned || range.start >= range.end {
        return Err(HotplugError::Misaligned(range.clone()));
    }
    Ok(())
}

/// Adds one block: sections and memmap, struct pages initialised, data pages onlined;
/// each phase's time is added to `times`.
fn add_block<F: VmemmapArch>(
    mm: &mut LiveMm<F>,
    block: &mut Block,
    times: &mut AddTimes,
) -> Result<(), HotplugError> {
    let t0 = mm.now_ns();
    mm.add(block.pfns.clone(), block.altmap.as_mut())?;
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
    let fresh = init_online(mm.memmap_mut(), arch, block.data(), Zone::Movable, 0);
    let t2 = mm.now_ns();
    times.init_ns += t2.saturating_sub(t1);
    let (buddy, memmap) = mm.movable_and_memmap();
    let onlined = buddy.online_initialised(memmap, fresh);
    times.online_ns += mm.now_ns().saturating_sub(t2);
    if let Err(e) = onlined {
        let _ = mm.remove(block.pfns.clone(), block.altmap.as_mut());
        return Err(e.into());
    }
    Ok(())
}

/// Removes one block whose data pages are already offline.
fn remove_block<F: VmemmapArch>(mm: &mut LiveMm<F>, block: &mut Block) -> Result<(), HotplugError> {
    if block.data().start < block.data().end
        && mm.memmap().page(block.data().start).has(PageFlags::ONLINE)
    {
        let (buddy, memmap) = mm.movable_and_memmap();
        buddy.offline(memmap, block.data())?;
    }
    mm.remove(block.pfns.clone(), block.altmap.as_mut())?;
    Ok(())
}

/// Offlines every block's data, or none: a busy block brings the earlier ones back.
fn offline_all<F: VmemmapArch>(mm: &mut LiveMm<F>, blocks: &[Block]) -> Result<(), HotplugError> {
    let (buddy, memmap) = mm.movable_and_memmap();
    for (i, block) in blocks.iter().enumerate() {
        if let Err(e) = buddy.offline(memmap, block.data()) {
            for earlier in &blocks[..i] {
                let _ = buddy.online(memmap, earlier.data());
            }
            return Err(e.into());
        }
    }
    Ok(())
}
