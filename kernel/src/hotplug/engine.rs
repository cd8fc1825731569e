//! The one `add_memory` / `remove_memory` path for hot-plugged RAM (pc-dimm, virtio-mem).
//!
//! Add: the range must be 2 MiB-aligned and overlap nothing live. When it is a whole
//! number of memory blocks (one section each) and memmap_on_memory is on, each block's
//! altmap is carved from its own start under Linux's rules (memmap pages page- and
//! pageblock-aligned, not the whole block) and the memmap lives in the block itself;
//! otherwise the memmap comes from RAM and the record says `memmap=ram`. The rest of each
//! block is onlined into the buddy allocator.
//!
//! Remove: every data page must be free (else the remove is refused and nothing
//! changes); the pages are offlined, the memmap freed through the same altmap (which
//! must end at `alloc == 0`), the sections deactivated and empty tables freed.
//!
//! Hot-added RAM is onlined into the movable allocator (Linux's ZONE_MOVABLE): it is not
//! in the direct map, so page tables and other kernel memory never come from it.
//!
//! Heap use: an add reserves its bookkeeping (the block list, the range record) before it
//! changes anything, so a refused heap allocation refuses the add with `reason=mm
//! errno=-12` and nothing changed; a remove never allocates.

use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;

use crate::heap::fallible::TryVec;
use crate::mm::addr::{PAGE_SIZE, Pfn};
use crate::mm::altmap::VmemAltmap;
use crate::mm::error::MmError;
use crate::mm::live::{LiveMemmap, LiveMm};
use crate::mm::memmap::MemmapAccess;
use crate::mm::memmap_on_memory::{MemmapOnMemoryMode, memmap_on_memory_altmap};
use crate::mm::page::{Page, PageFlags, Zone};
use crate::mm::sparse::chunks;
use crate::mm::vmemmap::VmemmapArch;

use super::event::Via;

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
}

impl Hotplug {
    /// No hot-added memory yet; `mode` is `memory_hotplug.memmap_on_memory`.
    pub fn new(mode: MemmapOnMemoryMode) -> Self {
        Hotplug {
            ranges: Vec::new(),
            mode,
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

    /// Adds and onlines `range` (see the module header).
    pub fn add_memory<F: VmemmapArch>(
        &mut self,
        mm: &mut LiveMm<F>,
        range: Range<u64>,
        via: Via,
    ) -> Result<&HotRange, HotplugError> {
        check_aligned(&range)?;
        self.check_free(mm, &range)?;
        self.ranges.try_reserve(1).map_err(MmError::from)?;
        let blocks = self.plan(mm, &range)?;
        let memmap = if blocks.iter().all(|b| b.altmap.is_some()) {
            MemmapFrom::Altmap
        } else {
            MemmapFrom::Ram
        };
        let mut done: Vec<Block> = Vec::new();
        done.try_reserve_exact(blocks.len())
            .map_err(MmError::from)?;
        for mut block in blocks {
            if let Err(e) = add_block(mm, &mut block) {
                for mut earlier in done.into_iter().rev() {
                    let _ = remove_block(mm, &mut earlier);
                }
                return Err(e);
            }
            done.push(block);
        }
        self.ranges.push(HotRange {
            range,
            via,
            memmap,
            blocks: done,
        });
        Ok(self.ranges.last().expect("just pushed"))
    }

    /// Offlines and removes `range`, which must equal a range added before.
    pub fn remove_memory<F: VmemmapArch>(
        &mut self,
        mm: &mut LiveMm<F>,
        range: Range<u64>,
    ) -> Result<HotRange, HotplugError> {
        let index = self
            .ranges
            .iter()
            .position(|r| r.range == range)
            .ok_or(HotplugError::NotAdded(range))?;
        let hot = &mut self.ranges[index];
        offline_all(mm, &hot.blocks)?;
        for block in hot.blocks.iter_mut().rev() {
            remove_block(mm, block)?;
        }
        Ok(self.ranges.remove(index))
    }

    /// Memory blocks of `range`: one altmap each when memmap_on_memory applies.
    fn plan<F: VmemmapArch>(
        &self,
        mm: &LiveMm<F>,
        range: &Range<u64>,
    ) -> Result<Vec<Block>, HotplugError> {
        let arch = mm.arch();
        let block_bytes = arch.section_bytes();
        let pfns = Pfn(range.start / PAGE_SIZE)..Pfn(range.end / PAGE_SIZE);
        let whole_blocks =
            range.start.is_multiple_of(block_bytes) && range.end.is_multiple_of(block_bytes);
        let mut blocks = Vec::new();
        if whole_blocks {
            blocks
                .try_reserve_exact(((range.end - range.start) / block_bytes) as usize)
                .map_err(MmError::from)?;
            for start in (range.start..range.end).step_by(block_bytes as usize) {
                let first = Pfn(start / PAGE_SIZE);
                let Ok(altmap) = memmap_on_memory_altmap(arch, first, block_bytes, self.mode)
                else {
                    blocks.clear();
                    break;
                };
                blocks.push(Block {
                    pfns: first..first.add(block_bytes / PAGE_SIZE),
                    altmap: Some(altmap),
                });
            }
        }
        if blocks.is_empty() {
            blocks.try_push(Block { pfns, altmap: None })?;
        }
        Ok(blocks)
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

/// Adds one block: sections and memmap, struct pages initialised, data pages onlined.
fn add_block<F: VmemmapArch>(mm: &mut LiveMm<F>, block: &mut Block) -> Result<(), HotplugError> {
    mm.add(block.pfns.clone(), block.altmap.as_mut())?;
    let arch = mm.arch();
    let hosted = block.pfns.start..block.data().start;
    init_pages(
        mm.memmap_mut(),
        arch,
        hosted,
        PageFlags::RESERVED | PageFlags::VMEMMAP_SELF_HOSTED,
    );
    init_pages(mm.memmap_mut(), arch, block.data(), PageFlags::empty());
    let (buddy, memmap) = mm.movable_and_memmap();
    if let Err(e) = buddy.online(memmap, block.data()) {
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

/// Fills the struct pages of `range` with a fresh (movable-zone) page plus `flags`.
fn init_pages(
    memmap: &mut LiveMemmap,
    arch: &crate::mm::arch::MmArch,
    range: Range<Pfn>,
    flags: PageFlags,
) {
    if range.start >= range.end {
        return;
    }
    for chunk in chunks(arch, range.start, range.end) {
        let mut template = Page::new(Zone::Movable, 0, chunk.section);
        template.set(flags);
        debug_assert!(memmap.has_page(chunk.first));
        crate::mm::memmap::fill_pages(
            memmap.pages_mut(chunk.first, chunk.nr_pages as usize),
            template,
        );
    }
}
