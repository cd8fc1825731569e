//! Leaf bookkeeping: which 4 KiB pages of each huge leaf are in use, which altmap each
//! altmap-backed leaf belongs to, and the allocate/release choke points for leaves.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::ops::Range;

use super::{Block, Source, Vmemmap, VmemmapArch};
use crate::mm::addr::{PAGE_SHIFT, PAGE_SIZE, PhysAddr};
use crate::mm::altmap::VmemAltmap;
use crate::mm::error::{AllocKind, MmError};
use crate::mm::phys::{FramePurpose, FrameSource, PhysMem};

/// A bitmap of the 4 KiB pages of one huge leaf (up to 2 MiB = 512 pages).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PageBits([u64; 8]);

impl PageBits {
    /// Bits for pages `[first, first + count)` of a leaf.
    pub fn range(first: u64, count: u64) -> PageBits {
        let mut bits = PageBits::default();
        for page in first..first + count {
            bits.0[(page / 64) as usize] |= 1 << (page % 64);
        }
        bits
    }

    /// Whether no bit is set.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }

    /// Number of bits set.
    pub fn count(self) -> u32 {
        self.0.iter().map(|w| w.count_ones()).sum()
    }

    /// Bits in `self` but not in `other`.
    pub fn minus(self, other: PageBits) -> PageBits {
        PageBits(core::array::from_fn(|i| self.0[i] & !other.0[i]))
    }

    /// Bits in either.
    pub fn union(self, other: PageBits) -> PageBits {
        PageBits(core::array::from_fn(|i| self.0[i] | other.0[i]))
    }
}

/// Leaves taken from one altmap that are still mapped.
#[derive(Clone, Debug)]
struct AltmapUse {
    base_pfn: u64,
    storage: Range<u64>,
    leaves: u64,
}

/// Out-of-band leaf state.
#[derive(Clone, Debug, Default)]
pub(super) struct LeafBook {
    /// Huge leaf virtual address → pages in use.
    huge: BTreeMap<u64, PageBits>,
    altmaps: Vec<AltmapUse>,
}

impl LeafBook {
    pub(super) fn users(&self, leaf_va: u64) -> Option<PageBits> {
        self.huge.get(&leaf_va).copied()
    }

    /// Marks pages `[start, end)` of the leaf at `leaf_va` used; returns the newly set bits.
    pub(super) fn mark(&mut self, leaf_va: u64, start: u64, end: u64) -> PageBits {
        let wanted = PageBits::range((start - leaf_va) >> PAGE_SHIFT, (end - start) >> PAGE_SHIFT);
        let users = self.huge.entry(leaf_va).or_default();
        let new = wanted.minus(*users);
        *users = users.union(wanted);
        new
    }

    /// Clears `bits` of the leaf at `leaf_va`; returns what remains in use.
    pub(super) fn unmark(&mut self, leaf_va: u64, bits: PageBits) -> PageBits {
        let users = self.huge.entry(leaf_va).or_default();
        *users = users.minus(bits);
        *users
    }

    pub(super) fn forget(&mut self, leaf_va: u64) {
        self.huge.remove(&leaf_va);
    }

    fn owner_of(&self, pfn: u64) -> Option<&AltmapUse> {
        self.altmaps.iter().find(|u| u.storage.contains(&pfn))
    }

    fn attach(&mut self, altmap: &VmemAltmap) {
        match self
            .altmaps
            .iter_mut()
            .find(|u| u.base_pfn == altmap.base_pfn)
        {
            Some(found) => found.leaves += 1,
            None => self.altmaps.push(AltmapUse {
                base_pfn: altmap.base_pfn,
                storage: altmap.storage(),
                leaves: 1,
            }),
        }
    }

    fn detach(&mut self, base_pfn: u64) {
        if let Some(i) = self.altmaps.iter().position(|u| u.base_pfn == base_pfn) {
            self.altmaps[i].leaves -= 1;
            if self.altmaps[i].leaves == 0 {
                self.altmaps.swap_remove(i);
            }
        }
    }
}

impl<F: VmemmapArch> Vmemmap<F> {
    /// Allocates a leaf of `bytes` from the altmap if given (under the semantics in
    /// force, recording the hazard it runs into), else from RAM.
    pub(super) fn alloc_leaf<M: PhysMem + FrameSource>(
        &mut self,
        mem: &mut M,
        altmap: Option<&mut VmemAltmap>,
        bytes: u64,
    ) -> Result<Block, MmError> {
        let huge = bytes > PAGE_SIZE;
        match altmap {
            Some(altmap) => {
                self.faults.check(AllocKind::AltmapLeaf)?;
                let (pfn, hazard) = altmap.alloc_bytes_under(bytes, self.semantics)?;
                if let Some(hazard) = hazard {
                    self.tally.hazards += 1;
                    self.hazards.push(hazard);
                }
                self.book.attach(altmap);
                self.stats.altmap_pages += bytes / PAGE_SIZE;
                *if huge {
                    &mut self.stats.huge_leaves_altmap
                } else {
                    &mut self.stats.base_leaves_altmap
                } += 1;
                Ok(Block {
                    frame: pfn.addr(),
                    bytes,
                    source: Source::Altmap,
                })
            }
            None => {
                self.faults.check(AllocKind::RamLeaf)?;
                let frame = mem
                    .alloc_frames(bytes, bytes, FramePurpose::Leaf)
                    .ok_or(MmError::NoMemory(AllocKind::RamLeaf))?;
                self.stats.ram_leaf_bytes += bytes;
                *if huge {
                    &mut self.stats.huge_leaves_ram
                } else {
                    &mut self.stats.base_leaves_ram
                } += 1;
                Ok(Block {
                    frame,
                    bytes,
                    source: Source::Ram,
                })
            }
        }
    }

    /// Where the leaf at `frame` must go back to, given the altmap passed for the free.
    pub(super) fn classify_leaf(
        &self,
        altmap: Option<&VmemAltmap>,
        frame: PhysAddr,
        bytes: u64,
    ) -> Result<Source, MmError> {
        let pfn = frame.pfn();
        let Some(owner) = self.book.owner_of(pfn.0) else {
            return Ok(Source::Ram);
        };
        match altmap {
            Some(altmap) if altmap.base_pfn == owner.base_pfn => {
                if altmap.has_live_block(pfn, bytes / PAGE_SIZE) {
                    Ok(Source::Altmap)
                } else {
                    Err(MmError::AltmapBlockUnknown {
                        pfn,
                        nr_pages: bytes / PAGE_SIZE,
                    })
                }
            }
            _ => {
                log::error!(
                    "vmemmap: leaf {pfn} belongs to altmap at {:#x}",
                    owner.base_pfn
                );
                Err(MmError::AltmapMismatch { leaf: pfn })
            }
        }
    }

    /// A mapped huge leaf taken from an altmap may only gain users that pass the same
    /// altmap; otherwise its last user could not return it.
    pub(super) fn check_leaf_reuse(
        &self,
        altmap: Option<&VmemAltmap>,
        frame: PhysAddr,
    ) -> Result<(), MmError> {
        match self.book.owner_of(frame.pfn().0) {
            Some(owner) if altmap.is_none_or(|a| a.base_pfn != owner.base_pfn) => {
                Err(MmError::AltmapMismatch { leaf: frame.pfn() })
            }
            _ => Ok(()),
        }
    }

    /// Returns a leaf to where it came from and updates the counters.
    pub(super) fn release_leaf<M: PhysMem + FrameSource>(
        &mut self,
        mem: &mut M,
        altmap: Option<&mut VmemAltmap>,
        frame: PhysAddr,
        bytes: u64,
        source: Source,
    ) -> Result<(), MmError> {
        let huge = bytes > PAGE_SIZE;
        match (source, altmap) {
            (Source::Altmap, Some(altmap)) => {
                altmap.free_block_under(frame.pfn(), bytes / PAGE_SIZE, self.semantics)?;
                self.book.detach(altmap.base_pfn);
                self.stats.altmap_pages -= bytes / PAGE_SIZE;
                *if huge {
                    &mut self.stats.huge_leaves_altmap
                } else {
                    &mut self.stats.base_leaves_altmap
                } -= 1;
            }
            (Source::Altmap, None) => {
                return Err(MmError::AltmapMismatch { leaf: frame.pfn() });
            }
            (Source::Ram, _) => {
                mem.free_frames(frame, bytes, FramePurpose::Leaf);
                self.stats.ram_leaf_bytes -= bytes;
                *if huge {
                    &mut self.stats.huge_leaves_ram
                } else {
                    &mut self.stats.base_leaves_ram
                } -= 1;
            }
        }
        Ok(())
    }
}
