//! ACPI tables through the `acpi` crate: the facts the kernel needs from MADT (GIC),
//! SPCR (console UART), MCFG (PCI ECAM), SRAT (memory affinity, hot-pluggable ranges)
//! and FADT (PSCI conduit on Arm), gathered into one fixed-size [`AcpiInfo`] in one walk
//! ([`acpi_find::with_tables`]).
//!
//! Nothing here allocates except the SRAT parser (the arch crate parses before the heap
//! exists; the SRAT is read once the heap is up, see [`AcpiInfo::srat`]), and physical
//! memory is reached only through a checked [`ReadPhys`], so host tests run the same
//! code over a dump of QEMU's tables.

use core::fmt;
use core::mem::size_of;

use acpi::fadt::Fadt;
use acpi::madt::{Madt, MadtEntry};
use acpi::mcfg::Mcfg;
use acpi::spcr::{Spcr, SpcrInterfaceType};
use acpi::{AcpiTable, AcpiTables, PhysicalMapping};

use super::acpi_find::{self, Handler, ReadPhys};
use super::srat::{self, MemAffinity};
use super::{apic, fadt};
use crate::boot_info::{MappedSpans, MemoryMap};

/// A linear view of physical memory: `pa` is at `base_va + (pa - base_pa)` for
/// `len` bytes from `base_pa` (a direct map on the target, a buffer in host tests),
/// bounded on the target by the spans the direct map really covers. The device tree is
/// read through one ([`super::fdt::bytes`]).
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
    /// covers: every read is checked against them, whatever length a header claims.
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

    /// The `len` bytes at `pa`, if the window covers and maps all of them.
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

impl<T: Copy + Default> FromIterator<T> for List<T> {
    fn from_iter<I: IntoIterator<Item = T>>(items: I) -> Self {
        let mut list = List::default();
        items.into_iter().for_each(|item| list.push(item));
        list
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
    /// The SRAT's enabled memory-affinity structures (`None`: no SRAT, a SRAT that
    /// [`srat::parse_table`] refuses, or a summary made before the heap exists by
    /// [`parse_boot`]).
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

/// Parses the tables reachable from the RSDP at physical `rsdp`, reading physical
/// memory only through `read`. Allocates (the SRAT parser): use [`parse_boot`] before
/// the heap exists.
pub fn parse(rsdp: u64, read: ReadPhys<'_>) -> Result<AcpiInfo, AcpiError> {
    parse_with(rsdp, read, true)
}

/// [`parse`] without the SRAT, allocation-free, for the arch crate's first steps.
pub fn parse_boot(rsdp: u64, read: ReadPhys<'_>) -> Result<AcpiInfo, AcpiError> {
    parse_with(rsdp, read, false)
}

fn parse_with(rsdp: u64, read: ReadPhys<'_>, with_srat: bool) -> Result<AcpiInfo, AcpiError> {
    read(rsdp, 36).ok_or(AcpiError::Unreachable)?;
    let (info, refused) =
        acpi_find::with_tables(rsdp, read, |tables| summary(tables, read, with_srat))
            .map_err(|_| AcpiError::BadRoot)?;
    if let Some(r) = refused {
        log::warn!("acpi: {r}: skipped");
    }
    Ok(info)
}

fn summary(tables: &AcpiTables<Handler<'_>>, read: ReadPhys<'_>, with_srat: bool) -> AcpiInfo {
    let mut info = AcpiInfo {
        revision: tables.revision(),
        tables: tables.headers().count(),
        ..AcpiInfo::default()
    };
    if let Some(h) = tables.headers().next() {
        info.oem = h.oem_id;
    }
    let bytes = |span: Option<(usize, usize)>| span.and_then(|(pa, len)| read(pa as u64, len));
    let madt = bytes(tables.find_table::<Madt>().ok().and_then(span));
    if let Some((_, entries)) = madt.and_then(|t| apic::madt_entries(t).ok()) {
        info.gic = gic(entries);
    }
    if let Ok(spcr) = tables.find_table::<Spcr>() {
        info.uart = uart(&spcr);
    }
    if let Ok(mcfg) = tables.find_table::<Mcfg>() {
        // The crate subtracts the fixed part from `length` without checking it.
        if mcfg.header().length as usize >= size_of::<Mcfg>() {
            for e in mcfg.entries() {
                info.ecam.push(Ecam {
                    base: e.base_address,
                    segment: e.pci_segment_group,
                    bus_start: e.bus_number_start,
                    bus_end: e.bus_number_end,
                });
            }
        }
    }
    if with_srat {
        let srat = bytes(tables.find_table::<acpi_find::Srat>().ok().and_then(span));
        info.srat = srat
            .and_then(|t| srat::parse_table(t).ok())
            .map(|s| s.memory.iter().filter(|m| m.enabled()).copied().collect());
    }
    let fadt = bytes(tables.find_table::<Fadt>().ok().and_then(span));
    if let Some(fadt) = fadt.and_then(|t| fadt::padded(t).ok()) {
        let flags = fadt.arm_boot_arch;
        info.psci_hvc = flags
            .implements_psci()
            .then(|| flags.use_hvc_as_psci_conduit());
    }
    info
}

/// Where a table the crate found lies: its physical start and `length`.
fn span<T: AcpiTable>(m: PhysicalMapping<Handler<'_>, T>) -> Option<(usize, usize)> {
    Some((m.physical_start(), m.region_length()))
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
                m.end(),
                m.domain,
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
