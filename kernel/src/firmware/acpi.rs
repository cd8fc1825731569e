//! ACPI tables through the `acpi` crate: the facts the kernel needs from MADT (GIC),
//! SPCR (console UART), MCFG (PCI ECAM), SRAT (memory affinity, hot-pluggable ranges)
//! and FADT (PSCI conduit on Arm), gathered into one fixed-size [`AcpiInfo`].
//!
//! Nothing here allocates (the arch crate parses before the heap exists), and physical
//! memory is reached through a [`PhysWindow`], so host tests run the same code over a
//! dump of QEMU's tables.

use core::fmt;
use core::ptr::NonNull;

use acpi::fadt::Fadt;
use acpi::madt::{Madt, MadtEntry};
use acpi::mcfg::Mcfg;
use acpi::sdt::{SdtHeader, Signature};
use acpi::spcr::{Spcr, SpcrInterfaceType};
use acpi::{AcpiHandler, AcpiTable, AcpiTables, PhysicalMapping};

use crate::boot_info::{MappedSpans, MemoryMap};

/// A linear view of physical memory: `pa` is at `base_va + (pa - base_pa)` for
/// `len` bytes from `base_pa` (a direct map on the target, a buffer in host tests),
/// bounded on the target by the spans the direct map really covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PhysWindow {
    /// First physical address covered.
    pub base_pa: u64,
    /// Where `base_pa` is visible.
    pub base_va: usize,
    /// Bytes covered.
    pub len: u64,
    /// The spans that are mapped (`None`: all of the window, e.g. a test buffer).
    pub mapped: Option<MappedSpans>,
}

impl PhysWindow {
    /// The direct map at `offset` (an HHDM; 0 for identity), over the spans of `map` it
    /// covers: every firmware read is checked against them, whatever a table claims.
    pub fn direct_map(offset: usize, map: &MemoryMap) -> Self {
        Self {
            base_pa: 0,
            base_va: offset,
            len: u64::MAX,
            mapped: Some(MappedSpans::of(map)),
        }
    }

    /// The address of `[pa, pa + size)`, if the window covers and maps all of it.
    pub fn ptr(&self, pa: u64, size: u64) -> Option<*const u8> {
        let off = pa.checked_sub(self.base_pa)?;
        let inside = off.checked_add(size)? <= self.len;
        let mapped = self.mapped.is_none_or(|m| m.covers(pa, size));
        (inside && mapped).then(|| self.base_va.wrapping_add(off as usize) as _)
    }

    /// The `len` bytes at `pa`, if the window covers and maps all of them: the one safe
    /// way to read firmware memory (tables, the DTB) from a physical address and a
    /// firmware-supplied length.
    pub fn slice(&self, pa: u64, len: usize) -> Option<&'static [u8]> {
        let p = self.ptr(pa, len as u64)?;
        // SAFETY: `ptr` checked that every byte of the range is inside the window and,
        // on the target, inside a span the direct map covers; firmware memory stays
        // mapped for the kernel's lifetime (a test buffer outlives its test) and nothing
        // writes it while it is read.
        Some(unsafe { core::slice::from_raw_parts(p, len) })
    }
}

/// Most entries of one kind that are kept (the rest are counted).
pub const MAX_ENTRIES: usize = 8;

/// The GIC as the MADT describes it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Gic {
    /// GIC version from the GICD entry (0: "discover from hardware").
    pub version: u8,
    /// Distributor base.
    pub gicd: u64,
    /// First redistributor discovery range (GICv3+), if any.
    pub gicr: Option<u64>,
    /// CPU interface base of the first GICC entry (GICv2).
    pub gicc: Option<u64>,
    /// GICC entries (one per CPU).
    pub cpus: u32,
}

/// The console UART from the SPCR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Uart {
    /// `pl011`, `16550`, `sbsa` or `other`.
    pub kind: &'static str,
    /// Base address (MMIO, or an I/O port when `io`).
    pub base: u64,
    /// Whether `base` is an I/O port.
    pub io: bool,
}

/// One MCFG entry: an ECAM window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ecam {
    /// ECAM base address.
    pub base: u64,
    /// PCI segment group.
    pub segment: u16,
    /// First bus.
    pub bus_start: u8,
    /// Last bus.
    pub bus_end: u8,
}

impl Ecam {
    /// Bytes of configuration space the bus range covers (1 MiB per bus).
    pub const fn size(&self) -> u64 {
        (self.bus_end as u64 - self.bus_start as u64 + 1) << 20
    }
}

/// One SRAT memory-affinity structure.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemAffinity {
    /// First byte.
    pub base: u64,
    /// Length in bytes.
    pub len: u64,
    /// Proximity domain.
    pub node: u32,
    /// Flags: bit 0 enabled, bit 1 hot-pluggable, bit 2 non-volatile.
    pub flags: u32,
}

impl MemAffinity {
    /// The entry describes memory that may be hot-plugged.
    pub const fn hotpluggable(&self) -> bool {
        self.flags & 2 != 0
    }
}

/// Up to [`MAX_ENTRIES`] items plus a count of all of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct List<T: Copy + Default> {
    items: [T; MAX_ENTRIES],
    /// How many the firmware listed (may exceed what is kept).
    pub total: usize,
}

impl<T: Copy + Default> Default for List<T> {
    fn default() -> Self {
        Self {
            items: [T::default(); MAX_ENTRIES],
            total: 0,
        }
    }
}

impl<T: Copy + Default> List<T> {
    /// Appends `item` (counted even when it no longer fits).
    pub fn push(&mut self, item: T) {
        if let Some(slot) = self.items.get_mut(self.total) {
            *slot = item;
        }
        self.total += 1;
    }

    /// The kept items.
    pub fn items(&self) -> &[T] {
        &self.items[..self.total.min(MAX_ENTRIES)]
    }
}

/// What the kernel learned from the ACPI tables.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AcpiInfo {
    /// RSDP revision (0: ACPI 1.0 with an RSDT, else an XSDT).
    pub revision: u8,
    /// OEM ID of the root table.
    pub oem: [u8; 6],
    /// Tables the root table lists.
    pub tables: usize,
    /// From the MADT, when it has a GIC distributor.
    pub gic: Option<Gic>,
    /// From the SPCR.
    pub uart: Option<Uart>,
    /// From the MCFG.
    pub ecam: List<Ecam>,
    /// From the SRAT (`None`: no SRAT).
    pub srat: Option<List<MemAffinity>>,
    /// From the FADT's Arm boot flags: `Some(true)` PSCI over HVC, `Some(false)` SMC.
    pub psci_hvc: Option<bool>,
}

/// Why the tables could not be read at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcpiError {
    /// The RSDP is outside the window.
    Unreachable,
    /// The `acpi` crate refused the RSDP or the root table.
    BadRoot,
}

/// Parses the tables reachable from the RSDP at physical `rsdp`.
pub fn parse(rsdp: u64, window: PhysWindow) -> Result<AcpiInfo, AcpiError> {
    window.ptr(rsdp, 36).ok_or(AcpiError::Unreachable)?;
    let handler = Handler(window);
    // SAFETY: the window covers the RSDP (checked above); the handler refuses, by
    // panicking, any table outside the window, so the crate reads only mapped memory.
    let tables =
        unsafe { AcpiTables::from_rsdp(handler, rsdp as usize) }.map_err(|_| AcpiError::BadRoot)?;
    let mut info = AcpiInfo {
        revision: tables.revision(),
        tables: tables.headers().count(),
        ..AcpiInfo::default()
    };
    if let Some(h) = tables.headers().next() {
        info.oem = h.oem_id;
    }
    if let Ok(madt) = tables.find_table::<Madt>() {
        info.gic = gic(madt.get().entries());
    }
    if let Ok(spcr) = tables.find_table::<Spcr>() {
        info.uart = uart(&spcr);
    }
    if let Ok(mcfg) = tables.find_table::<Mcfg>() {
        for e in mcfg.entries() {
            info.ecam.push(Ecam {
                base: e.base_address,
                segment: e.pci_segment_group,
                bus_start: e.bus_number_start,
                bus_end: e.bus_number_end,
            });
        }
    }
    if let Ok(srat) = tables.find_table::<Srat>() {
        let len = srat.header.length as usize;
        // SAFETY: the mapping covers the whole table (`length` bytes from its start).
        let bytes =
            unsafe { core::slice::from_raw_parts(srat.virtual_start().as_ptr().cast(), len) };
        info.srat = Some(srat_memory(bytes));
    }
    if let Ok(fadt) = tables.find_table::<Fadt>() {
        let flags = fadt.arm_boot_arch;
        info.psci_hvc = flags
            .implements_psci()
            .then(|| flags.use_hvc_as_psci_conduit());
    }
    Ok(info)
}

fn gic<'a>(entries: impl Iterator<Item = MadtEntry<'a>>) -> Option<Gic> {
    let mut g = Gic::default();
    let mut has_gicd = false;
    for e in entries {
        match e {
            MadtEntry::Gicd(d) => {
                has_gicd = true;
                g.gicd = d.physical_base_address;
                g.version = d.gic_version;
            }
            MadtEntry::Gicc(c) => {
                g.cpus += 1;
                if g.gicc.is_none() && c.gic_registers_address != 0 {
                    g.gicc = Some(c.gic_registers_address);
                }
            }
            MadtEntry::GicRedistributor(r) if g.gicr.is_none() => {
                g.gicr = Some(r.discovery_range_base_address);
            }
            _ => {}
        }
    }
    has_gicd.then_some(g)
}

fn uart(spcr: &Spcr) -> Option<Uart> {
    let address = spcr.base_address()?.ok()?;
    let kind = match spcr.interface_type() {
        SpcrInterfaceType::ArmPL011 => "pl011",
        SpcrInterfaceType::Full16550 | SpcrInterfaceType::Full16450 => "16550",
        SpcrInterfaceType::ArmSBSAGeneric | SpcrInterfaceType::ArmSBSAGeneric32bit => "sbsa",
        _ => "other",
    };
    Some(Uart {
        kind,
        base: address.address,
        io: matches!(address.address_space, acpi::address::AddressSpace::SystemIo),
    })
}

/// Enabled SRAT memory-affinity structures (type 1, 40 bytes) from the raw table
/// (QEMU pads x86 SRATs with disabled all-zero entries; those are skipped).
pub fn srat_memory(table: &[u8]) -> List<MemAffinity> {
    let u32_at = |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"));
    let u64_at = |b: &[u8], o: usize| u64::from(u32_at(b, o)) | u64::from(u32_at(b, o + 4)) << 32;
    let mut list = List::default();
    let mut off = 48;
    while off + 2 <= table.len() {
        let (ty, len) = (table[off], usize::from(table[off + 1]));
        if len < 2 || off + len > table.len() {
            break;
        }
        if ty == 1 && len >= 40 && u32_at(table, off + 28) & 1 != 0 {
            let e = &table[off..off + len];
            list.push(MemAffinity {
                node: u32_at(e, 2),
                base: u64_at(e, 8),
                len: u64_at(e, 16),
                flags: u32_at(e, 28),
            });
        }
        off += len;
    }
    list
}

/// The SRAT header (structures follow), so the crate can find and map the table.
#[repr(C, packed)]
struct Srat {
    header: SdtHeader,
    _reserved1: u32,
    _reserved2: u64,
}

// SAFETY: `Srat` is the SRAT's fixed part with the SDT header first, as the trait needs.
unsafe impl AcpiTable for Srat {
    const SIGNATURE: Signature = Signature::SRAT;

    fn header(&self) -> &SdtHeader {
        &self.header
    }
}

#[derive(Clone, Copy, Debug)]
struct Handler(PhysWindow);

/// What the crate reads for a header outside mapped memory.
static UNMAPPED_STAND_IN: [u8; 4096] = [0; 4096];

impl AcpiHandler for Handler {
    unsafe fn map_physical_region<T>(&self, pa: usize, size: usize) -> PhysicalMapping<Self, T> {
        let va = match self.0.ptr(pa as u64, size as u64) {
            Some(va) => va,
            // A table pointer into memory the direct map does not cover: the crate reads
            // zeros instead (no signature, length 0) and reports the table as invalid,
            // one error and no fault. Larger regions are only ever asked for after a
            // header that was read from mapped memory.
            None if size <= UNMAPPED_STAND_IN.len() => {
                log::warn!(
                    "ACPI: table at {pa:#x}+{size:#x} is not in mapped memory; read as zeros"
                );
                UNMAPPED_STAND_IN.as_ptr()
            }
            None => panic!("ACPI: table at {pa:#x}+{size:#x} outside mapped memory"),
        };
        let va = NonNull::new(va.cast_mut().cast()).expect("window maps no null pointer");
        // SAFETY: `va` points at `size` readable bytes: of the window for `pa`, which
        // stay mapped for the kernel's lifetime (direct map) or the test's buffer, or of
        // the static stand-in, which the crate only reads.
        unsafe { PhysicalMapping::new(pa, va, size, size, *self) }
    }

    fn unmap_physical_region<T>(_region: &PhysicalMapping<Self, T>) {}
}

impl fmt::Display for AcpiInfo {
    /// The `firmware` record fields: `rev=2 oem=BOCHS tables=9 uart.pl011=0x9000000 ...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let oem = core::str::from_utf8(&self.oem).unwrap_or("?").trim_end();
        write!(f, "rev={} oem={oem} tables={}", self.revision, self.tables)?;
        if let Some(u) = self.uart {
            write!(f, " uart.{}={:#x}", u.kind, u.base)?;
        }
        if let Some(e) = self.ecam.items().first() {
            write!(f, " pci.ecam={:#x} pci.ecam.size={:#x}", e.base, e.size())?;
        }
        if let Some(g) = self.gic {
            write!(
                f,
                " gic.version={} gic.gicd={:#x} cpus={}",
                g.version, g.gicd, g.cpus
            )?;
        }
        match self.psci_hvc {
            Some(true) => f.write_str(" psci=hvc")?,
            Some(false) => f.write_str(" psci=smc")?,
            None => {}
        }
        if let Some(s) = &self.srat {
            let hot = s.items().iter().filter(|m| m.hotpluggable()).count();
            write!(f, " srat.memory={} srat.hotplug={hot}", s.total)?;
        }
        Ok(())
    }
}

impl AcpiInfo {
    /// One `firmware.*` record per ECAM window, SRAT memory range and GIC.
    pub fn details(&self, out: &mut dyn fmt::Write) -> fmt::Result {
        for e in self.ecam.items() {
            writeln!(
                out,
                "firmware.ecam segment={} base={:#x} size={:#x} buses={}-{}",
                e.segment,
                e.base,
                e.size(),
                e.bus_start,
                e.bus_end
            )?;
        }
        if let Some(g) = self.gic {
            write!(
                out,
                "firmware.gic version={} gicd={:#x} cpus={}",
                g.version, g.gicd, g.cpus
            )?;
            if let Some(r) = g.gicr {
                write!(out, " gicr={r:#x}")?;
            }
            if let Some(c) = g.gicc {
                write!(out, " gicc={c:#x}")?;
            }
            writeln!(out)?;
        }
        for m in self.srat.iter().flat_map(List::items) {
            writeln!(
                out,
                "firmware.srat start={:#x} end={:#x} node={} flags={:#x} hotplug={}",
                m.base,
                m.base + m.len,
                m.node,
                m.flags,
                u8::from(m.hotpluggable())
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "acpi_tests.rs"]
mod tests;
