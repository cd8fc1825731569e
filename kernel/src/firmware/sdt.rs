//! ACPI table framing shared by the NFIT and SRAT parsers: the 36-byte header's
//! signature, length and checksum checks, and the little-endian field readers.

use core::fmt;

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
