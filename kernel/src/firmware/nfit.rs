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
//! The ACPI header helpers at the bottom ([`TableError`], `sdt_body`) are shared with
//! the SRAT parser.

use alloc::vec::Vec;

use crate::heap::fallible::{TryVec, try_collect};
use core::fmt;
use core::ops::Range;

/// An ACPI GUID as stored: the first three fields little-endian, the last 8 bytes as is.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    /// The GUID written `d1-d2-d3-d4[0..2]-d4[2..8]`, in its stored byte order.
    pub const fn new(d1: u32, d2: u16, d3: u16, d4: [u8; 8]) -> Guid {
        let a = d1.to_le_bytes();
        let b = d2.to_le_bytes();
        let c = d3.to_le_bytes();
        Guid([
            a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d4[0], d4[1], d4[2], d4[3], d4[4],
            d4[5], d4[6], d4[7],
        ])
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = &self.0;
        let d1 = u32::from_le_bytes([g[0], g[1], g[2], g[3]]);
        let d2 = u16::from_le_bytes([g[4], g[5]]);
        let d3 = u16::from_le_bytes([g[6], g[7]]);
        write!(f, "{d1:08X}-{d2:04X}-{d3:04X}-{:02X}{:02X}-", g[8], g[9])?;
        g[10..].iter().try_for_each(|b| write!(f, "{b:02X}"))
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Guid({self})")
    }
}

/// Byte-addressable persistent memory: 66F0D379-B4F3-4074-AC43-0D3318B78CDB.
pub const PMEM_GUID: Guid = Guid::new(
    0x66F0_D379,
    0xB4F3,
    0x4074,
    [0xAC, 0x43, 0x0D, 0x33, 0x18, 0xB7, 0x8C, 0xDB],
);
/// Volatile memory: 7305944F-FDDA-44E3-B16C-3F22D252E5D0.
pub const VOLATILE_GUID: Guid = Guid::new(
    0x7305_944F,
    0xFDDA,
    0x44E3,
    [0xB1, 0x6C, 0x3F, 0x22, 0xD2, 0x52, 0xE5, 0xD0],
);
/// NVDIMM control region: 92F701F6-13B4-405D-910B-299367E8234C.
pub const CONTROL_REGION_GUID: Guid = Guid::new(
    0x92F7_01F6,
    0x13B4,
    0x405D,
    [0x91, 0x0B, 0x29, 0x93, 0x67, 0xE8, 0x23, 0x4C],
);
/// NVDIMM block data window: 91AF0530-5D86-470E-A6B0-0A2DB9408249.
pub const BLOCK_DATA_WINDOW_GUID: Guid = Guid::new(
    0x91AF_0530,
    0x5D86,
    0x470E,
    [0xA6, 0xB0, 0x0A, 0x2D, 0xB9, 0x40, 0x82, 0x49],
);

/// What an SPA range's address-range-type GUID says it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpaKind {
    /// Byte-addressable persistent memory (what becomes a pmem region).
    PersistentMemory,
    /// Volatile memory.
    Volatile,
    /// NVDIMM control region.
    ControlRegion,
    /// NVDIMM block data window.
    BlockDataWindow,
    /// Any other GUID (virtual disks, CDs, ...).
    Other,
}

impl SpaKind {
    /// Classifies a GUID.
    pub fn of(guid: &Guid) -> SpaKind {
        match *guid {
            PMEM_GUID => SpaKind::PersistentMemory,
            VOLATILE_GUID => SpaKind::Volatile,
            CONTROL_REGION_GUID => SpaKind::ControlRegion,
            BLOCK_DATA_WINDOW_GUID => SpaKind::BlockDataWindow,
            _ => SpaKind::Other,
        }
    }
}

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

/// An SPA range named in an error: index and `[base, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpaSpan {
    /// SPA range structure index.
    pub index: u16,
    /// First byte.
    pub base: u64,
    /// One past the last byte.
    pub end: u64,
}

impl fmt::Display for SpaSpan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "spa {} {:#x}-{:#x}", self.index, self.base, self.end)
    }
}

/// Why an NFIT or FIT buffer was refused. Offsets count from the start of the bytes
/// given (the table header included for [`parse_table`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NfitError {
    /// The ACPI header is wrong.
    Table(TableError),
    /// Fewer bytes remain than a structure header (4).
    Truncated {
        /// Where the structure starts.
        offset: usize,
        /// Bytes left.
        remaining: usize,
    },
    /// A structure with length 0.
    ZeroLength {
        /// Where it starts.
        offset: usize,
        /// Its type.
        ty: u16,
    },
    /// A structure shorter than its type's minimum.
    TooShort {
        /// Where it starts.
        offset: usize,
        /// Its type.
        ty: u16,
        /// Its length field.
        length: usize,
        /// The minimum for the type.
        min: usize,
    },
    /// A structure whose length runs past the end of the table.
    PastEnd {
        /// Where it starts.
        offset: usize,
        /// Its type.
        ty: u16,
        /// Its length field.
        length: usize,
        /// Bytes left from its start.
        remaining: usize,
    },
    /// An SPA range whose `base + length` passes 2^64.
    Wraps {
        /// SPA range structure index.
        index: u16,
        /// Base.
        base: u64,
        /// Length.
        length: u64,
    },
    /// Two SPA ranges overlap.
    Overlap {
        /// The one with the lower base.
        first: SpaSpan,
        /// The other.
        second: SpaSpan,
    },
    /// A persistent-memory range outside every hotplug window.
    OutsideWindow {
        /// The range.
        range: SpaSpan,
        /// How many windows were checked.
        windows: usize,
    },
    /// The kernel heap refused room for the parsed structures.
    NoMemory,
}

impl From<TableError> for NfitError {
    fn from(e: TableError) -> Self {
        NfitError::Table(e)
    }
}

impl fmt::Display for NfitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "nfit: ")?;
        match self {
            NfitError::Table(e) => write!(f, "{e}"),
            NfitError::Truncated { offset, remaining } => write!(
                f,
                "truncated structure at offset {offset:#x}: {remaining} bytes left, a header needs 4"
            ),
            NfitError::ZeroLength { offset, ty } => {
                write!(f, "structure type {ty} at offset {offset:#x} has length 0")
            }
            NfitError::TooShort {
                offset,
                ty,
                length,
                min,
            } => write!(
                f,
                "structure type {ty} at offset {offset:#x} has length {length}, shorter than its minimum {min}"
            ),
            NfitError::PastEnd {
                offset,
                ty,
                length,
                remaining,
            } => write!(
                f,
                "structure type {ty} at offset {offset:#x} has length {length}, past the end of the table ({remaining} bytes left)"
            ),
            NfitError::Wraps {
                index,
                base,
                length,
            } => write!(
                f,
                "spa {index} base {base:#x} length {length:#x} wraps past the end of the address space"
            ),
            NfitError::Overlap { first, second } => write!(f, "{first} overlaps {second}"),
            NfitError::NoMemory => write!(f, "no heap room for the table (errno=-12)"),
            NfitError::OutsideWindow { range, windows } => write!(
                f,
                "{range} lies outside the hotplug window{}",
                if *windows == 1 { "" } else { "s" }
            ),
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

// ---- ACPI table framing, shared with `srat` ----

/// Length of the common ACPI table header.
pub const SDT_HEADER_LEN: usize = 36;

/// Why an ACPI table's header was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TableError {
    /// Fewer bytes than the fixed header.
    Short {
        /// Bytes given.
        len: usize,
        /// Bytes the fixed part needs.
        need: usize,
    },
    /// The signature is not the expected one.
    Signature {
        /// What the bytes say.
        found: [u8; 4],
        /// What was expected.
        want: [u8; 4],
    },
    /// The header's length field is below the fixed part or past the bytes given.
    Length {
        /// The length field.
        declared: u32,
        /// Bytes given.
        available: usize,
        /// Bytes the fixed part needs.
        need: usize,
    },
    /// The bytes of the table do not sum to zero.
    Checksum {
        /// Their sum modulo 256.
        sum: u8,
    },
}

impl fmt::Display for TableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TableError::Short { len, need } => {
                write!(
                    f,
                    "table of {len} bytes is shorter than its {need}-byte fixed part"
                )
            }
            TableError::Signature { found, want } => write!(
                f,
                "signature \"{}\" is not \"{}\"",
                found.escape_ascii(),
                want.escape_ascii()
            ),
            TableError::Length {
                declared,
                available,
                need,
            } => write!(
                f,
                "header length {declared} is outside {need}..={available} (fixed part..=bytes given)"
            ),
            TableError::Checksum { sum } => {
                write!(f, "checksum mismatch: the bytes sum to {sum:#04x}, not 0")
            }
        }
    }
}

/// Checks an ACPI table's header (signature, length, checksum) and returns the bytes after
/// the header and `reserved` more bytes, with the table revision. Bytes past the header's
/// length are ignored.
pub(crate) fn sdt_body<'a>(
    bytes: &'a [u8],
    signature: &[u8; 4],
    reserved: usize,
) -> Result<(&'a [u8], u8), TableError> {
    let need = SDT_HEADER_LEN + reserved;
    if bytes.len() < need {
        return Err(TableError::Short {
            len: bytes.len(),
            need,
        });
    }
    let found = [bytes[0], bytes[1], bytes[2], bytes[3]];
    if &found != signature {
        return Err(TableError::Signature {
            found,
            want: *signature,
        });
    }
    let declared = le32(bytes, 4);
    let length = usize::try_from(declared).unwrap_or(usize::MAX);
    if length < need || length > bytes.len() {
        return Err(TableError::Length {
            declared,
            available: bytes.len(),
            need,
        });
    }
    let table = &bytes[..length];
    let sum = table.iter().fold(0u8, |s, b| s.wrapping_add(*b));
    if sum != 0 {
        return Err(TableError::Checksum { sum });
    }
    Ok((&table[need..], table[8]))
}

/// Little-endian readers; callers have checked the length.
pub(crate) fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

pub(crate) fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

pub(crate) fn le64(b: &[u8], at: usize) -> u64 {
    u64::from(le32(b, at)) | u64::from(le32(b, at + 4)) << 32
}

/// Byte builders for tests: structures, whole tables, and what QEMU 10 emits.
#[cfg(test)]
pub(crate) mod fixture {
    use super::*;

    /// An ACPI table around `body`: header (QEMU's OEM fields), checksum fixed up.
    pub fn table(signature: &[u8; 4], revision: u8, body: &[u8]) -> Vec<u8> {
        let mut t = Vec::new();
        t.extend_from_slice(signature);
        t.extend_from_slice(&((SDT_HEADER_LEN + body.len()) as u32).to_le_bytes());
        t.push(revision);
        t.push(0);
        t.extend_from_slice(b"BOCHS ");
        t.extend_from_slice(b"BXPC    ");
        t.extend_from_slice(&1u32.to_le_bytes());
        t.extend_from_slice(b"BXPC");
        t.extend_from_slice(&1u32.to_le_bytes());
        t.extend_from_slice(body);
        let sum = t.iter().fold(0u8, |s, b| s.wrapping_add(*b));
        t[9] = sum.wrapping_neg();
        t
    }

    /// An NFIT table (4 reserved bytes, then the structures).
    pub fn nfit_table(structures: &[u8]) -> Vec<u8> {
        let mut body = alloc::vec![0; 4];
        body.extend_from_slice(structures);
        table(b"NFIT", 1, &body)
    }

    fn header(out: &mut Vec<u8>, ty: u16, len: u16) {
        out.extend_from_slice(&ty.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
    }

    /// A 56-byte SPA range structure.
    pub fn spa(
        out: &mut Vec<u8>,
        index: u16,
        flags: u16,
        node: u32,
        guid: Guid,
        base: u64,
        len: u64,
    ) {
        header(out, TYPE_SPA, 56);
        out.extend_from_slice(&index.to_le_bytes());
        out.extend_from_slice(&flags.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&node.to_le_bytes());
        out.extend_from_slice(&guid.0);
        out.extend_from_slice(&base.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&0x8008u64.to_le_bytes());
    }

    /// A 48-byte memory-device mapping as QEMU builds it.
    pub fn memdev(out: &mut Vec<u8>, handle: u32, spa_index: u16, dcr_index: u16, size: u64) {
        header(out, TYPE_MEMDEV, 48);
        out.extend_from_slice(&handle.to_le_bytes());
        out.extend_from_slice(&(handle as u16).to_le_bytes()); // physical id
        out.extend_from_slice(&0u16.to_le_bytes()); // region id
        out.extend_from_slice(&spa_index.to_le_bytes());
        out.extend_from_slice(&dcr_index.to_le_bytes());
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&0u64.to_le_bytes()); // region offset
        out.extend_from_slice(&0u64.to_le_bytes()); // DPA
        out.extend_from_slice(&0u16.to_le_bytes()); // interleave index
        out.extend_from_slice(&1u16.to_le_bytes()); // interleave ways
        out.extend_from_slice(&0u16.to_le_bytes()); // flags
        out.extend_from_slice(&0u16.to_le_bytes());
    }

    /// An 80-byte control region as QEMU builds it (vendor 0x8086, device 1, FIC 0x301).
    pub fn dcr(out: &mut Vec<u8>, index: u16, serial: u32) {
        let start = out.len();
        header(out, TYPE_CONTROL_REGION, 80);
        out.extend_from_slice(&index.to_le_bytes());
        out.extend_from_slice(&0x8086u16.to_le_bytes());
        out.extend_from_slice(&1u16.to_le_bytes());
        out.extend_from_slice(&1u16.to_le_bytes());
        out.resize(start + 24, 0);
        out.extend_from_slice(&serial.to_le_bytes());
        out.extend_from_slice(&0x301u16.to_le_bytes());
        out.resize(start + 80, 0);
    }

    /// The FIT QEMU builds for NVDIMMs `(slot, base, size, node)`: per device an SPA
    /// range (index 2(slot+1), flags 0x3), a mapping (handle slot+1) and a control
    /// region (index spa+1, serial 0x123456+slot) — 184 bytes each.
    pub fn qemu_fit(dimms: &[(u32, u64, u64, u32)]) -> Vec<u8> {
        let mut out = Vec::new();
        for &(slot, base, size, node) in dimms {
            let handle = slot + 1;
            let spa_index = 2 * handle as u16;
            spa(&mut out, spa_index, 0x3, node, PMEM_GUID, base, size);
            memdev(&mut out, handle, spa_index, spa_index + 1, size);
            dcr(&mut out, spa_index + 1, 0x123456 + slot);
        }
        out
    }

    /// q35 `-m 512M,slots=4,maxmem=8G` with two cold-plugged NVDIMMs whose backends are
    /// 256 MiB and 512 MiB with `label-size=128K`: QEMU shows each minus its label and
    /// places them first-fit (file backends align to 4 KiB) from the window at 4 GiB.
    pub const QEMU_X86_TWO_NVDIMMS: [(u32, u64, u64, u32); 2] = [
        (0, 0x1_0000_0000, 0x0ffe_0000, 0),
        (1, 0x1_0ffe_0000, 0x1ffe_0000, 0),
    ];

    /// The same machine with backends sized `data + label` (256 MiB + 128 KiB and
    /// 512 MiB + 128 KiB), so every range is 2 MiB aligned.
    pub const QEMU_X86_TWO_NVDIMMS_ALIGNED: [(u32, u64, u64, u32); 2] = [
        (0, 0x1_0000_0000, 0x1000_0000, 0),
        (1, 0x1_1000_0000, 0x2000_0000, 0),
    ];
}

#[cfg(test)]
mod tests {
    use super::fixture::*;
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;
    use proptest::prelude::*;

    const MIB: u64 = 1 << 20;

    fn two_pmem(a: (u64, u64), b: (u64, u64)) -> Vec<u8> {
        let mut s = Vec::new();
        spa(&mut s, 1, 0x2, 0, PMEM_GUID, a.0, a.1);
        spa(&mut s, 2, 0x2, 1, PMEM_GUID, b.0, b.1);
        s
    }

    #[test]
    fn pmem_guid_is_stored_mixed_endian() {
        let stored = [
            0x79, 0xd3, 0xf0, 0x66, 0xf3, 0xb4, 0x74, 0x40, 0xac, 0x43, 0x0d, 0x33, 0x18, 0xb7,
            0x8c, 0xdb,
        ];
        assert_eq!(PMEM_GUID.0, stored);
        assert_eq!(
            PMEM_GUID.to_string(),
            "66F0D379-B4F3-4074-AC43-0D3318B78CDB"
        );
        let mut swapped = stored;
        swapped[..4].reverse();
        assert_eq!(SpaKind::of(&Guid(swapped)), SpaKind::Other);
    }

    #[test]
    fn qemu_two_nvdimm_table_parses_to_its_devices() {
        let fit = qemu_fit(&QEMU_X86_TWO_NVDIMMS);
        assert_eq!(fit.len(), 368, "QEMU: two NVDIMMs give 368 bytes of FIT");
        let table = nfit_table(&fit);
        let nfit = parse_table(&table).expect("valid");
        assert_eq!(nfit.revision, Some(1));
        let mut from_fit = parse_structures(&fit).expect("the same bytes as a FIT buffer");
        from_fit.revision = Some(1);
        assert_eq!(nfit, from_fit);
        let got: Vec<_> = nfit
            .pmem()
            .map(|s| (s.index, s.base, s.length, s.node(), s.mapping_attributes))
            .collect();
        assert_eq!(
            got,
            [
                (2, 0x1_0000_0000, 0x0ffe_0000, Some(0), 0x8008),
                (4, 0x1_0ffe_0000, 0x1ffe_0000, Some(0), 0x8008)
            ]
        );
        assert_eq!(nfit.control_regions, 2);
        assert_eq!(nfit.other, 0);
        let m: Vec<_> = nfit
            .mappings
            .iter()
            .map(|m| (m.handle, m.spa_index, m.control_region_index, m.region_size))
            .collect();
        assert_eq!(m, [(1, 2, 3, 0x0ffe_0000), (2, 4, 5, 0x1ffe_0000)]);
        let window = 0x1_0000_0000..0x3_e000_0000;
        assert_eq!(nfit.check_windows(&[window]), Ok(()));
    }

    #[test]
    fn other_guids_and_structures_are_classified_and_counted() {
        let mut s = Vec::new();
        spa(&mut s, 1, 0, 7, VOLATILE_GUID, 0x1000_0000, MIB);
        spa(&mut s, 2, 0, 0, CONTROL_REGION_GUID, 0x2000_0000, MIB);
        spa(&mut s, 3, 0, 0, BLOCK_DATA_WINDOW_GUID, 0x3000_0000, MIB);
        spa(&mut s, 4, 0, 0, Guid([7; 16]), 0x4000_0000, MIB);
        s.extend_from_slice(&[7, 0, 16, 0]); // platform capabilities
        s.extend_from_slice(&[0; 12]);
        s.extend_from_slice(&[0x99, 0, 4, 0]); // unknown type, header only
        let nfit = parse_structures(&s).expect("valid");
        let kinds: Vec<_> = nfit.spa.iter().map(|s| s.kind()).collect();
        assert_eq!(
            kinds,
            [
                SpaKind::Volatile,
                SpaKind::ControlRegion,
                SpaKind::BlockDataWindow,
                SpaKind::Other
            ]
        );
        assert_eq!(nfit.spa[0].node(), None, "proximity not flagged valid");
        assert_eq!((nfit.pmem().count(), nfit.other), (0, 2));
        assert_eq!(parse_structures(&[]), Ok(Nfit::default()));
    }

    #[test]
    fn header_problems_are_refused() {
        let good = nfit_table(&qemu_fit(&QEMU_X86_TWO_NVDIMMS_ALIGNED));
        let err = |b: &[u8]| parse_table(b).unwrap_err().to_string();

        assert_eq!(
            err(&good[..20]),
            "nfit: table of 20 bytes is shorter than its 40-byte fixed part"
        );
        let mut bad = good.clone();
        bad[0] = b'X';
        assert_eq!(err(&bad), "nfit: signature \"XFIT\" is not \"NFIT\"");
        assert_eq!(
            err(&good[..good.len() - 1]),
            "nfit: header length 408 is outside 40..=407 (fixed part..=bytes given)"
        );
        let mut bad = good.clone();
        bad[100] ^= 0x10;
        assert_eq!(
            err(&bad),
            "nfit: checksum mismatch: the bytes sum to 0x10, not 0"
        );
        let mut trailing = good.clone();
        trailing.extend_from_slice(&[0xff; 9]);
        assert!(
            parse_table(&trailing).is_ok(),
            "bytes past the length are ignored"
        );
    }

    #[test]
    fn hostile_structures_get_one_error_each() {
        let fit = qemu_fit(&QEMU_X86_TWO_NVDIMMS_ALIGNED);
        let table_err = |s: &[u8]| parse_table(&nfit_table(s)).unwrap_err();

        // Truncated: 2 stray bytes after the last structure.
        let mut s = fit.clone();
        s.extend_from_slice(&[0, 0]);
        assert_eq!(
            table_err(&s),
            NfitError::Truncated {
                offset: 40 + 368,
                remaining: 2
            }
        );
        assert_eq!(
            table_err(&s).to_string(),
            "nfit: truncated structure at offset 0x198: 2 bytes left, a header needs 4"
        );

        // Length 0.
        let mut s = fit.clone();
        s[2..4].copy_from_slice(&0u16.to_le_bytes());
        assert_eq!(table_err(&s), NfitError::ZeroLength { offset: 40, ty: 0 });

        // Shorter than the type's minimum.
        let mut s = fit.clone();
        s[58..60].copy_from_slice(&40u16.to_le_bytes()); // the memdev after the first SPA
        assert_eq!(
            parse_structures(&s).unwrap_err().to_string(),
            "nfit: structure type 1 at offset 0x38 has length 40, shorter than its minimum 48"
        );

        // Past the end.
        let mut s = fit.clone();
        let last_dcr = 368 - 80;
        s[last_dcr + 2..last_dcr + 4].copy_from_slice(&200u16.to_le_bytes());
        assert_eq!(
            parse_structures(&s).unwrap_err(),
            NfitError::PastEnd {
                offset: last_dcr,
                ty: 4,
                length: 200,
                remaining: 80
            }
        );

        // A structure cut short by the table end.
        assert!(matches!(
            parse_structures(&fit[..100]),
            Err(NfitError::PastEnd { offset: 56, .. })
        ));
    }

    #[test]
    fn overlapping_ranges_name_both() {
        let s = two_pmem((0x1_0000_0000, 256 * MIB), (0x1_0800_0000, 256 * MIB));
        let e = parse_table(&nfit_table(&s)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "nfit: spa 1 0x100000000-0x110000000 overlaps spa 2 0x108000000-0x118000000"
        );
        // Listed in the other order: still the lower base first.
        let s = two_pmem((0x1_0800_0000, 256 * MIB), (0x1_0000_0000, 256 * MIB));
        assert!(matches!(
            parse_structures(&s),
            Err(NfitError::Overlap {
                first: SpaSpan { index: 2, .. },
                second: SpaSpan { index: 1, .. }
            })
        ));
        // Touching is fine, and so is a contained empty range.
        let s = two_pmem((0x1_0000_0000, 256 * MIB), (0x1_1000_0000, 256 * MIB));
        assert!(parse_structures(&s).is_ok());
        let s = two_pmem((0x1_0000_0000, 256 * MIB), (0x1_0400_0000, 0));
        assert!(parse_structures(&s).is_ok());
    }

    #[test]
    fn wrapping_range_is_refused() {
        let s = two_pmem((u64::MAX - MIB, 2 * MIB), (0, MIB));
        assert!(matches!(
            parse_structures(&s),
            Err(NfitError::Wraps { index: 1, .. })
        ));
    }

    #[test]
    fn ranges_outside_the_window_are_named() {
        let nfit = parse_structures(&two_pmem(
            (0x1_0000_0000, 256 * MIB),
            (0x3_e000_0000, 256 * MIB),
        ))
        .expect("valid");
        let window = 0x1_0000_0000..0x3_e000_0000;
        let e = nfit
            .check_windows(core::slice::from_ref(&window))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "nfit: spa 2 0x3e0000000-0x3f0000000 lies outside the hotplug window"
        );
        assert_eq!(nfit.check_windows(&[]), Ok(()), "no window known");
        let two = [window, 0x3_e000_0000..0x4_0000_0000];
        assert_eq!(nfit.check_windows(&two), Ok(()));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = parse_structures(&bytes);
            let _ = parse_table(&bytes);
            let mut signed = bytes.clone();
            if signed.len() >= 10 {
                signed[..4].copy_from_slice(b"NFIT");
            }
            let _ = parse_table(&signed);
        }

        #[test]
        fn random_structures_in_a_valid_table_never_panic(
            structs in proptest::collection::vec(
                (0u16..9, 0u16..120, proptest::collection::vec(any::<u8>(), 0..120)),
                0..8,
            )
        ) {
            let mut s = Vec::new();
            for (ty, len, payload) in structs {
                s.extend_from_slice(&ty.to_le_bytes());
                s.extend_from_slice(&len.to_le_bytes());
                s.extend_from_slice(&payload);
            }
            if let Ok(nfit) = parse_table(&nfit_table(&s)) {
                for r in &nfit.spa {
                    prop_assert!(r.base.checked_add(r.length).is_some());
                }
            }
        }

        #[test]
        fn qemu_layout_round_trips(sizes in proptest::collection::vec(1u64..64, 1..4)) {
            let mut base = 0x1_0000_0000;
            let mut dimms = vec![];
            for (slot, mib) in sizes.iter().enumerate() {
                dimms.push((slot as u32, base, mib * 2 * MIB, 0));
                base += mib * 2 * MIB;
            }
            let nfit = parse_table(&nfit_table(&qemu_fit(&dimms))).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(nfit.pmem().count(), dimms.len());
            prop_assert_eq!(nfit.control_regions, dimms.len());
        }
    }
}
