//! The ACPI Generic Event Device of QEMU `virt` (qemu-hotplug.md §3): its event selector
//! (0x09080000, read-to-clear; bit 0x1 memory hotplug, 0x4 NVDIMM hotplug) signalled on
//! GIC INTID 41 (edge: QEMU pulses the line), and the memory-hotplug controller at
//! 0x09070000 — the x86 register block over MMIO, driven by the shared
//! [`kernel::firmware::mhpd`] source through [`GedMhpdRegs`].
//!
//! The IRQ handler only reads the selector and accumulates its bits; each consumer (the
//! MHPD source for 0x1, the NVDIMM FIT source for 0x4) takes its own bit when polled.
//! Without a usable GIC the selector is read at every poll instead (`notify=poll`).

use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use kernel::firmware::mhpd::MhpdRegs;

use crate::mmio::Mmio;

/// The memory-hotplug controller block (`base_memmap[VIRT_PCDIMM_ACPI]`).
pub const MHPD_BASE: u64 = 0x0907_0000;
/// Its length.
pub const MHPD_BYTES: u64 = 0x18;
/// The GED event selector (`base_memmap[VIRT_ACPI_GED]`).
pub const GED_BASE: u64 = 0x0908_0000;
/// The GED's SPI as a GIC INTID (`a15irqmap[VIRT_ACPI_GED]` = 9, + 32).
pub const GED_INTID: u32 = 41;
/// Selector bit: memory hotplug.
pub const SEL_MEMORY: u32 = 0x1;
/// Selector bit: NVDIMM hotplug.
pub const SEL_NVDIMM: u32 = 0x4;

/// Selector bits read but not yet taken by their consumer.
static PENDING: AtomicU32 = AtomicU32::new(0);
/// GED interrupts taken.
static GED_IRQS: AtomicU64 = AtomicU64::new(0);
/// Whether the GED line is delivered as an IRQ (else the selector is polled).
static BY_IRQ: AtomicBool = AtomicBool::new(false);
/// Whether [`init`] ran (the selector page is mapped and the GED exists).
static READY: AtomicBool = AtomicBool::new(false);

/// Reads (and so clears) the selector.
fn read_selector() -> u32 {
    // SAFETY: only reached after `init`, whose contract says the GED exists and its page
    // is mapped as device memory.
    let ged = unsafe { Mmio::new(GED_BASE, 4) };
    ged.read32(0)
}

/// The IRQ handler of INTID 41: reads the selector, keeps its bits for the consumers.
pub fn on_irq() {
    GED_IRQS.fetch_add(1, Ordering::Relaxed);
    if READY.load(Ordering::Acquire) {
        PENDING.fetch_or(read_selector(), Ordering::AcqRel);
    }
}

/// Starts using the GED; `by_irq` says whether INTID 41 reaches [`on_irq`]. Bits that
/// arrived before are kept (the consumers' first poll scans everything anyway).
///
/// # Safety
/// The GED must exist (ACPI boot under firmware) and its page be mapped as device memory.
pub unsafe fn init(by_irq: bool) {
    READY.store(true, Ordering::Release);
    BY_IRQ.store(by_irq, Ordering::Release);
    PENDING.fetch_or(read_selector(), Ordering::AcqRel);
}

/// Whether selector `bit` was signalled since the last call; consumes it.
pub fn take(bit: u32) -> bool {
    if !READY.load(Ordering::Acquire) {
        return false;
    }
    if !BY_IRQ.load(Ordering::Acquire) {
        PENDING.fetch_or(read_selector(), Ordering::AcqRel);
    }
    PENDING.fetch_and(!bit, Ordering::AcqRel) & bit != 0
}

/// `notify=irq|poll intid=41 ged.irqs=N irqs=N stray=N`.
pub fn describe(out: &mut dyn fmt::Write) -> fmt::Result {
    let (irqs, stray) = crate::gic::irq_counts();
    write!(
        out,
        "ged={GED_BASE:#x} notify={} intid={GED_INTID} ged.irqs={} irqs={irqs} stray={stray}",
        if BY_IRQ.load(Ordering::Relaxed) {
            "irq"
        } else {
            "poll"
        },
        GED_IRQS.load(Ordering::Relaxed)
    )
}

/// The MHPD registers over MMIO, notified by GED selector bit 0x1.
pub struct GedMhpdRegs(Mmio);

impl GedMhpdRegs {
    /// The block at [`MHPD_BASE`].
    ///
    /// # Safety
    /// The MHPD must exist (ACPI boot under firmware) and be mapped as device memory.
    pub unsafe fn new() -> GedMhpdRegs {
        // SAFETY: the caller's contract.
        GedMhpdRegs(unsafe { Mmio::new(MHPD_BASE, MHPD_BYTES) })
    }
}

impl MhpdRegs for GedMhpdRegs {
    fn read32(&mut self, offset: u8) -> u32 {
        self.0.read32(u64::from(offset))
    }

    fn write32(&mut self, offset: u8, value: u32) {
        self.0.write32(u64::from(offset), value);
    }

    fn read8(&mut self, offset: u8) -> u8 {
        self.0.read8(u64::from(offset))
    }

    fn write8(&mut self, offset: u8, value: u8) {
        self.0.write8(u64::from(offset), value);
    }

    fn take_notification(&mut self) -> bool {
        take(SEL_MEMORY)
    }

    fn describe(&self, out: &mut dyn fmt::Write) -> fmt::Result {
        describe(out)
    }
}
