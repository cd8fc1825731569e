//! Why an NFIT or FIT buffer was refused: one variant per hostile shape, each naming
//! where it is (offset, type, SPA index and range).

use core::fmt;

use super::super::sdt::TableError;

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
/// given (the table header included for [`parse_table`](super::parse_table)).
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
    /// The kernel heap refused room for the parsed structures.
    NoMemory,
    OutsideWindow {
        /// The range.
        range: SpaSpan,
        /// How many windows were checked.
        windows: usize,
    },
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
