//! What a leaf is ([`Block`], from a [`Source`]), the allocate/release choke points for
//! leaves, and who owns a mapped leaf.
//!
//! No bookkeeping per leaf: a leaf taken from an altmap carries the `ALTMAP` software bit
//! in its entry ([`EntryAttrs::ALTMAP`]), so the page tables say which leaves go back to
//! an altmap, and the altmap whose storage holds the frame is the only one that may take
//! it back (freeing it through another altmap, or none, is refused instead of returning
//! device memory to the wrong allocator: linux-mm.md §6.3 bugs 3 and 8).

use core::fmt;

use super::{Vmemmap, VmemmapArch};
use crate::mm::addr::{PAGE_SIZE, PhysAddr};
use crate::mm::altmap::VmemAltmap;
use crate::mm::error::{AllocKind, MmError};
use crate::mm::pgtable::EntryAttrs;
use crate::mm::phys::{FramePurpose, FrameSource, PhysMem};

/// Where a leaf came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// RAM (the frame source).
    Ram,
    /// The altmap of the call.
    Altmap,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Ram => "ram",
            Source::Altmap => "altmap",
        })
    }
}

/// A leaf-sized block, allocated and not yet mapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block {
    /// Its first byte.
    pub frame: PhysAddr,
    /// Its size.
    pub bytes: u64,
    /// Where it came from.
    pub source: Source,
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
                    // The list is a diagnostic: with no heap room it only counts.
                    if self.hazards.try_reserve(1).is_ok() {
                        self.hazards.push(hazard);
                    }
                }
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

    /// Where the leaf at `frame` (mapped with `attrs`) must go back to, given the altmap
    /// passed for the free: RAM without the `ALTMAP` bit; with it, the altmap passed,
    /// which must hold the frame in its storage and have it outstanding (otherwise the
    /// leaf is another altmap's: `AltmapMismatch`).
    pub(super) fn classify_leaf(
        &self,
        altmap: Option<&VmemAltmap>,
        frame: PhysAddr,
        bytes: u64,
        attrs: EntryAttrs,
    ) -> Result<Source, MmError> {
        let pfn = frame.pfn();
        if !attrs.contains(EntryAttrs::ALTMAP) {
            return Ok(Source::Ram);
        }
        match altmap {
            Some(altmap)
                if altmap.in_storage(pfn)
                    && altmap.is_outstanding_under(pfn, bytes / PAGE_SIZE, self.semantics) =>
            {
                Ok(Source::Altmap)
            }
            _ => {
                log::error!("vmemmap: leaf {pfn} is not one the altmap passed handed out");
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
        attrs: EntryAttrs,
    ) -> Result<(), MmError> {
        let owned = altmap.is_some_and(|a| a.in_storage(frame.pfn()));
        if attrs.contains(EntryAttrs::ALTMAP) && !owned {
            return Err(MmError::AltmapMismatch { leaf: frame.pfn() });
        }
        Ok(())
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
