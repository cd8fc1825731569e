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
//!
//! This file holds the records and the range bookkeeping (ascending, binary-searched);
//! the paths live beside it: `add` (add), `remove` (remove), `part` (online / offline of
//! a part) and `error` ([`HotplugError`]).

mod add;
mod error;
mod part;
mod remove;

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::ops::Range;

use crate::mm::addr::Pfn;
use crate::mm::live::LiveMm;
use crate::mm::memmap_on_memory::MemmapOnMemoryMode;
use crate::mm::memory_block::MemoryBlock;
use crate::mm::teardown::Leftover;
use crate::mm::vmemmap::VmemmapArch;

pub use super::block::{Block, BoxedAltmap};
use super::event::Via;
use super::verify_ram::RamReport;
pub use error::HotplugError;

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
}
