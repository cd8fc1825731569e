//! The MADT ("APIC"), decoded by the `acpi` crate: the x86 facts an interrupt-driven
//! hotplug source needs (the local APIC address, the I/O APICs with their first GSI,
//! and the interrupt source overrides that turn a legacy IRQ, the SCI on 9, into a GSI
//! with its polarity and trigger mode), and the framing-checked walk of the structures
//! that every MADT reader here uses ([`madt_entries`]; the GIC summary in
//! [`super::acpi`] too).

use alloc::vec::Vec;
use core::fmt;
use core::mem::size_of;
use core::pin::Pin;

use acpi::madt::{
    GicInterruptTranslationServiceEntry, GicMsiFrameEntry, GicRedistributorEntry, GiccEntry,
    GicdEntry, InterruptSourceOverrideEntry, IoApicEntry, IoSapicEntry,
    LocalApicAddressOverrideEntry, LocalApicEntry, LocalApicNmiEntry, LocalSapicEntry,
    LocalX2ApicEntry, Madt, MadtEntry, MadtEntryIter, MultiprocessorWakeupEntry, NmiSourceEntry,
    PlatformInterruptSourceEntry, X2ApicNmiEntry,
};

use super::acpi_find::{self, FindError, ReadPhys};

/// One I/O APIC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoApic {
    /// Its APIC id.
    pub id: u8,
    /// MMIO base.
    pub address: u64,
    /// First GSI it serves.
    pub gsi_base: u32,
}

/// Where a legacy IRQ arrives and how it is signalled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    /// Global system interrupt.
    pub gsi: u32,
    /// Active-low (else active-high).
    pub active_low: bool,
    /// Level-triggered (else edge).
    pub level: bool,
}

/// What the kernel takes from the MADT.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApicInfo {
    /// Local APIC MMIO base (the type-5 override wins over the header field).
    pub lapic: u64,
    /// Every I/O APIC.
    pub ioapics: Vec<IoApic>,
    /// Interrupt source overrides: `(irq, route)`.
    pub overrides: Vec<(u8, Route)>,
}

impl ApicInfo {
    /// The route of ISA IRQ `irq`: its override, else identity, active-high, edge.
    pub fn route(&self, irq: u8) -> Route {
        self.overrides.iter().find(|(i, _)| *i == irq).map_or(
            Route {
                gsi: u32::from(irq),
                active_low: false,
                level: false,
            },
            |(_, r)| *r,
        )
    }

    /// The I/O APIC serving `gsi` (the one with the highest base not above it).
    pub fn ioapic_for(&self, gsi: u32) -> Option<IoApic> {
        self.ioapics
            .iter()
            .filter(|a| a.gsi_base <= gsi)
            .max_by_key(|a| a.gsi_base)
            .copied()
    }
}

/// Why the MADT was not usable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MadtError {
    /// Not an `APIC` table, shorter than its fixed part, or with a `length` past the
    /// bytes given.
    BadTable,
}

/// The MADT found through the `acpi` crate (checksum checked), as [`ApicInfo`].
pub fn find(rsdp: u64, read: ReadPhys<'_>) -> Result<ApicInfo, FindError> {
    let table = acpi_find::find::<Madt>(rsdp, read)?;
    parse(table).map_err(|_| FindError::NotFound)
}

/// Parses the whole table; a malformed structure ends the walk (one warning line) and
/// the structures before it are kept.
pub fn parse(table: &[u8]) -> Result<ApicInfo, MadtError> {
    let (madt, mut entries) = madt_entries(table)?;
    let mut info = ApicInfo {
        lapic: u64::from(madt.local_apic_address),
        ..ApicInfo::default()
    };
    for e in entries.by_ref() {
        match e {
            MadtEntry::IoApic(a) => info.ioapics.push(IoApic {
                id: a.io_apic_id,
                address: u64::from(a.io_apic_address),
                gsi_base: a.global_system_interrupt_base,
            }),
            MadtEntry::InterruptSourceOverride(o) => {
                let flags = o.flags;
                info.overrides.push((
                    o.irq,
                    Route {
                        gsi: o.global_system_interrupt,
                        active_low: flags & 3 == 3,
                        level: (flags >> 2) & 3 == 3,
                    },
                ));
            }
            MadtEntry::LocalApicAddressOverride(o) => info.lapic = o.local_apic_address,
            _ => {}
        }
    }
    if let Some(stop) = entries.stopped {
        log::warn!("{stop}");
    }
    Ok(info)
}

/// The MADT's structures as the `acpi` crate decodes them, walked only as far as their
/// framing holds: the crate's iterator trusts every length byte (a length of 0 loops
/// forever, a long one reads past the table, a short one types bytes that are not the
/// structure's), so each structure is checked first (at least 2 bytes and its type's
/// ACPI minimum, inside the table, the crate's view of it inside the table too) and the
/// iterator is cut before the first one that fails.
pub fn madt_entries(table: &[u8]) -> Result<(Pin<&Madt>, MadtEntries<'_>), MadtError> {
    let fixed = size_of::<Madt>();
    if table.len() < fixed || &table[..4] != b"APIC" {
        return Err(MadtError::BadTable);
    }
    let length = u32::from_le_bytes(table[4..8].try_into().expect("4 bytes")) as usize;
    if !(fixed..=table.len()).contains(&length) {
        return Err(MadtError::BadTable);
    }
    let (count, stopped) = framing(&table[..length], fixed);
    // SAFETY: `table` holds the MADT's `length` bytes, at least its fixed part; `Madt`
    // is packed plain data (alignment 1, valid for any bytes), and the borrowed bytes
    // never move while the view lives, as the crate's pinning asks.
    let madt = unsafe { Pin::new_unchecked(&*table.as_ptr().cast::<Madt>()) };
    Ok((
        madt,
        MadtEntries {
            iter: madt.entries().take(count),
            stopped,
        },
    ))
}

/// The crate's MADT iterator, cut where the framing stops holding.
pub struct MadtEntries<'a> {
    iter: core::iter::Take<MadtEntryIter<'a>>,
    /// The structure the walk stopped at, if it stopped early.
    pub stopped: Option<Framing>,
}

impl<'a> Iterator for MadtEntries<'a> {
    type Item = MadtEntry<'a>;

    fn next(&mut self) -> Option<MadtEntry<'a>> {
        self.iter.next()
    }
}

/// A MADT structure whose framing does not hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Framing {
    /// Offset in the table.
    pub offset: usize,
    /// Its type (0 when not even the type byte is there).
    pub ty: u8,
    /// Its length byte (0 when absent).
    pub length: usize,
    /// The least it needs: its type's minimum, or what is left of the table.
    pub need: usize,
    /// Bytes left in the table from its start.
    pub left: usize,
}

impl fmt::Display for Framing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "madt: structure type {} at offset {:#x} has length {} ({} needed, {} bytes left); it and the rest are ignored",
            self.ty, self.offset, self.length, self.need, self.left
        )
    }
}

/// How many structures the crate's iterator may yield over `table` (its types 0..=0x10;
/// it skips the others itself), and the first structure whose framing fails.
fn framing(table: &[u8], fixed: usize) -> (usize, Option<Framing>) {
    let (mut off, mut count) = (fixed, 0);
    while off < table.len() {
        let left = table.len() - off;
        let (ty, length) = match table[off..] {
            [ty, length, ..] => (ty, usize::from(length)),
            _ => (table[off], 0),
        };
        let need = min_len(ty).max(2);
        let view = crate_view_len(ty);
        if left < 2 || length < need || length > left || view > left {
            let stop = Framing {
                offset: off,
                ty,
                length,
                need: need.max(view),
                left,
            };
            return (count, Some(stop));
        }
        if ty <= 0x10 {
            count += 1;
        }
        off += length;
    }
    (count, None)
}

/// ACPI 6.5's minimum length of each structure type the crate decodes (GICC: ACPI
/// 5.1's 76 bytes; QEMU writes 80).
fn min_len(ty: u8) -> usize {
    match ty {
        0xb => 76,
        _ => crate_view_len(ty),
    }
}

/// Bytes the crate's type for a structure spans (it reads through a reference to it).
fn crate_view_len(ty: u8) -> usize {
    match ty {
        0x0 => size_of::<LocalApicEntry>(),
        0x1 => size_of::<IoApicEntry>(),
        0x2 => size_of::<InterruptSourceOverrideEntry>(),
        0x3 => size_of::<NmiSourceEntry>(),
        0x4 => size_of::<LocalApicNmiEntry>(),
        0x5 => size_of::<LocalApicAddressOverrideEntry>(),
        0x6 => size_of::<IoSapicEntry>(),
        0x7 => size_of::<LocalSapicEntry>(),
        0x8 => size_of::<PlatformInterruptSourceEntry>(),
        0x9 => size_of::<LocalX2ApicEntry>(),
        0xa => size_of::<X2ApicNmiEntry>(),
        0xb => size_of::<GiccEntry>(),
        0xc => size_of::<GicdEntry>(),
        0xd => size_of::<GicMsiFrameEntry>(),
        0xe => size_of::<GicRedistributorEntry>(),
        0xf => size_of::<GicInterruptTranslationServiceEntry>(),
        0x10 => size_of::<MultiprocessorWakeupEntry>(),
        _ => 2,
    }
}

#[cfg(test)]
#[path = "apic_tests.rs"]
mod tests;
