//! The check after every remove: what Linux only WARNs about (`"Altmap not fully
//! unmapped"`, `"failed to free all reserved pages"`), and what it never looks at, that
//! nothing of the range is left — no subsection present, no struct page of it still
//! translated by the tables (a leaf shared with a present neighbour excepted).

use core::fmt;
use core::ops::Range;

use super::addr::{PAGE_SIZE, Pfn, VirtAddr};
use super::altmap::VmemAltmap;
use super::phys::PhysMem;
use super::sparse::Sparse;
use super::vmemmap::VmemmapArch;
use super::walk;

/// What a remove left behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leftover {
    /// The altmap still counts pages handed out (`alloc != 0`).
    AltmapAlloc(u64),
    /// A subsection of the range is still present.
    Present {
        /// A frame in it.
        pfn: Pfn,
    },
    /// A struct page of the range is still mapped, by a leaf no present frame needs.
    Mapped {
        /// The struct page's address.
        va: u64,
        /// The leaf that maps it.
        leaf_bytes: u64,
    },
}

impl fmt::Display for Leftover {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Leftover::AltmapAlloc(n) => write!(f, "leftover=altmap.alloc alloc={n}"),
            Leftover::Present { pfn } => write!(f, "leftover=present pfn={:#x}", pfn.0),
            Leftover::Mapped { va, leaf_bytes } => {
                write!(f, "leftover=mapped va={va:#x} leaf={leaf_bytes:#x}")
            }
        }
    }
}

/// Checks that the remove of `range` through `altmap` left nothing: `mem` reads the
/// tables of `sparse`'s vmemmap.
pub fn check<F: VmemmapArch, M: PhysMem>(
    sparse: &Sparse<F>,
    mem: &M,
    range: Range<Pfn>,
    altmap: Option<&VmemAltmap>,
) -> Result<(), Leftover> {
    if let Some(a) = altmap.filter(|a| a.alloc != 0) {
        return Err(Leftover::AltmapAlloc(a.alloc));
    }
    let arch = sparse.arch();
    let per_sub = arch.pages_per_subsection();
    let first_sub = range.start.0 / per_sub * per_sub;
    if let Some(pfn) = (first_sub..range.end.0)
        .step_by(per_sub as usize)
        .map(Pfn)
        .find(|&p| sparse.pfn_valid(p))
    {
        return Err(Leftover::Present { pfn });
    }
    let vm = sparse.vmemmap();
    let (start, end) = vm.memmap_range(range.start, range.end.0 - range.start.0);
    let mut va = start.0 / PAGE_SIZE * PAGE_SIZE;
    while va < end.0 {
        let Ok(t) = walk::translate::<F, _>(mem, vm.root(), vm.features(), va) else {
            va += PAGE_SIZE;
            continue;
        };
        let leaf = va / t.leaf_bytes * t.leaf_bytes;
        let leaf_end = leaf + t.leaf_bytes;
        // The frames whose struct pages this leaf holds, outside the removed range.
        let (lo, hi) = (
            arch.page_to_pfn(VirtAddr(leaf)).0,
            arch.page_to_pfn(VirtAddr(leaf_end)).0,
        );
        let shared = (lo / per_sub * per_sub..hi)
            .step_by(per_sub as usize)
            .map(|p| Pfn(p.max(lo)))
            .any(|p| !range.contains(&p) && sparse.pfn_valid(p));
        if !shared {
            return Err(Leftover::Mapped {
                va,
                leaf_bytes: t.leaf_bytes,
            });
        }
        va = leaf_end;
    }
    Ok(())
}
