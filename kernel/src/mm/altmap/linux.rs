//! Linux's altmap rules (`mm.semantics=linux`, `rfc-2017`) and the checker that names
//! their hazards when they bite (linux-mm.md §1.2 consequences, §6.4 items 8 and 11).
//!
//! `vmem_altmap_free` only decrements `alloc`; `align` never comes back. Both are kept
//! here exactly, and the blocks allocated under these rules are recorded beside them
//! (one record per block, the only place an altmap keeps one) — not to change any
//! figure, but to see what Linux cannot: each allocation is compared with the blocks
//! that are still mapped.
//!
//! - **non-LIFO free**: a block below a live one was freed, so `next_pfn` went back and
//!   the new block overlaps a block that is still mapped: the same frames back two parts
//!   of the memmap.
//! - **align never returned**: padding of freed blocks is still counted in `align`, so
//!   the new block lands past where the live blocks end (pages wasted, and a reused
//!   altmap that was sized exactly runs out).

use core::fmt;

use super::VmemAltmap;
use crate::mm::addr::Pfn;
use crate::mm::error::MmError;

/// A Linux altmap hazard, caught when it bit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hazard {
    /// The block handed out overlaps a block that is still mapped.
    NonLifoFree {
        /// The altmap's `base_pfn`.
        base_pfn: u64,
        /// First frame handed out.
        pfn: Pfn,
        /// Pages handed out.
        nr_pages: u64,
        /// First frame of the live block it overlaps.
        live: Pfn,
        /// Pages of that live block.
        live_pages: u64,
    },
    /// The block handed out lies past where the live blocks (plus its own alignment)
    /// would put it, because freed blocks' padding is still counted in `align`.
    AlignNeverReturned {
        /// The altmap's `base_pfn`.
        base_pfn: u64,
        /// First frame handed out.
        pfn: Pfn,
        /// Pages handed out.
        nr_pages: u64,
        /// Where it would start had `align` been returned.
        wanted: Pfn,
        /// Pages skipped because of it (`pfn - wanted`).
        stale: u64,
    },
}

impl Hazard {
    /// The record's `kind=` value.
    pub const fn kind(&self) -> &'static str {
        match self {
            Hazard::NonLifoFree { .. } => "non-lifo-free",
            Hazard::AlignNeverReturned { .. } => "align-never-returned",
        }
    }
}

impl fmt::Display for Hazard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Hazard::NonLifoFree {
                base_pfn,
                pfn,
                nr_pages,
                live,
                live_pages,
            } => write!(
                f,
                "hazard: kind=non-lifo-free altmap.base_pfn={base_pfn:#x} pfn={:#x} nr={nr_pages} still.mapped.pfn={:#x} still.mapped.nr={live_pages} (a block below a live one was freed; vmem_altmap_free only decrements alloc)",
                pfn.0, live.0
            ),
            Hazard::AlignNeverReturned {
                base_pfn,
                pfn,
                nr_pages,
                wanted,
                stale,
            } => write!(
                f,
                "hazard: kind=align-never-returned altmap.base_pfn={base_pfn:#x} pfn={:#x} nr={nr_pages} wanted.pfn={:#x} stale={stale} (padding of freed blocks is still counted in align)",
                pfn.0, wanted.0
            ),
        }
    }
}

/// A block allocated under Linux's rules and not yet freed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct CheckedBlock {
    /// First frame handed out.
    pub(super) pfn: u64,
    /// Pages handed out.
    pub(super) nr_pages: u64,
}

impl VmemAltmap {
    /// Linux's `vmem_altmap_free`: `alloc -= nr_pages`; the block is forgotten, its
    /// padding stays in `align`. Refused (nothing changed) when the block is neither a
    /// recorded one nor inside what was handed out.
    pub(super) fn free_linux(&mut self, pfn: Pfn, nr_pages: u64) -> Result<(), MmError> {
        let recorded = self
            .checked
            .iter()
            .rposition(|b| b.pfn == pfn.0 && b.nr_pages == nr_pages);
        if recorded.is_none() && !self.is_outstanding(pfn, nr_pages)
            || nr_pages == 0
            || self.alloc < nr_pages
        {
            return Err(MmError::AltmapBlockUnknown { pfn, nr_pages });
        }
        if let Some(index) = recorded {
            self.checked.remove(index);
            if index != self.checked.len() {
                log::debug!(
                    "altmap: non-LIFO free of {pfn}+{nr_pages} (Linux rules: alloc -= {nr_pages})"
                );
            }
        }
        self.alloc -= nr_pages;
        self.buried = self.buried.min(self.alloc);
        Ok(())
    }

    /// Drops the record of a block freed under hotmem's rules, if it has one.
    pub(super) fn forget_checked(&mut self, pfn: Pfn, nr_pages: u64) {
        if let Some(index) = self
            .checked
            .iter()
            .rposition(|b| b.pfn == pfn.0 && b.nr_pages == nr_pages)
        {
            self.checked.remove(index);
        }
    }

    /// The hazard an allocation of `nr_pages` at `pfn` (alignment `natural`) runs into.
    pub(super) fn hazard_of(&self, pfn: u64, nr_pages: u64, natural: u64) -> Option<Hazard> {
        let live = || self.checked.iter();
        if let Some(block) = live().find(|b| b.pfn < pfn + nr_pages && pfn < b.pfn + b.nr_pages) {
            return Some(Hazard::NonLifoFree {
                base_pfn: self.base_pfn,
                pfn: Pfn(pfn),
                nr_pages,
                live: Pfn(block.pfn),
                live_pages: block.nr_pages,
            });
        }
        let top = live()
            .map(|b| b.pfn + b.nr_pages)
            .max()
            .unwrap_or(self.base_pfn + self.reserve);
        let wanted = top.next_multiple_of(natural);
        (pfn > wanted).then(|| Hazard::AlignNeverReturned {
            base_pfn: self.base_pfn,
            pfn: Pfn(pfn),
            nr_pages,
            wanted: Pfn(wanted),
            stale: pfn - wanted,
        })
    }
}
