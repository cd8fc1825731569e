//! ACPI NFIT (NVDIMM Firmware Interface Table), parsed from bytes.
//!
//! Two forms carry the same structures (qemu-hotplug.md §2.2): the static table (a
//! 36-byte ACPI header, 4 reserved bytes, then structures) and the FIT buffer QEMU hands
//! out through its DSM mailbox (the structures alone). [`parse_table`] checks the header
//! and checksum and then calls [`parse_structures`], which both forms share.
//!
//! Each structure starts with `type: u16, length: u16`. Kept: SPA ranges (type 0) and
//! memory-device-to-SPA mappings (type 1); control regions (type 4) and the rest are
//! counted. Hostile input gets one error each: truncated structure, zero or too-short
//! length, length past the table, bad checksum, overlapping SPA ranges (both named), and,
//! when the caller passes hotplug windows, a persistent-memory range outside them.
//!
//! Rooms: `guid` (the address-range-type GUIDs and what they mean), `error` (the one
//! error per refusal), `fixture` (byte builders for tests), `tests`. The ACPI header
//! framing the NFIT shares with the SRAT parser is [`super::sdt`].

use alloc::vec::Vec;
use core::ops::Range;

use crate::heap::fallible::{TryVec, try_collect};

use super::sdt::{le16, le32, le64, sdt_body};

mod error;
mod guid;

pub use super::sdt::{SDT_HEADER_LEN, TableError};
pub use error::{NfitError, SpaSpan};
pub use guid::{
    BLOCK_DATA_WINDOW_GUID, CONTROL_REGION_GUID, Guid, PMEM_GUID, SpaKind, VOLATILE_GUID,
};

#[cfg(test)]
pub(crate) mod fixture;
#[cfg(test)]
mod tests;

/// Structure types.
pub const TYPE_SPA: u16 = 0;
/// Memory device to SPA range mapping.
pub const TYPE_MEMDEV: u16 = 1;
/// NVDIMM control region.
pub const TYPE_CONTROL_REGION: u16 = 4;

/// SPA flag: the control region is only for hot-add.
pub const SPA_FLAG_HOTADD_ONLY: u16 = 1;
/// SPA flag: the proximity domain field is valid.
pub const SPA_FLAG_PROXIMITY_VALID: u16 = 2;

/// Smallest valid length of each structure type (ACPI 6.x; the control region may stop
/// before its block-window fields, as Linux's `sizeof_dcr` allows).
pub const fn min_len(ty: u16) -> usize {
    match ty {
        TYPE_SPA => 56,
        TYPE_MEMDEV => 48,
        2 => 16,
        3 => 8,
        TYPE_CONTROL_REGION => 32,
        5 => 40,
        6 => 16,
        7 => 16,
        _ => 4,
    }
}

/// A System Physical Address range structure (type 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpaRange {
    /// SPA range structure index (referenced by mappings).
    pub index: u16,
    /// Flags ([`SPA_FLAG_HOTADD_ONLY`], [`SPA_FLAG_PROXIMITY_VALID`]).
    pub flags: u16,
    /// Proximity domain (meaningful when [`SPA_FLAG_PROXIMITY_VALID`] is set).
    pub proximity_domain: u32,
    /// Address range type.
    pub guid: Guid,
    /// First byte.
    pub base: u64,
    /// Length in bytes.
    pub length: u64,
    /// EFI memory mapping attributes (QEMU: 0x8008, WB | NV).
    pub mapping_attributes: u64,
}

impl SpaRange {
    /// What the GUID says.
    pub fn kind(&self) -> SpaKind {
        SpaKind::of(&self.guid)
    }

    /// Whether this is byte-addressable persistent memory.
    pub fn is_pmem(&self) -> bool {
        self.kind() == SpaKind::PersistentMemory
    }

    /// One past the last byte (the parser refuses ranges that wrap).
    pub const fn end(&self) -> u64 {
        self.base + self.length
    }

    /// The NUMA node, if the firmware says it is valid.
    pub const fn node(&self) -> Option<u32> {
        if self.flags & SPA_FLAG_PROXIMITY_VALID != 0 {
            Some(self.proximity_domain)
        } else {
            None
        }
    }

    fn span(&self) -> SpaSpan {
        SpaSpan {
            index: self.index,
            base: self.base,
            end: self.end(),
        }
    }
}

/// A memory device to SPA range mapping (type 1): which NVDIMM backs which SPA range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemDevMapping {
    /// NFIT device handle (QEMU: slot + 1).
    pub handle: u32,
    /// NVDIMM physical id.
    pub physical_id: u16,
    /// NVDIMM region id.
    pub region_id: u16,
    /// The SPA range it maps into.
    pub spa_index: u16,
    /// Its control region.
    pub control_region_index: u16,
    /// Bytes of the device in that range.
    pub region_size: u64,
    /// Offset of the device in that range.
    pub region_offset: u64,
    /// Device physical address of the region's start.
    pub dpa: u64,
    /// Interleave ways.
    pub interleave_ways: u16,
    /// State flags (bit 3: not armed).
    pub flags: u16,
}

/// A parsed NFIT (or FIT buffer).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Nfit {
    /// Table revision (`None` for a bare FIT buffer).
    pub revision: Option<u8>,
    /// SPA ranges in table order.
    pub spa: Vec<SpaRange>,
    /// Memory device mappings in table order.
    pub mappings: Vec<MemDevMapping>,
    /// Control regions seen (type 4).
    pub control_regions: usize,
    /// Other structures seen (types 2, 3, 5, 6, 7 and unknown).
    pub other: usize,
}

impl Nfit {
    /// The byte-addressable persistent-memory ranges, in table order.
    pub fn pmem(&self) -> impl Iterator<Item = &SpaRange> {
        self.spa.iter().filter(|s| s.is_pmem())
    }

    /// Checks that every non-empty persistent-memory range lies wholly inside one of
    /// `windows`; the first one that does not is the error. No windows: nothing to check.
    pub fn check_windows(&self, windows: &[Range<u64>]) -> Result<(), NfitError> {
        if windows.is_empty() {
            return Ok(());
        }
        let outside = self.pmem().filter(|s| s.length != 0).find(|s| {
            !windows
                .iter()
                .any(|w| w.start <= s.base && s.end() <= w.end)
        });
        match outside {
            Some(s) => Err(NfitError::OutsideWindow {
                range: s.span(),
                windows: windows.len(),
            }),
            None => Ok(()),
        }
    }
}

/// Parses a whole NFIT: header, checksum, then the structures.
pub fn parse_table(bytes: &[u8]) -> Result<Nfit, NfitError> {
    let (body, revision) = sdt_body(bytes, b"NFIT", 4)?;
    let mut nfit = walk(body, SDT_HEADER_LEN + 4)?;
    nfit.revision = Some(revision);
    Ok(nfit)
}

/// Parses bare structures: a FIT buffer, or the part of an NFIT after its header.
pub fn parse_structures(bytes: &[u8]) -> Result<Nfit, NfitError> {
    walk(bytes, 0)
}

fn walk(bytes: &[u8], base_offset: usize) -> Result<Nfit, NfitError> {
    let mut nfit = Nfit::default();
    let mut rest = bytes;
    while !rest.is_empty() {
        let offset = base_offset + (bytes.len() - rest.len());
        if rest.len() < 4 {
            return Err(NfitError::Truncated {
                offset,
                remaining: rest.len(),
            });
        }
        let ty = le16(rest, 0);
        let length = usize::from(le16(rest, 2));
        let min = min_len(ty);
        if length == 0 {
            return Err(NfitError::ZeroLength { offset, ty });
        }
        if length < min {
            return Err(NfitError::TooShort {
                offset,
                ty,
                length,
                min,
            });
        }
        if length > rest.len() {
            return Err(NfitError::PastEnd {
                offset,
                ty,
                length,
                remaining: rest.len(),
            });
        }
        let (s, tail) = rest.split_at(length);
        match ty {
            TYPE_SPA => {
                let spa = parse_spa(s)?;
                nfit.spa.try_push(spa).map_err(|_| NfitError::NoMemory)?;
            }
            TYPE_MEMDEV => (nfit.mappings)
                .try_push(parse_memdev(s))
                .map_err(|_| NfitError::NoMemory)?,
            TYPE_CONTROL_REGION => nfit.control_regions += 1,
            _ => nfit.other += 1,
        }
        rest = tail;
    }
    check_overlaps(&nfit.spa)?;
    log::debug!(
        "nfit: spa={} pmem={} memdev={} dcr={} other={}",
        nfit.spa.len(),
        nfit.pmem().count(),
        nfit.mappings.len(),
        nfit.control_regions,
        nfit.other
    );
    Ok(nfit)
}

fn parse_spa(s: &[u8]) -> Result<SpaRange, NfitError> {
    let mut guid = [0; 16];
    guid.copy_from_slice(&s[16..32]);
    let range = SpaRange {
        index: le16(s, 4),
        flags: le16(s, 6),
        proximity_domain: le32(s, 12),
        guid: Guid(guid),
        base: le64(s, 32),
        length: le64(s, 40),
        mapping_attributes: le64(s, 48),
    };
    if range.base.checked_add(range.length).is_none() {
        return Err(NfitError::Wraps {
            index: range.index,
            base: range.base,
            length: range.length,
        });
    }
    Ok(range)
}

fn parse_memdev(s: &[u8]) -> MemDevMapping {
    MemDevMapping {
        handle: le32(s, 4),
        physical_id: le16(s, 8),
        region_id: le16(s, 10),
        spa_index: le16(s, 12),
        control_region_index: le16(s, 14),
        region_size: le64(s, 16),
        region_offset: le64(s, 24),
        dpa: le64(s, 32),
        interleave_ways: le16(s, 42),
        flags: le16(s, 44),
    }
}

/// Sorted by base, any overlap shows up between neighbours; empty ranges overlap nothing.
fn check_overlaps(spa: &[SpaRange]) -> Result<(), NfitError> {
    let mut spans: Vec<SpaSpan> =
        try_collect(spa.iter().filter(|s| s.length != 0).map(SpaRange::span))
            .map_err(|_| NfitError::NoMemory)?;
    spans.sort_by_key(|s| (s.base, s.end));
    match spans.windows(2).find(|w| w[1].base < w[0].end) {
        Some(w) => Err(NfitError::Overlap {
            first: w[0],
            second: w[1],
        }),
        None => Ok(()),
    }
}
