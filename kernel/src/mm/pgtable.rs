//! The page-table format trait: what a walker needs to know about one architecture's
//! translation tables, as associated constants plus encode/decode functions on raw `u64`
//! entries. No `cfg(target_arch)`: every format compiles and is tested on the host, and
//! the same code builds live tables on the target.
//!
//! Levels are numbered from the root: level 0 is the table the root register points to,
//! level `LEVELS.len() - 1` holds base-page entries.

use bitflags::bitflags;

use super::addr::PhysAddr;

/// Geometry of one translation level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LevelGeometry {
    /// Name as the architecture calls it (e.g. `"PMD"`, `"L2"`, `"segment"`).
    pub name: &'static str,
    /// log2 of the address span one entry of this level maps.
    pub shift: u32,
    /// Number of index bits (entries = `1 << index_bits`).
    pub index_bits: u32,
    /// Size of a table of this level in bytes.
    pub table_bytes: u64,
    /// Required alignment of such a table.
    pub table_align: u64,
}

impl LevelGeometry {
    /// Bytes one entry maps.
    pub const fn entry_span(&self) -> u64 {
        1 << self.shift
    }

    /// Entries in a table.
    pub const fn entries(&self) -> usize {
        1 << self.index_bits
    }
}

bitflags! {
    /// CPU features a format's choices depend on.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Features: u32 {
        /// x86: page-size extension, 2 MiB PMD leaves.
        const PSE = 1 << 0;
        /// x86: 1 GiB PDPT leaves.
        const PDPE1GB = 1 << 1;
        /// No-execute bit usable: x86 EFER.NXE, arm64 (always), s390x IEP (facility 130).
        const NO_EXECUTE = 1 << 2;
        /// s390x EDAT-1 (facility 8): 1 MiB segment leaves.
        const EDAT1 = 1 << 3;
        /// s390x EDAT-2 (facility 78): 2 GiB region-third leaves.
        const EDAT2 = 1 << 4;
    }
}

bitflags! {
    /// Attributes of a leaf mapping.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct EntryAttrs: u32 {
        /// Writable (otherwise read-only).
        const WRITABLE = 1 << 0;
        /// Not executable.
        const NO_EXECUTE = 1 << 1;
        /// Global (not tagged with an address-space id).
        const GLOBAL = 1 << 2;
        /// Device memory (uncached / nGnRnE).
        const DEVICE = 1 << 3;
        /// Software bit (the CPU ignores it): the leaf's frame came from a `vmem_altmap`,
        /// so the vmemmap walker gives it back to one. The page tables are the record of
        /// which leaves an altmap owns.
        const ALTMAP = 1 << 4;
    }
}

impl EntryAttrs {
    /// Kernel data such as the memmap: writable, global, and not executable when the CPU
    /// supports that.
    pub fn kernel_data(features: Features) -> EntryAttrs {
        let mut attrs = EntryAttrs::WRITABLE | EntryAttrs::GLOBAL;
        if features.contains(Features::NO_EXECUTE) {
            attrs |= EntryAttrs::NO_EXECUTE;
        }
        attrs
    }
}

/// A decoded entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// Invalid: maps nothing.
    Empty,
    /// Points to a table of the next level.
    Table(PhysAddr),
    /// Maps `entry_span` bytes at `frame`.
    Leaf {
        /// Physical address of the frame.
        frame: PhysAddr,
        /// Its attributes.
        attrs: EntryAttrs,
    },
    /// Would raise a translation-specification (or reserved-bit) fault.
    Malformed,
}

/// One architecture's translation-table format.
pub trait PageTableFormat {
    /// Short name for messages, e.g. `"x86_64-4level"`.
    const NAME: &'static str;
    /// Levels from the root down.
    const LEVELS: &'static [LevelGeometry];
    /// Implemented virtual-address bits (addresses are sign-extended above them).
    const VA_BITS: u32;

    /// Whether `level` may hold a leaf, given the CPU features. The last level always may.
    fn leaf_allowed(level: usize, features: Features) -> bool;
    /// The value of an empty entry at `level` (what new tables are filled with).
    fn empty_entry(level: usize) -> u64;
    /// An entry at `level` pointing to a table of level `level + 1`.
    fn table_entry(level: usize, table: PhysAddr) -> u64;
    /// A leaf entry at `level` mapping `frame` (aligned to the level's span).
    fn leaf_entry(level: usize, frame: PhysAddr, attrs: EntryAttrs) -> u64;
    /// Decodes an entry read from a table of `level`.
    fn decode(level: usize, entry: u64) -> Entry;
    /// The value to load into the root register (CR3, TTBR1_EL1, CR1 ASCE).
    fn root_register(root: PhysAddr) -> u64;

    /// Index of the last level.
    #[inline]
    fn last_level() -> usize {
        Self::LEVELS.len() - 1
    }

    /// Index of `va` in a table of `level`.
    #[inline]
    fn index(level: usize, va: u64) -> usize {
        let geometry = &Self::LEVELS[level];
        ((va >> geometry.shift) & ((1 << geometry.index_bits) - 1)) as usize
    }

    /// Sign-extends an address built from indices to its canonical form.
    #[inline]
    fn canonical(va: u64) -> u64 {
        if Self::VA_BITS >= 64 {
            va
        } else {
            let unused = 64 - Self::VA_BITS;
            (((va << unused) as i64) >> unused) as u64
        }
    }

    /// The lowest level whose entries map exactly `bytes`, if any.
    fn level_for_span(bytes: u64) -> Option<usize> {
        Self::LEVELS.iter().position(|g| g.entry_span() == bytes)
    }
}
