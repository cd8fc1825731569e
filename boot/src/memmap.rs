//! The UEFI memory map turned into the Limine one: types converted by the rules of
//! the base revision in use, entries sorted by base, touching entries of one type merged,
//! and ranges the revision promises to map (ACPI tables) re-typed RESERVED_MAPPED when
//! they lie outside a mapped type.
//!
//! Everything works in a caller-provided buffer: after `ExitBootServices` nothing may
//! be allocated.

use crate::protocol::{MemmapEntry, memtype};
use crate::revision::Revision;

/// The OS-vendor UEFI memory type the loader uses for the kernel image, so that it can
/// be reported as EXECUTABLE_AND_MODULES.
pub const KERNEL_MEMORY_TYPE: u32 = 0x8000_0001;

/// UEFI memory types (UEFI 2.10, table 7.5).
pub mod efi {
    /// EfiReservedMemoryType.
    pub const RESERVED: u32 = 0;
    /// EfiLoaderCode.
    pub const LOADER_CODE: u32 = 1;
    /// EfiLoaderData.
    pub const LOADER_DATA: u32 = 2;
    /// EfiBootServicesCode.
    pub const BOOT_SERVICES_CODE: u32 = 3;
    /// EfiBootServicesData.
    pub const BOOT_SERVICES_DATA: u32 = 4;
    /// EfiRuntimeServicesCode.
    pub const RUNTIME_SERVICES_CODE: u32 = 5;
    /// EfiRuntimeServicesData.
    pub const RUNTIME_SERVICES_DATA: u32 = 6;
    /// EfiConventionalMemory.
    pub const CONVENTIONAL: u32 = 7;
    /// EfiUnusableMemory.
    pub const UNUSABLE: u32 = 8;
    /// EfiACPIReclaimMemory.
    pub const ACPI_RECLAIM: u32 = 9;
    /// EfiACPIMemoryNVS.
    pub const ACPI_NVS: u32 = 10;
    /// EfiPersistentMemory.
    pub const PERSISTENT: u32 = 14;
}

/// Limine type of a UEFI descriptor (limine.md §1.7; unusable and persistent memory,
/// MMIO and anything unknown are RESERVED, as Limine reports them).
pub fn convert_type(efi_type: u32, rev: Revision) -> u64 {
    match efi_type {
        efi::CONVENTIONAL => memtype::USABLE,
        efi::LOADER_CODE | efi::LOADER_DATA => memtype::BOOTLOADER_RECLAIMABLE,
        efi::BOOT_SERVICES_CODE | efi::BOOT_SERVICES_DATA => memtype::BOOTLOADER_RECLAIMABLE,
        efi::RUNTIME_SERVICES_CODE | efi::RUNTIME_SERVICES_DATA => rev.runtime_services_type(),
        efi::ACPI_RECLAIM => memtype::ACPI_RECLAIMABLE,
        efi::ACPI_NVS => memtype::ACPI_NVS,
        KERNEL_MEMORY_TYPE => memtype::EXECUTABLE_AND_MODULES,
        _ => memtype::RESERVED,
    }
}

/// The memory map under construction, in a fixed buffer.
pub struct Builder<'a> {
    buf: &'a mut [MemmapEntry],
    len: usize,
}

/// The buffer is too small.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full;

impl<'a> Builder<'a> {
    /// An empty map backed by `buf`.
    pub fn new(buf: &'a mut [MemmapEntry]) -> Self {
        Self { buf, len: 0 }
    }

    /// Adds the UEFI descriptor `(efi_type, phys_start, pages)`.
    pub fn push_efi(
        &mut self,
        efi_type: u32,
        start: u64,
        pages: u64,
        rev: Revision,
    ) -> Result<(), Full> {
        self.push(MemmapEntry {
            base: start,
            length: pages * 4096,
            typ: convert_type(efi_type, rev),
        })
    }

    /// Adds an entry (empty ones are dropped).
    pub fn push(&mut self, e: MemmapEntry) -> Result<(), Full> {
        if e.length == 0 {
            return Ok(());
        }
        let slot = self.buf.get_mut(self.len).ok_or(Full)?;
        *slot = e;
        self.len += 1;
        Ok(())
    }

    /// Sorts by base and merges touching entries of the same type.
    pub fn normalize(&mut self) {
        let entries = &mut self.buf[..self.len];
        entries.sort_unstable_by_key(|e| (e.base, e.typ));
        let mut out = 0;
        for i in 0..self.len {
            let e = self.buf[i];
            if out > 0 && self.buf[out - 1].typ == e.typ && self.buf[out - 1].end() == e.base {
                self.buf[out - 1].length += e.length;
            } else {
                self.buf[out] = e;
                out += 1;
            }
        }
        self.len = out;
    }

    /// Makes `[start, end)` HHDM-mapped under `rev`: parts of it in unmapped entries
    /// become RESERVED_MAPPED, parts in no entry get a RESERVED_MAPPED entry. Page
    /// granular (the range is rounded outwards). Leaves the map normalized.
    pub fn ensure_mapped(&mut self, start: u64, end: u64, rev: Revision) -> Result<(), Full> {
        let (s, t) = (start & !0xfff, end.next_multiple_of(0x1000));
        self.normalize();
        let mut cursor = s;
        for i in 0..self.len {
            let e = self.buf[i];
            if e.end() <= cursor || e.base >= t {
                continue;
            }
            if e.base > cursor {
                self.push(entry(cursor, e.base, memtype::RESERVED_MAPPED))?;
            }
            if !rev.hhdm_maps(e.typ) {
                let (a, b) = (e.base.max(s), e.end().min(t));
                self.buf[i].length = a - e.base;
                self.push(entry(a, b, memtype::RESERVED_MAPPED))?;
                self.push(entry(b, e.end(), e.typ))?;
            }
            cursor = e.end();
        }
        if cursor < t {
            self.push(entry(cursor, t, memtype::RESERVED_MAPPED))?;
        }
        self.normalize();
        Ok(())
    }

    /// The entries so far.
    pub fn entries(&self) -> &[MemmapEntry] {
        &self.buf[..self.len]
    }

    /// The finished map, for as long as its buffer lives.
    pub fn into_entries(self) -> &'a [MemmapEntry] {
        &self.buf[..self.len]
    }
}

fn entry(base: u64, end: u64, typ: u64) -> MemmapEntry {
    MemmapEntry {
        base,
        length: end - base,
        typ,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use memtype::*;

    const R3: Revision = Revision(3);
    const R6: Revision = Revision(6);

    fn e(base: u64, end: u64, typ: u64) -> MemmapEntry {
        entry(base, end, typ)
    }

    #[test]
    fn conversion_table() {
        assert_eq!(convert_type(efi::CONVENTIONAL, R3), USABLE);
        assert_eq!(
            convert_type(efi::BOOT_SERVICES_DATA, R3),
            BOOTLOADER_RECLAIMABLE
        );
        assert_eq!(convert_type(efi::LOADER_CODE, R3), BOOTLOADER_RECLAIMABLE);
        assert_eq!(
            convert_type(efi::RUNTIME_SERVICES_DATA, Revision(4)),
            RESERVED
        );
        assert_eq!(
            convert_type(efi::RUNTIME_SERVICES_CODE, R6),
            RESERVED_MAPPED
        );
        assert_eq!(convert_type(efi::ACPI_RECLAIM, R3), ACPI_RECLAIMABLE);
        assert_eq!(convert_type(efi::ACPI_NVS, R3), ACPI_NVS);
        assert_eq!(convert_type(efi::PERSISTENT, R6), RESERVED);
        assert_eq!(convert_type(efi::UNUSABLE, R6), RESERVED);
        assert_eq!(convert_type(11, R6), RESERVED, "MMIO");
        assert_eq!(convert_type(KERNEL_MEMORY_TYPE, R6), EXECUTABLE_AND_MODULES);
    }

    #[test]
    fn sorts_and_merges_converted_descriptors() {
        let mut buf = [e(0, 0, 0); 16];
        let mut b = Builder::new(&mut buf);
        b.push_efi(efi::CONVENTIONAL, 0x100000, 16, R6).unwrap();
        b.push_efi(efi::BOOT_SERVICES_CODE, 0x0, 1, R6).unwrap();
        b.push_efi(efi::LOADER_DATA, 0x1000, 1, R6).unwrap();
        b.push_efi(efi::CONVENTIONAL, 0x110000, 16, R6).unwrap();
        b.push_efi(efi::CONVENTIONAL, 0x200000, 0, R6).unwrap();
        b.normalize();
        assert_eq!(
            b.entries(),
            &[
                e(0, 0x2000, BOOTLOADER_RECLAIMABLE),
                e(0x100000, 0x120000, USABLE),
            ]
        );
    }

    #[test]
    fn ensure_mapped_retypes_reserved_and_fills_holes() {
        let mut buf = [e(0, 0, 0); 16];
        let mut b = Builder::new(&mut buf);
        b.push(e(0x0, 0x10000, USABLE)).unwrap();
        b.push(e(0x10000, 0x20000, RESERVED)).unwrap();
        b.push(e(0x30000, 0x40000, ACPI_RECLAIMABLE)).unwrap();
        b.ensure_mapped(0x1f800, 0x32000, R6).unwrap();
        assert_eq!(
            b.entries(),
            &[
                e(0x0, 0x10000, USABLE),
                e(0x10000, 0x1f000, RESERVED),
                e(0x1f000, 0x30000, RESERVED_MAPPED),
                e(0x30000, 0x40000, ACPI_RECLAIMABLE),
            ]
        );
        // Already mapped: nothing changes.
        let before = b.entries().to_vec();
        b.ensure_mapped(0x100, 0x200, R6).unwrap();
        assert_eq!(b.entries(), &before[..]);
    }

    #[test]
    fn ensure_mapped_in_the_middle_splits_in_three() {
        let mut buf = [e(0, 0, 0); 8];
        let mut b = Builder::new(&mut buf);
        b.push(e(0x0, 0x10000, RESERVED)).unwrap();
        b.ensure_mapped(0x4000, 0x5000, R6).unwrap();
        assert_eq!(
            b.entries(),
            &[
                e(0, 0x4000, RESERVED),
                e(0x4000, 0x5000, RESERVED_MAPPED),
                e(0x5000, 0x10000, RESERVED)
            ]
        );
    }

    #[test]
    fn a_full_buffer_is_reported() {
        let mut buf = [e(0, 0, 0); 1];
        let mut b = Builder::new(&mut buf);
        b.push(e(0, 0x1000, USABLE)).unwrap();
        assert_eq!(b.push(e(0x2000, 0x3000, USABLE)), Err(Full));
    }
}
