//! The one `add_memory` / `remove_memory` path for hot-plugged RAM (pc-dimm, virtio-mem,
//! the shell's `probe`).
//!
//! Add: the range must be whole memory blocks (Linux's `check_hotplug_memory_range`:
//! otherwise one refusal and nothing changes) and overlap nothing live. Each memory block
//! is added on its own. When the source asks for memmap_on_memory (`MHP_MEMMAP_ON_MEMORY`)
//! and the mode and Linux's gates allow it, each block's altmap is carved from its own
//! start and the memmap lives in the block itself; otherwise the memmap comes from RAM
//! and the record says `memmap=ram`. The rest of each block is onlined into the movable
//! allocator, except the parts a partial add keeps offline (virtio-mem sub-block mode):
//! its struct pages are written online in the one init pass, then handed over block by
//! block. A sampled check through the MMU runs before the range is reported online; the
//! full verification runs after the event is done ([`super::verify_ram`]).
//!
//! Parts: an offline part of an added range can be onlined, and an online part taken
//! offline again (refused, with nothing changed, if a page is in use), the range staying
//! added: Linux's virtio-mem fake-online / fake-offline.
//!
//! Remove: every online page must be free (else the remove is refused and nothing
//! changes); the pages are offlined, the memmap freed through the same altmap (which
//! must end at `alloc == 0`), the sections deactivated and empty tables freed.
//!
//! Hot-added RAM is onlined into the movable allocator (Linux's ZONE_MOVABLE): it is not
//! in the direct map, so page tables and other kernel memory never come from it.
//!
//! Heap use: an add reserves its bookkeeping (the block list, the range record) before it
//! changes anything, so a refused heap allocation refuses the add with `reason=mm
//! errno=-12` and nothing changed; a remove never allocates.

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;

use crate::mm::addr::{PAGE_SIZE, Pfn};
use crate::mm::altmap::VmemAltmap;
use crate::mm::error::MmError;
use crate::mm::live::LiveMm;
use crate::mm::memmap_on_memory::{MemmapOnMemoryMode, memmap_on_memory_altmap};
use crate::mm::memory_block::MemoryBlock;
use crate::mm::teardown::Leftover;
use crate::mm::vmemmap::VmemmapArch;

pub use super::block::{Block, BoxedAltmap};
use super::event::Via;
use super::verify_ram::RamReport;
use super::{block, parts};

/// Why an add, remove, online or offline was refused. Nothing changed in every case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HotplugError {
    /// Not a non-empty run of whole memory blocks (`-EINVAL`).
    Misaligned {
        /// The memory-block size the range must be made of.
        block: u64,
    },
    /// Part of the range is already live (boot RAM, a device region, an earlier add).
    Overlap {
        /// The first 2 MiB subsection found live.
        at: u64,
    },
    /// No earlier add has exactly this range (or, for a part, contains it).
    NotAdded(Range<u64>),
    /// A part to online or offline is not page-aligned, spans memory blocks, or is not
    /// (wholly) offline, respectively online.
    BadPart {
        /// What is wrong.
        why: &'static str,
    },
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
            HotplugError::Misaligned { block } => {
                write!(f, "reason=misaligned block={block:#x}")
            }
            HotplugError::Overlap { at } => write!(f, "reason=overlap at={at:#x}"),
            // The refusal record names the range already.
            HotplugError::NotAdded(_) => write!(f, "reason=not-added"),
            HotplugError::BadPart { why } => write!(f, "reason=bad-part detail={why}"),
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
    /// In RAM (the source did not ask, the mode is off, or Linux's gates refuse).
    Ram,
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
    /// The teardown check after each removed block ([`crate::mm::teardown`]).
    pub teardown_ns: u64,
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
    /// Its memory blocks, ascending.
    pub blocks: Vec<Block>,
    /// Whether the last full verification ([`super::verify_ram::verify`]) passed; `None`
    /// until it ran (its record carries the figures).
    pub verified: Option<bool>,
}

impl HotRange {
    /// Pages onlined into the buddy allocator.
    pub fn online_pages(&self) -> u64 {
        self.blocks.iter().map(Block::online_pages).sum()
    }

    /// Sum of `alloc` and of `align` over the blocks' altmaps.
    pub fn altmap_totals(&self) -> (u64, u64) {
        self.blocks
            .iter()
            .filter_map(|b| b.altmap.as_deref())
            .fold((0, 0), |(al, pad), a| (al + a.alloc, pad + a.align))
    }
}

/// A completed remove: the range, and what the teardown check found left of its blocks
/// (nothing, normally).
#[derive(Clone, Debug)]
pub struct Removed {
    /// The range as it was.
    pub hot: HotRange,
    /// Per block, what the remove left behind.
    pub leftovers: Vec<(Range<Pfn>, Leftover)>,
    /// Where the remove spent its time.
    pub times: RemoveTimes,
}

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

/// Every hot-added range, the memory-block size and the memmap_on_memory setting.
///
/// The ranges are kept ascending by address, so finding one (overlap check, remove,
/// online or offline of a part, verification) is a binary search: virtio-mem adds each
/// memory block as its own range, thousands of them at hundreds of GiB.
pub struct Hotplug {
    ranges: Vec<HotRange>,
    block: MemoryBlock,
    mode: MemmapOnMemoryMode,
    /// Added ranges whose full verification is still to run, oldest first.
    unverified: VecDeque<Range<u64>>,
    last_add: AddTimes,
}

impl Hotplug {
    /// No hot-added memory yet; `block` is the arch's memory block, `mode` is
    /// `memory_hotplug.memmap_on_memory`.
    pub fn new(block: MemoryBlock, mode: MemmapOnMemoryMode) -> Self {
        Hotplug {
            ranges: Vec::new(),
            block,
            mode,
            unverified: VecDeque::new(),
            last_add: AddTimes::default(),
        }
    }

    /// The live ranges, ascending by address.
    pub fn ranges(&self) -> &[HotRange] {
        &self.ranges
    }

    /// The live range that is exactly `range`.
    pub fn range(&self, range: &Range<u64>) -> Option<&HotRange> {
        self.index_of(range).map(|i| &self.ranges[i])
    }

    /// Where the last successful add spent its time.
    pub fn last_add_times(&self) -> AddTimes {
        self.last_add
    }

    /// The index of the live range that is exactly `range`.
    fn index_of(&self, range: &Range<u64>) -> Option<usize> {
        let i = self.ranges.partition_point(|r| r.range.start < range.start);
        (self.ranges.get(i)?.range == *range).then_some(i)
    }

    /// The index of the live range that contains `part`.
    fn index_containing(&self, part: &Range<u64>) -> Option<usize> {
        let i = self
            .ranges
            .partition_point(|r| r.range.start <= part.start)
            .checked_sub(1)?;
        let r = &self.ranges[i].range;
        (r.start <= part.start && part.end <= r.end).then_some(i)
    }

    /// The memory-block size.
    pub fn block(&self) -> MemoryBlock {
        self.block
    }

    /// The memmap_on_memory setting.
    pub fn mode(&self) -> MemmapOnMemoryMode {
        self.mode
    }

    /// The oldest added range whose full verification is still to run, taken off the
    /// list (the dispatcher runs it once the sources have no event left).
    pub fn next_unverified(&mut self) -> Option<Range<u64>> {
        self.unverified.pop_front()
    }

    /// Whether an added range still waits for its full verification.
    pub fn has_unverified(&self) -> bool {
        !self.unverified.is_empty()
    }

    /// Runs the full verification of the live range `range` now and keeps its report.
    pub fn verify<F: VmemmapArch>(
        &mut self,
        mm: &mut LiveMm<F>,
        range: &Range<u64>,
    ) -> Option<RamReport> {
        let index = self.index_of(range)?;
        let hot = &mut self.ranges[index];
        let report = super::verify_ram::verify(mm, hot);
        hot.verified = Some(report.passed());
        Some(report)
    }

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
        let sampled = super::verify_ram::sample(mm.memmap_mut(), arch, &done);
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
