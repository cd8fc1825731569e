//! Local APIC and I/O APIC: just enough to route one GSI (the SCI) to one vector on
//! this CPU. xAPIC through MMIO (mapped uncached with [`crate::kpt::map_device`]), or
//! x2APIC through MSRs when the firmware left that mode on. The 8259 PICs are masked.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use x86_64::instructions::port::Port;
use x86_64::registers::model_specific::Msr;

use crate::kpt;

/// The vector the local APIC uses for spurious interrupts (no EOI for those).
pub const SPURIOUS_VECTOR: u8 = 0xff;

const IA32_APIC_BASE: u32 = 0x1b;
const APIC_GLOBAL_ENABLE: u64 = 1 << 11;
const APIC_X2APIC: u64 = 1 << 10;
const X2APIC_MSR: u32 = 0x800;

const REG_ID: u32 = 0x20;
const REG_TPR: u32 = 0x80;
const REG_EOI: u32 = 0xb0;
const REG_SVR: u32 = 0xf0;
const REG_LVT_TIMER: u32 = 0x320;
const REG_LVT_LINT0: u32 = 0x350;
const REG_LVT_ERROR: u32 = 0x370;
const LVT_MASKED: u32 = 1 << 16;
const SVR_ENABLE: u32 = 1 << 8;

/// HHDM address of the xAPIC registers (0 in x2APIC mode or before [`init_local`]).
static LAPIC_VA: AtomicU64 = AtomicU64::new(0);
static X2APIC: AtomicBool = AtomicBool::new(false);

fn read(reg: u32) -> u32 {
    if X2APIC.load(Ordering::Relaxed) {
        let msr = Msr::new(X2APIC_MSR + (reg >> 4));
        // SAFETY: x2APIC mode is on (checked at init), so the x2APIC MSR range exists.
        return unsafe { msr.read() } as u32;
    }
    let va = LAPIC_VA.load(Ordering::Relaxed);
    // SAFETY: `va` maps the local APIC's 4 KiB register page uncached (init_local).
    unsafe { core::ptr::read_volatile((va + u64::from(reg)) as *const u32) }
}

fn write(reg: u32, value: u32) {
    if X2APIC.load(Ordering::Relaxed) {
        let mut msr = Msr::new(X2APIC_MSR + (reg >> 4));
        // SAFETY: x2APIC mode is on, and `reg` names a writable APIC register.
        unsafe { msr.write(u64::from(value)) };
        return;
    }
    let va = LAPIC_VA.load(Ordering::Relaxed);
    // SAFETY: `va` maps the local APIC's register page uncached; `reg` is writable.
    unsafe { core::ptr::write_volatile((va + u64::from(reg)) as *mut u32, value) }
}

/// Masks both 8259 PICs, enables this CPU's local APIC (spurious vector set, timer,
/// LINT0 and error LVTs masked, TPR 0) and returns its APIC id; `None` when the
/// registers cannot be mapped.
pub fn init_local(madt_base: u64) -> Option<u32> {
    for port in [0x21u16, 0xa1] {
        // SAFETY: writing 0xff to a PIC's data port masks all its lines.
        unsafe { Port::<u8>::new(port).write(0xff) };
    }
    let mut base_msr = Msr::new(IA32_APIC_BASE);
    // SAFETY: IA32_APIC_BASE exists on every x86_64 CPU.
    let base = unsafe { base_msr.read() };
    if base & APIC_GLOBAL_ENABLE == 0 {
        // SAFETY: setting the global enable bit keeps the base and mode as they are.
        unsafe { base_msr.write(base | APIC_GLOBAL_ENABLE) };
    }
    if base & APIC_X2APIC != 0 {
        X2APIC.store(true, Ordering::Relaxed);
    } else {
        let pa = if madt_base != 0 {
            madt_base
        } else {
            base & 0xf_ffff_f000
        };
        LAPIC_VA.store(kpt::map_device(pa, 0x1000)?, Ordering::Relaxed);
    }
    for lvt in [REG_LVT_TIMER, REG_LVT_LINT0, REG_LVT_ERROR] {
        write(lvt, read(lvt) | LVT_MASKED);
    }
    write(REG_TPR, 0);
    write(REG_SVR, SVR_ENABLE | u32::from(SPURIOUS_VECTOR));
    let id = read(REG_ID);
    Some(if X2APIC.load(Ordering::Relaxed) {
        id
    } else {
        id >> 24
    })
}

/// Signals the end of an interrupt to the local APIC.
pub fn eoi() {
    write(REG_EOI, 0);
}

/// Whether x2APIC mode is on, for records.
pub fn mode() -> &'static str {
    if X2APIC.load(Ordering::Relaxed) {
        "x2apic"
    } else {
        "xapic"
    }
}

/// How a GSI is to be delivered.
#[derive(Clone, Copy, Debug)]
pub struct Redirect {
    /// The I/O APIC's MMIO base and first GSI.
    pub ioapic: (u64, u32),
    /// The GSI.
    pub gsi: u32,
    /// CPU vector.
    pub vector: u8,
    /// Level-triggered.
    pub level: bool,
    /// Active-low.
    pub active_low: bool,
    /// Destination APIC id (physical mode).
    pub dest: u32,
}

/// Programs (and unmasks) the I/O APIC redirection entry of `r.gsi`.
pub fn route(r: Redirect) -> Result<(), &'static str> {
    let va = kpt::map_device(r.ioapic.0, 0x20).ok_or("ioapic-unmapped")?;
    let ioapic = |index: u32, value: Option<u32>| -> u32 {
        // SAFETY: `va` maps the I/O APIC's IOREGSEL (+0) and IOWIN (+0x10) uncached;
        // selecting then reading or writing a register is its whole protocol.
        unsafe {
            core::ptr::write_volatile(va as *mut u32, index);
            match value {
                Some(v) => {
                    core::ptr::write_volatile((va + 0x10) as *mut u32, v);
                    v
                }
                None => core::ptr::read_volatile((va + 0x10) as *const u32),
            }
        }
    };
    let pins = (ioapic(1, None) >> 16 & 0xff) + 1;
    let pin = r.gsi.checked_sub(r.ioapic.1).ok_or("gsi-below-ioapic")?;
    if pin >= pins {
        return Err("gsi-beyond-ioapic");
    }
    let low = u32::from(r.vector) | u32::from(r.active_low) << 13 | u32::from(r.level) << 15;
    ioapic(0x10 + 2 * pin + 1, Some((r.dest & 0xff) << 24));
    ioapic(0x10 + 2 * pin, Some(low));
    Ok(())
}
