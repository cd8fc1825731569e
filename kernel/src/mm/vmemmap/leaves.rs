//! Leaf bookkeeping: which 4 KiB pages of each huge leaf are in use, which altmap each
//! altmap-backed leaf belongs to, and the allocate/release choke points for leaves.

use alloc::vec::Vec;
use core::ops::Range;

use super::{LeafSource, Vmemmap};
use crate::heap::fallible::TryVec;
use crate::mm::addr::{PAGE_SHIFT, PAGE_SIZE, Pfn, PhysAddr};
use crate::mm::altmap::VmemAltmap;
use crate::mm::error::{AllocKind, MmError};
use crate::mm::pgtable::PageTableFormat;
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

/// Out-of-band leaf state. Growing it is fallible; shrinking never allocates.
#[derive(Clone, Debug, Default)]
pub(super) struct LeafBook {
    /// (huge leaf virtual address, pages in use), ascending by address.
    huge: Vec<(u64, PageBits)>,
    altmaps: Vec<AltmapUse>,
}

impl LeafBook {
    fn find(&self, leaf_va: u64) -> Result<usize, usize> {
        self.huge.binary_search_by_key(&leaf_va, |(va, _)| *va)
    }

    pub(super) fn users(&self, leaf_va: u64) -> Option<PageBits> {
        self.find(leaf_va).ok().map(|i| self.huge[i].1)
    }

    /// Marks pages `[start, end)` of the leaf at `leaf_va` used; returns the newly set bits.
    pub(super) fn mark(&mut self, leaf_va: u64, start: u64, end: u64) -> Result<PageBits, MmError> {
        let wanted = PageBits::range((start - leaf_va) >> PAGE_SHIFT, (end - start) >> PAGE_SHIFT);
        let index = match self.find(leaf_va) {
            Ok(i) => i,
            Err(i) => {
                self.huge.try_insert(i, (leaf_va, PageBits::default()))?;
                i
            }
        };
        let users = &mut self.huge[index].1;
        let new = wanted.minus(*users);
        *users = users.union(wanted);
        Ok(new)
    }

    /// Clears `bits` of the leaf at `leaf_va`; returns what remains in use.
    pub(super) fn unmark(&mut self, leaf_va: u64, bits: PageBits) -> PageBits {
        match self.find(leaf_va) {
            Ok(i) => {
                let users = &mut self.huge[i].1;
                *users = users.minus(bits);
                *users
            }
            Err(_) => PageBits::default(),
        }
    }

    pub(super) fn forget(&mut self, leaf_va: u64) {
        if let Ok(i) = self.find(leaf_va) {
            self.huge.remove(i);
        }
    }

    fn owner_of(&self, pfn: u64) -> Option<&AltmapUse> {
        self.altmaps.iter().find(|u| u.storage.contains(&pfn))
    }

    /// Counts one more leaf of `altmap` (room for a new entry must have been reserved
    /// with [`LeafBook::reserve_altmap`]).
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

    /// Room for `altmap`'s entry, if it has none yet.
    fn reserve_altmap(&mut self, altmap: &VmemAltmap) -> Result<(), MmError> {
        if !self.altmaps.iter().any(|u| u.base_pfn == altmap.base_pfn) {
            self.altmaps.try_reserve(1)?;
        }
        Ok(())
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

impl<F: PageTableFormat> Vmemmap<F> {
    /// Allocates a leaf of `bytes` from the altmap if given, else from RAM.
    pub(super) fn alloc_leaf<M: PhysMem + FrameSource>(
        &mut self,
        mem: &mut M,
        altmap: Option<&mut VmemAltmap>,
        bytes: u64,
    ) -> Result<(PhysAddr, LeafSource), MmError> {
        let huge = bytes > PAGE_SIZE;
        match altmap {
            Some(altmap) => {
                self.faults.check(AllocKind::AltmapLeaf)?;
                self.book.reserve_altmap(altmap)?;
                let pfn = altmap.alloc_bytes(bytes)?;
                self.book.attach(altmap);
                self.stats.altmap_pages += bytes / PAGE_SIZE;
                *if huge {
                    &mut self.stats.huge_leaves_altmap
                } else {
                    &mut self.stats.base_leaves_altmap
                } += 1;
                Ok((pfn.addr(), LeafSource::Altmap))
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
                Ok((frame, LeafSource::Ram))
            }
        }
    }

    /// Where the leaf at `frame` must go back to, given the altmap passed for the free.
    pub(super) fn classify_leaf(
        &self,
        altmap: Option<&VmemAltmap>,
        frame: PhysAddr,
        bytes: u64,
    ) -> Result<LeafSource, MmError> {
        let pfn = frame.pfn();
        let Some(owner) = self.book.owner_of(pfn.0) else {
            return Ok(LeafSource::Ram);
        };
        match altmap {
            Some(altmap) if altmap.base_pfn == owner.base_pfn => {
                if altmap.is_outstanding(pfn, bytes / PAGE_SIZE) {
                    Ok(LeafSource::Altmap)
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
        source: LeafSource,
    ) -> Result<(), MmError> {
        let huge = bytes > PAGE_SIZE;
        match (source, altmap) {
            (LeafSource::Altmap, Some(altmap)) => {
                altmap.free_block(Pfn(frame.pfn().0), bytes / PAGE_SIZE)?;
                self.book.detach(altmap.base_pfn);
                self.stats.altmap_pages -= bytes / PAGE_SIZE;
                *if huge {
                    &mut self.stats.huge_leaves_altmap
                } else {
                    &mut self.stats.base_leaves_altmap
                } -= 1;
            }
            (LeafSource::Altmap, None) => {
                return Err(MmError::AltmapMismatch { leaf: frame.pfn() });
            }
            (LeafSource::Ram, _) => {
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
