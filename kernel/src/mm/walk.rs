//! A software MMU for any format: translate one address, list each level's entry on the
//! way, or dump every mapping, by reading the tables through [`PhysMem`] — simulated
//! memory on the host, the live tables on the target (the `walk` command, verification).

use alloc::vec::Vec;

use crate::mm::addr::PhysAddr;
use crate::mm::pgtable::{Entry, EntryAttrs, Features, PageTableFormat};
use crate::mm::phys::PhysMem;

/// A successful translation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translation {
    /// The physical address of the byte.
    pub phys: PhysAddr,
    /// The leaf's frame.
    pub frame: PhysAddr,
    /// The leaf's size.
    pub leaf_bytes: u64,
    /// The leaf's level.
    pub level: usize,
    /// The leaf's attributes.
    pub attrs: EntryAttrs,
}

/// Why a translation failed (the exception the hardware would raise).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalkFault {
    /// An empty entry (page / segment / region translation exception).
    NotMapped {
        /// Where.
        level: usize,
    },
    /// A malformed entry or misaligned table or frame (translation specification).
    Malformed {
        /// Where.
        level: usize,
        /// The raw entry.
        entry: u64,
    },
    /// A leaf at a level the CPU features do not allow.
    LeafNotAllowed {
        /// Where.
        level: usize,
    },
}

/// Translates `va` through the tables at `root`.
pub fn translate<F: PageTableFormat, M: PhysMem>(
    mem: &M,
    root: PhysAddr,
    features: Features,
    va: u64,
) -> Result<Translation, WalkFault> {
    let mut table = root;
    for level in 0..F::LEVELS.len() {
        let raw = mem.read_u64(table.add(F::index(level, va) as u64 * 8));
        let span = F::LEVELS[level].entry_span();
        match F::decode(level, raw) {
            Entry::Empty => return Err(WalkFault::NotMapped { level }),
            Entry::Malformed => return Err(WalkFault::Malformed { level, entry: raw }),
            Entry::Leaf { frame, attrs } => {
                if !F::leaf_allowed(level, features) {
                    return Err(WalkFault::LeafNotAllowed { level });
                }
                if !frame.is_aligned(span) {
                    return Err(WalkFault::Malformed { level, entry: raw });
                }
                return Ok(Translation {
                    phys: frame.add(va & (span - 1)),
                    frame,
                    leaf_bytes: span,
                    level,
                    attrs,
                });
            }
            Entry::Table(next) => {
                let misaligned = level + 1 < F::LEVELS.len()
                    && !next.is_aligned(F::LEVELS[level + 1].table_align);
                if level == F::last_level() || misaligned {
                    return Err(WalkFault::Malformed { level, entry: raw });
                }
                table = next;
            }
        }
    }
    unreachable!("the last level holds only leaves")
}

/// One leaf mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Mapping {
    /// Canonical virtual address.
    pub va: u64,
    /// Physical frame.
    pub frame: PhysAddr,
    /// Size.
    pub bytes: u64,
    /// Level.
    pub level: usize,
}

/// Every table and leaf reachable from a root.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableDump {
    /// Tables as (level, address), root included.
    pub tables: Vec<(usize, PhysAddr)>,
    /// Leaves, by address.
    pub leaves: Vec<Mapping>,
}

/// Walks the whole hierarchy at `root`.
pub fn dump<F: PageTableFormat, M: PhysMem>(
    mem: &M,
    root: PhysAddr,
) -> Result<TableDump, WalkFault> {
    let mut out = TableDump::default();
    dump_table::<F, M>(mem, 0, root, 0, &mut out)?;
    out.leaves.sort();
    Ok(out)
}

fn dump_table<F: PageTableFormat, M: PhysMem>(
    mem: &M,
    level: usize,
    table: PhysAddr,
    base: u64,
    out: &mut TableDump,
) -> Result<(), WalkFault> {
    out.tables.push((level, table));
    let geometry = &F::LEVELS[level];
    for index in 0..geometry.entries() as u64 {
        let raw = mem.read_u64(table.add(index * 8));
        let va = base | (index << geometry.shift);
        match F::decode(level, raw) {
            Entry::Empty => {}
            Entry::Malformed => return Err(WalkFault::Malformed { level, entry: raw }),
            Entry::Leaf { frame, .. } => out.leaves.push(Mapping {
                va: F::canonical(va),
                frame,
                bytes: geometry.entry_span(),
                level,
            }),
            Entry::Table(next) if level < F::last_level() => {
                dump_table::<F, M>(mem, level + 1, next, va, out)?
            }
            Entry::Table(_) => return Err(WalkFault::Malformed { level, entry: raw }),
        }
    }
    Ok(())
}

/// One step of a walk: the level, the entry's physical address and its raw value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    /// Level (0 = root).
    pub level: usize,
    /// Physical address of the entry.
    pub entry_addr: PhysAddr,
    /// The raw entry.
    pub raw: u64,
    /// What it decodes to.
    pub entry: Entry,
}

/// The entries a walk of `va` reads, root first, up to the leaf or the first entry that
/// is not a table (at most one per level). No allocation: the steps are generated as the
/// walk goes.
pub fn steps<F: PageTableFormat, M: PhysMem>(
    mem: &M,
    root: PhysAddr,
    va: u64,
) -> impl Iterator<Item = Step> + '_ {
    let mut next = Some((0, root));
    core::iter::from_fn(move || {
        let (level, table) = next.take()?;
        let entry_addr = table.add(F::index(level, va) as u64 * 8);
        let raw = mem.read_u64(entry_addr);
        let entry = F::decode(level, raw);
        if let Entry::Table(child) = entry
            && level < F::last_level()
        {
            next = Some((level + 1, child));
        }
        Some(Step {
            level,
            entry_addr,
            raw,
            entry,
        })
    })
}
