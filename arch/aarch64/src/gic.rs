//! The GICv2 distributor and CPU interface, as far as hotplug needs them: one SPI (the
//! GED's, INTID 41, edge-triggered because QEMU pulses it) routed to this CPU, taken as
//! an IRQ exception and handed to its handler, every other interrupt disabled.
//!
//! GICv3 is not driven here (QEMU `virt` gives a GICv2 with the default `gic-version`);
//! callers then fall back to polling the device and say so in their records.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use aarch64_cpu::registers::{DAIF, ReadWriteable};

use crate::mmio::Mmio;

/// Distributor registers.
const GICD_CTLR: u64 = 0x000;
const GICD_TYPER: u64 = 0x004;
const GICD_IGROUPR: u64 = 0x080;
const GICD_ISENABLER: u64 = 0x100;
const GICD_ICENABLER: u64 = 0x180;
const GICD_ICPENDR: u64 = 0x280;
const GICD_IPRIORITYR: u64 = 0x400;
const GICD_ITARGETSR: u64 = 0x800;
const GICD_ICFGR: u64 = 0xc00;
/// CPU-interface registers.
const GICC_CTLR: u64 = 0x00;
const GICC_PMR: u64 = 0x04;
const GICC_BPR: u64 = 0x08;
const GICC_IAR: u64 = 0x0c;
const GICC_EOIR: u64 = 0x10;
/// Bytes of each block QEMU `virt` maps (distributor 64 KiB, CPU interface 8 KiB+).
pub const GICD_BYTES: u64 = 0x1_0000;
/// CPU-interface bytes used (GICC_IAR/EOIR are in the first page).
pub const GICC_BYTES: u64 = 0x2000;
/// INTIDs 1020-1023 are special (1023: spurious).
const SPURIOUS: u32 = 1020;
/// Priority given to enabled interrupts (lower is more urgent; PMR lets all through).
const PRIORITY: u8 = 0xa0;
/// The most SPI handlers.
const MAX_HANDLERS: usize = 4;

/// A GICv2 found by firmware (ACPI MADT: GICD and GICC bases).
#[derive(Clone, Copy, Debug)]
pub struct Gic {
    gicd: Mmio,
    gicc: Mmio,
    lines: u32,
}

static GICD_BASE: AtomicU64 = AtomicU64::new(0);
static GICC_BASE: AtomicU64 = AtomicU64::new(0);
/// Handler slots: the INTID (0 = free) and the function, set before the line is enabled.
static HANDLER_IDS: [AtomicU32; MAX_HANDLERS] = [const { AtomicU32::new(0) }; MAX_HANDLERS];
/// Copies of the handlers the IRQ path reads without a lock.
static HANDLER_FNS: [spin::Once<fn()>; MAX_HANDLERS] = [const { spin::Once::new() }; MAX_HANDLERS];
static IRQS: AtomicU64 = AtomicU64::new(0);
static STRAY: AtomicU64 = AtomicU64::new(0);

impl Gic {
    /// Takes over the GICv2 at `gicd` / `gicc` (already mapped, see [`crate::kpt`]):
    /// every interrupt disabled and its pending state cleared, distributor and CPU
    /// interface enabled for both groups, priority mask open.
    ///
    /// # Safety
    /// `gicd` and `gicc` must be this machine's GICv2 distributor and CPU interface,
    /// mapped as device memory.
    pub unsafe fn init(gicd: u64, gicc: u64) -> Gic {
        // SAFETY: the caller's contract.
        let (d, c) = unsafe { (Mmio::new(gicd, GICD_BYTES), Mmio::new(gicc, GICC_BYTES)) };
        let lines = 32 * ((d.read32(GICD_TYPER) & 0x1f) + 1);
        d.write32(GICD_CTLR, 0);
        for word in 0..lines / 32 {
            d.write32(GICD_ICENABLER + 4 * u64::from(word), u32::MAX);
            d.write32(GICD_ICPENDR + 4 * u64::from(word), u32::MAX);
        }
        d.write32(GICD_CTLR, 0b11);
        c.write32(GICC_PMR, 0xf0);
        c.write32(GICC_BPR, 0);
        c.write32(GICC_CTLR, 0b11);
        GICD_BASE.store(gicd, Ordering::Relaxed);
        GICC_BASE.store(gicc, Ordering::Release);
        Gic {
            gicd: d,
            gicc: c,
            lines,
        }
    }

    /// Routes SPI `intid` to CPU 0 as an edge- (`edge`) or level-triggered group-0
    /// interrupt, installs `handler` (run in the IRQ exception: atomics and MMIO only,
    /// no console) and enables it. `false` when the line does not exist or no handler
    /// slot is left.
    pub fn enable_spi(&self, intid: u32, edge: bool, handler: fn()) -> bool {
        if !(32..self.lines).contains(&intid) {
            return false;
        }
        // Set up single-threaded, before IRQs are unmasked: a free slot stays free.
        let Some(i) = HANDLER_FNS.iter().position(|f| f.get().is_none()) else {
            return false;
        };
        HANDLER_FNS[i].call_once(|| handler);
        HANDLER_IDS[i].store(intid, Ordering::Release);
        let d = &self.gicd;
        let (word, bit) = (u64::from(intid / 32) * 4, 1u32 << (intid % 32));
        d.write32(GICD_IGROUPR + word, d.read32(GICD_IGROUPR + word) & !bit);
        let byte = |base: u64| base + u64::from(intid & !3);
        let shift = 8 * (intid % 4);
        let set_byte = |base: u64, value: u8| {
            let v = d.read32(byte(base)) & !(0xff << shift);
            d.write32(byte(base), v | u32::from(value) << shift);
        };
        set_byte(GICD_IPRIORITYR, PRIORITY);
        set_byte(GICD_ITARGETSR, 1);
        let cfg = GICD_ICFGR + u64::from(intid / 16) * 4;
        let cfg_bit = 2 << (2 * (intid % 16));
        let v = d.read32(cfg);
        d.write32(cfg, if edge { v | cfg_bit } else { v & !cfg_bit });
        d.write32(GICD_ICPENDR + word, bit);
        d.write32(GICD_ISENABLER + word, bit);
        true
    }

    /// `v2@GICD/GICC lines=N`, for the source record.
    pub fn label(&self) -> alloc::string::String {
        alloc::format!(
            "v2@{:#x}/{:#x} lines={}",
            self.gicd.base(),
            self.gicc.base(),
            self.lines
        )
    }
}

/// Unmasks IRQs on this CPU (PSTATE.I); FIQ, SError and debug stay masked.
pub fn unmask_irqs() {
    // Every IRQ the GIC can deliver has been routed to `aarch64_irq`, which returns to
    // the interrupted code with its registers restored (`entry.rs`). IRQs are masked
    // until here, so nothing changes DAIF between the read and the write.
    DAIF.modify(DAIF::I::Unmasked);
}

/// IRQs taken so far, and IRQs with no handler (or spurious).
pub fn irq_counts() -> (u64, u64) {
    (IRQS.load(Ordering::Relaxed), STRAY.load(Ordering::Relaxed))
}

/// Called by the IRQ vector with the interrupted context saved: acknowledges the
/// interrupt, runs its handler and signals the end of interrupt.
#[unsafe(no_mangle)]
extern "C" fn aarch64_irq() {
    let gicc = GICC_BASE.load(Ordering::Acquire);
    if gicc == 0 {
        STRAY.fetch_add(1, Ordering::Relaxed);
        return;
    }
    // SAFETY: `Gic::init` stored the base after mapping and enabling this CPU interface.
    let c = unsafe { Mmio::new(gicc, GICC_BYTES) };
    let iar = c.read32(GICC_IAR);
    let intid = iar & 0x3ff;
    if intid >= SPURIOUS {
        STRAY.fetch_add(1, Ordering::Relaxed);
        return;
    }
    IRQS.fetch_add(1, Ordering::Relaxed);
    let handler = HANDLER_IDS
        .iter()
        .position(|id| id.load(Ordering::Acquire) == intid)
        .and_then(|i| HANDLER_FNS[i].get().copied());
    match handler {
        Some(f) => f(),
        None => {
            STRAY.fetch_add(1, Ordering::Relaxed);
            let gicd = GICD_BASE.load(Ordering::Relaxed);
            // SAFETY: stored by `Gic::init` together with the CPU interface.
            let d = unsafe { Mmio::new(gicd, GICD_BYTES) };
            d.write32(
                GICD_ICENABLER + u64::from(intid / 32) * 4,
                1 << (intid % 32),
            );
        }
    }
    c.write32(GICC_EOIR, iar);
}
