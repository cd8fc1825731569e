//! The ACPI table walk, done by the `acpi` crate: RSDP → XSDT (or RSDT) → the table
//! with a given signature, or the DSDT through the FADT. The crate checks the RSDP, the
//! root table and the checksum of every table it models (FADT, MADT, MCFG, SPCR, DSDT);
//! the tables it does not model ([`Nfit`], [`Srat`], [`Ssdt`]) come back whole, and
//! their own parsers check them and name what is wrong.
//!
//! Physical memory is reached only through a [`ReadPhys`] that refuses any range it
//! cannot vouch for: the running kernel's tables ([`read_direct_map`]), the loader's
//! HHDM ranges, a buffer in host tests. The crate's `AcpiHandler` cannot fail, so a
//! refused range is handed to the crate as a table that fails its own signature check
//! (an unreadable RSDP fails as a bad RSDP, an unreadable table is skipped), and the
//! refusal is recorded: a lookup then says which table claimed which bytes.

use core::any::type_name;
use core::cell::Cell;
use core::fmt;
use core::mem::size_of;
use core::ptr::NonNull;

use acpi::rsdp::Rsdp;
use acpi::sdt::{SdtHeader, Signature};
use acpi::{AcpiError, AcpiHandler, AcpiResult, AcpiTable, AcpiTables, PhysicalMapping};

use crate::Arch;
use crate::mm::addr::{PAGE_SIZE, PhysAddr};
use crate::mm::live::DirectMap;
use crate::mm::walk;

/// Reads `len` bytes at physical address `pa`; `None` unless every byte of the range
/// is known to be mapped.
pub type ReadPhys<'a> = &'a dyn Fn(u64, usize) -> Option<&'static [u8]>;

/// Bytes of an SDT header.
pub const HEADER_LEN: usize = size_of::<SdtHeader>();
/// The largest table believed (QEMU's biggest, the DSDT, is a few KiB).
const MAX_TABLE: usize = 16 << 20;

/// Why no table came back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FindError {
    /// The RSDP is unreadable, or its signature or checksum is wrong.
    BadRsdp,
    /// The XSDT/RSDT is unreadable, or its signature or checksum is wrong.
    BadRoot,
    /// No valid table with that signature.
    NotFound,
    /// A table whose header claims bytes that cannot be read (or fewer than a header).
    BadLength(Refusal),
}

impl fmt::Display for FindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FindError::BadRsdp => f.write_str("the RSDP is unreadable or invalid"),
            FindError::BadRoot => f.write_str("the XSDT/RSDT is unreadable or invalid"),
            FindError::NotFound => f.write_str("no such table"),
            FindError::BadLength(r) => write!(f, "{r}"),
        }
    }
}

/// A range the handler would not map: the table (if its header was readable), where
/// it starts and how many bytes were asked for or claimed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The table's signature (`????` when not even the header was readable).
    pub signature: [u8; 4],
    /// Physical address of the table.
    pub pa: u64,
    /// Bytes claimed.
    pub len: u64,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let signature = core::str::from_utf8(&self.signature).unwrap_or("????");
        write!(
            f,
            "table {signature} at {:#x} claims {:#x} bytes that are not mapped memory (or fewer than its header)",
            self.pa, self.len
        )
    }
}

macro_rules! raw_table {
    ($(#[$doc:meta])* $name:ident, $signature:ident) => {
        $(#[$doc])*
        #[repr(transparent)]
        pub struct $name {
            header: SdtHeader,
        }

        // SAFETY: only the SDT header is typed, and it is the table's first 36 bytes.
        unsafe impl AcpiTable for $name {
            const SIGNATURE: Signature = Signature::$signature;

            fn header(&self) -> &SdtHeader {
                &self.header
            }

            /// The signature only: the table's own parser checks the checksum and
            /// names the problem in its one-line error.
            fn validate(&self) -> AcpiResult<()> {
                if { self.header.signature } == Self::SIGNATURE {
                    Ok(())
                } else {
                    Err(AcpiError::SdtInvalidSignature(Self::SIGNATURE))
                }
            }
        }
    };
}

raw_table!(
    /// The NVDIMM Firmware Interface Table, parsed by [`super::nfit`].
    Nfit,
    NFIT
);
raw_table!(
    /// The System Resource Affinity Table, parsed by [`super::srat`].
    Srat,
    SRAT
);
raw_table!(
    /// The first Secondary System Description Table (AML, scanned by callers).
    Ssdt,
    SSDT
);

/// The bytes of the first valid table of type `T`, `length` bytes from its header.
pub fn find<T: AcpiTable>(rsdp: u64, read: ReadPhys<'_>) -> Result<&'static [u8], FindError> {
    let (found, refused) = with_tables(rsdp, read, |tables| {
        let table = tables.find_table::<T>().ok()?;
        read(table.physical_start() as u64, table.region_length())
    })?;
    let signature = signature_bytes(T::SIGNATURE);
    found.ok_or(match refused {
        Some(r) if r.signature == signature => FindError::BadLength(r),
        _ => FindError::NotFound,
    })
}

/// The whole DSDT (header included), found through the FADT's `X_DSDT` or `DSDT`.
pub fn dsdt(rsdp: u64, read: ReadPhys<'_>) -> Result<&'static [u8], FindError> {
    let (found, refused) = with_tables(rsdp, read, |tables| {
        let aml = tables.dsdt().ok()?;
        // The crate gives the AML after the header; the scanners want the whole table.
        read(
            aml.address as u64 - HEADER_LEN as u64,
            aml.length as usize + HEADER_LEN,
        )
    })?;
    found.ok_or(match refused {
        Some(r) if &r.signature == b"DSDT" || &r.signature == b"FACP" => FindError::BadLength(r),
        _ => FindError::NotFound,
    })
}

/// Runs `f` over the tables reachable from the RSDP at `rsdp`, and returns what it
/// found with the first range the handler refused on the way, if any.
pub fn with_tables<R>(
    rsdp: u64,
    read: ReadPhys<'_>,
    f: impl for<'h> FnOnce(&AcpiTables<Handler<'h>>) -> R,
) -> Result<(R, Option<Refusal>), FindError> {
    let refused = Cell::new(None);
    let handler = Handler {
        read,
        refused: &refused,
    };
    // SAFETY: the handler maps only ranges `read` vouches for, and refuses (with a
    // block the crate rejects) any the crate would read past: an RSDP's `length`, an
    // SDT's `length`, a typed table's full size.
    let tables = unsafe { AcpiTables::from_rsdp(handler, rsdp as usize) }.map_err(|e| match e {
        AcpiError::NoValidRsdp
        | AcpiError::RsdpIncorrectSignature
        | AcpiError::RsdpInvalidOemId
        | AcpiError::RsdpInvalidChecksum => FindError::BadRsdp,
        _ => FindError::BadRoot,
    })?;
    let found = f(&tables);
    drop(tables);
    Ok((found, refused.get()))
}

/// Firmware memory through the running kernel's direct map, every page of
/// `[pa, pa + len)` checked by a software walk of the live tables to map exactly that
/// physical page (nothing is read before the walk says it may be).
pub fn read_direct_map<A: Arch>(pa: u64, len: usize) -> Option<&'static [u8]> {
    let end = pa.checked_add(len as u64)?;
    let config = A::mm_config();
    let tables = DirectMap(config.phys_to_virt);
    let mut page = pa & !(PAGE_SIZE - 1);
    while page < end {
        let va = A::phys_to_virt(page) as u64;
        let t =
            walk::translate::<A::PageTable, _>(&tables, config.root, config.features, va).ok()?;
        if t.phys != PhysAddr(page) {
            return None;
        }
        // The rest of this leaf maps the following pages linearly.
        page = t.frame.0 + t.leaf_bytes;
    }
    // SAFETY: every page of the range is mapped by the live tables at the direct-map
    // address of its own frame (checked above), and firmware tables are never written.
    Some(unsafe { core::slice::from_raw_parts(A::phys_to_virt(pa), len) })
}

/// The `AcpiHandler` over a [`ReadPhys`]; see the module header.
#[derive(Clone, Copy)]
pub struct Handler<'a> {
    read: ReadPhys<'a>,
    refused: &'a Cell<Option<Refusal>>,
}

/// What the crate is given for a range that cannot be read: an SDT header whose
/// signature matches nothing looked up and whose OEM ID is not UTF-8, so every check
/// the crate makes fails (and its error messages, which print the signature, do not
/// panic on it), padded with zeros to the largest type the crate maps (the FADT).
#[repr(C, align(16))]
struct Invalid([u8; INVALID_BYTES]);

const INVALID_BYTES: usize = 512;

static INVALID: Invalid = Invalid(invalid_block());

const fn invalid_block() -> [u8; INVALID_BYTES] {
    let mut b = [0u8; INVALID_BYTES];
    let mut i = 0;
    while i < 8 {
        b[i] = b'-'; // signature (and the first half of an RSDP's)
        i += 1;
    }
    b[4] = HEADER_LEN as u8; // length: the checksum covers the header only
    b[5] = 0;
    b[6] = 0;
    b[7] = 0;
    let mut i = 10;
    while i < 16 {
        b[i] = 0xff; // OEM ID: not UTF-8
        i += 1;
    }
    b
}

impl Handler<'_> {
    /// How many bytes from `pa` the crate will read through a mapping of `T` asked for
    /// with `size`, once that many are known readable; else why not.
    fn readable<T>(&self, pa: u64, size: usize) -> Result<usize, Refusal> {
        let read = |len: usize| (self.read)(pa, len);
        let refuse = |signature: [u8; 4], len: usize| Refusal {
            signature,
            pa,
            len: len as u64,
        };
        if type_name::<T>() == type_name::<SdtHeader>() {
            // The crate sums `length` bytes through a header-only mapping (header
            // iteration) and subtracts the header length from `length` (DSDT).
            let head = read(HEADER_LEN).ok_or(refuse(*b"????", HEADER_LEN))?;
            let signature: [u8; 4] = head[..4].try_into().expect("4 bytes");
            let len = u32::from_le_bytes(head[4..8].try_into().expect("4 bytes")) as usize;
            // The crate's messages print the signature and panic if it is not UTF-8.
            let printable = core::str::from_utf8(&signature).is_ok();
            if !printable || !(HEADER_LEN..=MAX_TABLE).contains(&len) || read(len).is_none() {
                return Err(refuse(signature, len));
            }
            return Ok(size.max(HEADER_LEN));
        }
        let typed = size.max(size_of::<T>());
        if type_name::<T>() == type_name::<Rsdp>() {
            // Revision 2+: the crate's checksum covers `length` bytes (u32 at 20).
            let head = read(typed).ok_or(refuse(*b"RSD ", typed))?;
            let len = match head[15] {
                0 => typed,
                _ => u32::from_le_bytes(head[20..24].try_into().expect("4 bytes")) as usize,
            };
            if len > MAX_TABLE || read(len).is_none() {
                return Err(refuse(*b"RSD ", len));
            }
            return Ok(typed.max(len));
        }
        read(typed).ok_or(refuse(*b"????", typed))?;
        Ok(typed)
    }
}

impl AcpiHandler for Handler<'_> {
    unsafe fn map_physical_region<T>(&self, pa: usize, size: usize) -> PhysicalMapping<Self, T> {
        match self.readable::<T>(pa as u64, size) {
            Ok(len) => {
                let bytes = (self.read)(pa as u64, len).expect("checked readable");
                let va = NonNull::from(bytes).cast::<T>();
                // SAFETY: `len` >= `size` >= the size of `T` bytes at `va` are `pa`'s,
                // readable for the kernel's lifetime (the reader vouched for them).
                unsafe { PhysicalMapping::new(pa, va, size, len, *self) }
            }
            Err(refusal) => {
                if self.refused.get().is_none() {
                    self.refused.set(Some(refusal));
                }
                assert!(
                    size_of::<T>() <= INVALID_BYTES,
                    "acpi: {} is larger than the invalid-table block",
                    type_name::<T>()
                );
                let va = NonNull::from(&INVALID.0).cast::<T>();
                // SAFETY: the block is static, at least the size of `T`, never written
                // (the crate only reads tables) and fails every check the crate makes.
                unsafe { PhysicalMapping::new(pa, va, size_of::<T>(), INVALID_BYTES, *self) }
            }
        }
    }

    fn unmap_physical_region<T>(_region: &PhysicalMapping<Self, T>) {}
}

fn signature_bytes(s: Signature) -> [u8; 4] {
    let mut out = [0; 4];
    out.copy_from_slice(s.as_str().as_bytes());
    out
}

#[cfg(test)]
#[path = "acpi_find_tests.rs"]
mod tests;
