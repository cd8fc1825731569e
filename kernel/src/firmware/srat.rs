//! ACPI SRAT (System Resource Affinity Table), parsed from bytes for its memory-affinity
//! structures: the hot-pluggable window(s) and the non-volatile (NVDIMM) ranges.
//!
//! Layout: a 36-byte ACPI header, 12 reserved bytes, then structures of `type: u8,
//! length: u8`. Memory affinity is type 1, 40 bytes: proximity domain (u32 at 2), base
//! (u64 at 8), length (u64 at 16), flags (u32 at 28: enabled 0x1, hot-pluggable 0x2,
//! non-volatile 0x4). QEMU puts one HOTPLUGGABLE | ENABLED entry over the whole
//! device-memory window and one ENABLED | NON_VOLATILE entry per cold-plugged NVDIMM
//! (inside that window), plus disabled all-zero padding entries (qemu-hotplug.md §1.5).
//!
//! Hostile input is refused as for the NFIT: truncated structure, zero or too-short
//! length, length past the table, bad checksum, a range that wraps, and overlapping
//! hot-pluggable windows (both named). Other overlaps are legitimate (NVDIMM entries
//! inside the window) and are not errors. This is the kernel's one SRAT parser: the
//! region list and the `firmware` summary (`crate::firmware::acpi`) both use it, on a
//! table the `acpi` crate found (it has no SRAT type of its own).

use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;

use super::sdt::{SDT_HEADER_LEN, TableError, le32, le64, sdt_body};

/// Memory affinity flag: the entry is in use.
pub const MEM_ENABLED: u32 = 0x1;
/// Memory affinity flag: the range may be hot-plugged.
pub const MEM_HOTPLUGGABLE: u32 = 0x2;
/// Memory affinity flag: the range is non-volatile.
pub const MEM_NON_VOLATILE: u32 = 0x4;

/// Memory affinity structure type.
pub const TYPE_MEMORY: u8 = 1;

/// Smallest valid length of each structure type (ACPI 6.5).
pub const fn min_len(ty: u8) -> usize {
    match ty {
        0 => 16,           // processor local APIC/SAPIC
        TYPE_MEMORY => 40, // memory affinity
        2 => 24,           // processor local x2APIC
        3 => 18,           // GICC
        4 => 12,           // GIC ITS
        5 | 6 => 32,       // generic initiator / port
        7 => 20,           // RINTC
        _ => 2,
    }
}

/// One memory affinity structure.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemAffinity {
    /// Proximity domain (8 bits in SRAT revision 1, as Linux masks it).
    pub domain: u32,
    /// First byte.
    pub base: u64,
    /// Length in bytes.
    pub length: u64,
    /// Flags ([`MEM_ENABLED`], [`MEM_HOTPLUGGABLE`], [`MEM_NON_VOLATILE`]).
    pub flags: u32,
}

impl MemAffinity {
    /// One past the last byte (saturating: only disabled entries may wrap).
    pub const fn end(&self) -> u64 {
        self.base.saturating_add(self.length)
    }

    /// `[base, end)`.
    pub const fn range(&self) -> Range<u64> {
        self.base..self.end()
    }

    /// The entry is in use.
    pub const fn enabled(&self) -> bool {
        self.flags & MEM_ENABLED != 0
    }

    /// The hot-pluggable flag is set.
    pub const fn hotpluggable(&self) -> bool {
        self.flags & MEM_HOTPLUGGABLE != 0
    }

    /// An enabled, non-empty, hot-pluggable window.
    pub const fn is_hotplug_window(&self) -> bool {
        self.enabled() && self.flags & MEM_HOTPLUGGABLE != 0 && self.length != 0
    }

    /// An enabled, non-empty, non-volatile range (an NVDIMM).
    pub const fn is_non_volatile(&self) -> bool {
        self.enabled() && self.flags & MEM_NON_VOLATILE != 0 && self.length != 0
    }
}

/// A parsed SRAT.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Srat {
    /// Table revision (`None` for bare structures).
    pub revision: Option<u8>,
    /// Memory affinity structures in table order, disabled ones included.
    pub memory: Vec<MemAffinity>,
    /// Other structures seen (processor, GIC, ...).
    pub other: usize,
}

impl Srat {
    /// The hot-pluggable windows, in table order.
    pub fn hotplug_windows(&self) -> impl Iterator<Item = &MemAffinity> {
        self.memory.iter().filter(|m| m.is_hotplug_window())
    }

    /// The non-volatile ranges, in table order.
    pub fn non_volatile(&self) -> impl Iterator<Item = &MemAffinity> {
        self.memory.iter().filter(|m| m.is_non_volatile())
    }

    /// The windows as ranges, e.g. for [`super::nfit::Nfit::check_windows`].
    pub fn window_ranges(&self) -> Vec<Range<u64>> {
        self.hotplug_windows().map(MemAffinity::range).collect()
    }
}

/// Why an SRAT was refused. Offsets count from the start of the bytes given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SratError {
    /// The ACPI header is wrong.
    Table(TableError),
    /// Fewer bytes remain than a structure header (2).
    Truncated {
        /// Where the structure starts.
        offset: usize,
    },
    /// A structure with length 0.
    ZeroLength {
        /// Where it starts.
        offset: usize,
        /// Its type.
        ty: u8,
    },
    /// A structure shorter than its type's minimum.
    TooShort {
        /// Where it starts.
        offset: usize,
        /// Its type.
        ty: u8,
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
        ty: u8,
        /// Its length field.
        length: usize,
        /// Bytes left from its start.
        remaining: usize,
    },
    /// An enabled entry whose `base + length` passes 2^64.
    Wraps {
        /// Where it starts.
        offset: usize,
        /// Base.
        base: u64,
        /// Length.
        length: u64,
    },
    /// Two hot-pluggable windows overlap.
    Overlap {
        /// The one with the lower base.
        first: Range<u64>,
        /// The other.
        second: Range<u64>,
    },
}

impl From<TableError> for SratError {
    fn from(e: TableError) -> Self {
        SratError::Table(e)
    }
}

impl fmt::Display for SratError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "srat: ")?;
        match self {
            SratError::Table(e) => write!(f, "{e}"),
            SratError::Truncated { offset } => write!(
                f,
                "truncated structure at offset {offset:#x}: 1 byte left, a header needs 2"
            ),
            SratError::ZeroLength { offset, ty } => {
                write!(f, "structure type {ty} at offset {offset:#x} has length 0")
            }
            SratError::TooShort {
                offset,
                ty,
                length,
                min,
            } => write!(
                f,
                "structure type {ty} at offset {offset:#x} has length {length}, shorter than its minimum {min}"
            ),
            SratError::PastEnd {
                offset,
                ty,
                length,
                remaining,
            } => write!(
                f,
                "structure type {ty} at offset {offset:#x} has length {length}, past the end of the table ({remaining} bytes left)"
            ),
            SratError::Wraps {
                offset,
                base,
                length,
            } => write!(
                f,
                "memory affinity at offset {offset:#x}: base {base:#x} length {length:#x} wraps past the end of the address space"
            ),
            SratError::Overlap { first, second } => write!(
                f,
                "hot-pluggable window {:#x}-{:#x} overlaps window {:#x}-{:#x}",
                first.start, first.end, second.start, second.end
            ),
        }
    }
}

/// Parses a whole SRAT: header, checksum, then the structures. Revision 1 tables carry
/// 8-bit proximity domains.
pub fn parse_table(bytes: &[u8]) -> Result<Srat, SratError> {
    let (body, revision) = sdt_body(bytes, b"SRAT", 12)?;
    let mut srat = walk(body, SDT_HEADER_LEN + 12)?;
    if revision <= 1 {
        srat.memory.iter_mut().for_each(|m| m.domain &= 0xff);
    }
    srat.revision = Some(revision);
    Ok(srat)
}

/// Parses bare structures (the part of an SRAT after its 48-byte fixed part).
pub fn parse_structures(bytes: &[u8]) -> Result<Srat, SratError> {
    walk(bytes, 0)
}

fn walk(bytes: &[u8], base_offset: usize) -> Result<Srat, SratError> {
    let mut srat = Srat::default();
    let mut rest = bytes;
    while !rest.is_empty() {
        let offset = base_offset + (bytes.len() - rest.len());
        if rest.len() < 2 {
            return Err(SratError::Truncated { offset });
        }
        let (ty, length) = (rest[0], usize::from(rest[1]));
        let min = min_len(ty);
        if length == 0 {
            return Err(SratError::ZeroLength { offset, ty });
        }
        if length < min {
            return Err(SratError::TooShort {
                offset,
                ty,
                length,
                min,
            });
        }
        if length > rest.len() {
            return Err(SratError::PastEnd {
                offset,
                ty,
                length,
                remaining: rest.len(),
            });
        }
        let (s, tail) = rest.split_at(length);
        if ty == TYPE_MEMORY {
            let m = MemAffinity {
                domain: le32(s, 2),
                base: le64(s, 8),
                length: le64(s, 16),
                flags: le32(s, 28),
            };
            if m.enabled() && m.base.checked_add(m.length).is_none() {
                return Err(SratError::Wraps {
                    offset,
                    base: m.base,
                    length: m.length,
                });
            }
            srat.memory.push(m);
        } else {
            srat.other += 1;
        }
        rest = tail;
    }
    check_window_overlaps(&srat)?;
    log::debug!(
        "srat: memory={} hotplug={} nv={} other={}",
        srat.memory.len(),
        srat.hotplug_windows().count(),
        srat.non_volatile().count(),
        srat.other
    );
    Ok(srat)
}

fn check_window_overlaps(srat: &Srat) -> Result<(), SratError> {
    let mut windows = srat.window_ranges();
    windows.sort_by_key(|w| (w.start, w.end));
    match windows.windows(2).find(|w| w[1].start < w[0].end) {
        Some(w) => Err(SratError::Overlap {
            first: w[0].clone(),
            second: w[1].clone(),
        }),
        None => Ok(()),
    }
}

/// Byte builders for tests.
#[cfg(test)]
pub(crate) mod fixture {
    use super::*;
    use crate::firmware::nfit::fixture::table;

    /// A 40-byte memory affinity structure.
    pub fn memory(out: &mut Vec<u8>, domain: u32, base: u64, length: u64, flags: u32) {
        out.push(TYPE_MEMORY);
        out.push(40);
        out.extend_from_slice(&domain.to_le_bytes());
        out.extend_from_slice(&[0; 2]);
        out.extend_from_slice(&base.to_le_bytes());
        out.extend_from_slice(&length.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&flags.to_le_bytes());
        out.extend_from_slice(&[0; 8]);
    }

    /// A 16-byte processor local APIC affinity structure.
    pub fn cpu(out: &mut Vec<u8>, domain: u8, apic_id: u8) {
        out.extend_from_slice(&[0, 16, domain, apic_id, 1, 0, 0, 0]);
        out.extend_from_slice(&[0; 8]);
    }

    /// An SRAT table (revision 1, as QEMU builds it) around `structures`.
    pub fn srat_table(structures: &[u8]) -> Vec<u8> {
        let mut body = Vec::from(1u32.to_le_bytes());
        body.extend_from_slice(&[0; 8]);
        body.extend_from_slice(structures);
        table(b"SRAT", 1, &body)
    }

    /// What QEMU builds for q35 `-m 512M,slots=4,maxmem=8G` with `nvdimms` (base, size):
    /// one CPU, RAM below 640 KiB and from 1 MiB, an NV entry per NVDIMM and the
    /// hot-pluggable window 0x1_0000_0000 + 0x2_e000_0000.
    pub fn qemu_x86(nvdimms: &[(u64, u64)]) -> Vec<u8> {
        let mut s = Vec::new();
        cpu(&mut s, 0, 0);
        memory(&mut s, 0, 0, 0xa_0000, MEM_ENABLED);
        memory(&mut s, 0, 0x10_0000, 0x1ff0_0000, MEM_ENABLED);
        for &(base, size) in nvdimms {
            memory(&mut s, 0, base, size, MEM_ENABLED | MEM_NON_VOLATILE);
        }
        memory(&mut s, 0, 0, 0, 0);
        memory(
            &mut s,
            0,
            0x1_0000_0000,
            0x2_e000_0000,
            MEM_ENABLED | MEM_HOTPLUGGABLE,
        );
        srat_table(&s)
    }
}

#[cfg(test)]
#[path = "srat_tests.rs"]
mod tests;
