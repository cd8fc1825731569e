//! MMIO on QEMU `virt` as the firmware leaves it mapped (the low 1 GiB of device
//! space is identity-mapped as device memory by AAVMF): the PL011 console of the
//! loader, system registers, PSCI.

/// QEMU `virt` PL011 (hw/arm/virt.c `base_memmap[VIRT_UART]`).
const PL011: u64 = 0x0900_0000;
const FR_TXFF: u32 = 1 << 5;

/// The PL011, written directly (AAVMF has set it up; it is also its own console).
pub struct Serial;

impl Serial {
    /// Nothing to do: AAVMF programs the UART before the loader runs.
    pub fn init() {}

    /// Sends one byte, waiting (boundedly) for room in the transmitter.
    pub fn byte(b: u8) {
        for _ in 0..100_000 {
            if read32(PL011 + 0x18) & FR_TXFF == 0 {
                break;
            }
        }
        write32(PL011, u32::from(b));
    }
}

/// 32-bit MMIO read.
pub fn read32(pa: u64) -> u32 {
    // SAFETY: only device registers of QEMU `virt` that AAVMF identity-maps are
    // accessed (PL011, fw_cfg); reads have no memory effects beyond the device.
    unsafe { (pa as *const u32).read_volatile() }
}

/// 32-bit MMIO write.
pub fn write32(pa: u64, v: u32) {
    // SAFETY: as for `read32`.
    unsafe { (pa as *mut u32).write_volatile(v) }
}

/// Reads a system register by name.
macro_rules! sysreg {
    ($name:literal) => {{
        let v: u64;
        // SAFETY: reading an EL1-accessible system register has no side effects.
        unsafe {
            core::arch::asm!(concat!("mrs {}, ", $name), out(reg) v, options(nomem, nostack, preserves_flags))
        };
        v
    }};
}
pub(crate) use sysreg;

/// PSCI `SYSTEM_OFF` through QEMU `virt`'s conduit: HVC when the firmware runs at EL1,
/// SMC when it owns EL2 (`virtualization=on`).
pub fn system_off() {
    const SYSTEM_OFF: u64 = 0x8400_0008;
    let el1 = (sysreg!("currentel") >> 2) & 3 == 1;
    // SAFETY: SYSTEM_OFF takes no arguments and ends the machine; if PSCI is absent
    // the call returns an error code in x0 and nothing else changes.
    unsafe {
        if el1 {
            core::arch::asm!("hvc #0", inout("x0") SYSTEM_OFF => _, options(nostack));
        } else {
            core::arch::asm!("smc #0", inout("x0") SYSTEM_OFF => _, options(nostack));
        }
    }
}

/// `wfe` with interrupts masked.
pub fn wfe() {
    // SAFETY: masks interrupts and waits for an event; no memory effects.
    unsafe { core::arch::asm!("msr daifset, #0xf", "wfe", options(nomem, nostack)) };
}
