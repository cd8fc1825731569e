//! Mapping a physical range at a virtual range with the largest leaves the format and the
//! CPU allow: identity maps (s390x), direct maps and kernel images (x86_64, aarch64).
//! Tables come from the [`FrameSource`] and are filled with the level's empty entry.
//! This is the boot-time mapper; the vmemmap has its own walker in [`super::vmemmap`].

use super::addr::PhysAddr;
use super::pgtable::{Entry, EntryAttrs, Features, PageTableFormat};
use super::phys::{FramePurpose, FrameSource, PhysMem};

/// Why a mapping could not be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// `va`, `pa` or `len` is not a multiple of the smallest leaf.
    Misaligned,
    /// The frame source had no memory for a table.
    NoMemory,
    /// Something is already mapped at this virtual address.
    AlreadyMapped(u64),
}

/// What a [`map_range`] call built.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MapStats {
    /// Tables allocated.
    pub tables: u64,
    /// Leaves written, per level (index = level).
    pub leaves: [u64; 6],
}

/// Allocates a table for `level` and fills it with that level's empty entry.
pub fn new_table<F: PageTableFormat, M: PhysMem + FrameSource>(
    mem: &mut M,
    level: usize,
) -> Option<PhysAddr> {
    let geometry = &F::LEVELS[level];
    let table = mem.alloc_frames(
        geometry.table_bytes,
        geometry.table_align,
        FramePurpose::PageTable,
    )?;
    mem.fill_u64(table, geometry.entries(), F::empty_entry(level));
    Some(table)
}

/// Maps `[pa, pa + len)` at `va` under `root` with `attrs`. Nothing already mapped is
/// changed: a clash stops the call with [`MapError::AlreadyMapped`], leaving what was
/// mapped before it in place.
pub fn map_range<F: PageTableFormat, M: PhysMem + FrameSource>(
    mem: &mut M,
    root: PhysAddr,
    va: u64,
    pa: u64,
    len: u64,
    attrs: EntryAttrs,
    features: Features,
) -> Result<MapStats, MapError> {
    let base = F::LEVELS[F::last_level()].entry_span();
    if !(va.is_multiple_of(base) && pa.is_multiple_of(base) && len.is_multiple_of(base)) {
        return Err(MapError::Misaligned);
    }
    let mut stats = MapStats::default();
    let mut done = 0;
    while done < len {
        let (v, p) = (va + done, pa + done);
        let level = leaf_level::<F>(v, p, len - done, features);
        let table = walk_to::<F, M>(mem, root, v, level, &mut stats)?;
        let span = F::LEVELS[level].entry_span();
        // Fill this table's run of same-size leaves without walking from the root again.
        for index in F::index(level, v)..F::LEVELS[level].entries() {
            let (v, p) = (va + done, pa + done);
            if done >= len || leaf_level::<F>(v, p, len - done, features) != level {
                break;
            }
            let slot = table.add(index as u64 * 8);
            if F::decode(level, mem.read_u64(slot)) != Entry::Empty {
                return Err(MapError::AlreadyMapped(v));
            }
            mem.write_u64(slot, F::leaf_entry(level, PhysAddr(p), attrs));
            stats.leaves[level] += 1;
            done += span;
        }
    }
    Ok(stats)
}

/// The highest level (largest span) that may hold a leaf for this step.
fn leaf_level<F: PageTableFormat>(va: u64, pa: u64, left: u64, features: Features) -> usize {
    (0..F::LEVELS.len())
        .find(|&level| {
            let span = F::LEVELS[level].entry_span();
            F::leaf_allowed(level, features)
                && va.is_multiple_of(span)
                && pa.is_multiple_of(span)
                && left >= span
        })
        .unwrap_or(F::last_level())
}

/// Walks from the root to the table of `level` covering `va`, creating missing tables.
fn walk_to<F: PageTableFormat, M: PhysMem + FrameSource>(
    mem: &mut M,
    root: PhysAddr,
    va: u64,
    level: usize,
    stats: &mut MapStats,
) -> Result<PhysAddr, MapError> {
    let mut table = root;
    for upper in 0..level {
        let slot = table.add(F::index(upper, va) as u64 * 8);
        table = match F::decode(upper, mem.read_u64(slot)) {
            Entry::Table(next) => next,
            Entry::Empty => {
                let next = new_table::<F, M>(mem, upper + 1).ok_or(MapError::NoMemory)?;
                mem.write_u64(slot, F::table_entry(upper, next));
                stats.tables += 1;
                next
            }
            Entry::Leaf { .. } | Entry::Malformed => return Err(MapError::AlreadyMapped(va)),
        };
    }
    Ok(table)
}
