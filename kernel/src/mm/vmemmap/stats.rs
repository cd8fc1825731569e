//! The walker's counters: [`VmemmapStats`], what is live now, and [`Tally`], what only
//! grows (diff two readings to see what the calls between them did).

use super::MAX_LEVELS;
use crate::mm::addr::PAGE_SIZE;

/// Live counters, cheap to read at any time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmemmapStats {
    /// Live tables per level (index = the table's level; the root is level 0).
    pub tables: [u64; MAX_LEVELS],
    /// Bytes of all live tables.
    pub table_bytes: u64,
    /// Huge leaves backed by an altmap.
    pub huge_leaves_altmap: u64,
    /// Huge leaves backed by RAM.
    pub huge_leaves_ram: u64,
    /// Base-page leaves backed by an altmap.
    pub base_leaves_altmap: u64,
    /// Base-page leaves backed by RAM.
    pub base_leaves_ram: u64,
    /// Pages of live leaves taken from altmaps.
    pub altmap_pages: u64,
    /// Bytes of live leaves taken from RAM.
    pub ram_leaf_bytes: u64,
}

impl VmemmapStats {
    /// Total live table pages, counting a table smaller than a page as a fraction.
    pub fn table_pages(&self) -> u64 {
        self.table_bytes.div_ceil(PAGE_SIZE)
    }

    /// Total live leaves.
    pub fn leaves(&self) -> u64 {
        self.huge_leaves_altmap
            + self.huge_leaves_ram
            + self.base_leaves_altmap
            + self.base_leaves_ram
    }
}

/// Counters that only grow: diff two readings to see what the calls between them did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Leaves taken from RAM although the call had an altmap, because the arch's policy
    /// passes none for the range (Linux's sub-section rule).
    pub ram_leaves_by_policy: u64,
    /// Leaves taken from RAM although the call had an altmap, because the semantics say
    /// so (`rfc-2017`: the RFC's base-page path).
    pub ram_leaves_by_semantics: u64,
    /// Hazards named by the checker (`linux`, `rfc-2017`).
    pub hazards: u64,
}
