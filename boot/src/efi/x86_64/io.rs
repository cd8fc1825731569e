//! Port I/O, MSRs, control registers, and the COM1 console of the loader.

use core::arch::asm;

const COM1: u16 = 0x3f8;

/// COM1, written directly (the firmware has already set it up).
pub struct Serial;

impl Serial {
    /// Nothing to do: OVMF programs COM1 before the loader runs.
    pub fn init() {}

    /// Sends one byte, waiting (boundedly) for room in the transmitter.
    pub fn byte(b: u8) {
        for _ in 0..100_000 {
            if inb(COM1 + 5) & 0x20 != 0 {
                break;
            }
        }
        outb(COM1, b);
    }
}

/// `out dx, al`.
pub fn outb(port: u16, v: u8) {
    // SAFETY: port I/O to legacy devices (COM1, PIC, fw_cfg, debug exit) the loader
    // owns at this point; no memory is touched.
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") v, options(nomem, nostack, preserves_flags))
    };
}

/// `out dx, ax`.
pub fn outw(port: u16, v: u16) {
    // SAFETY: as for `outb`.
    unsafe {
        asm!("out dx, ax", in("dx") port, in("ax") v, options(nomem, nostack, preserves_flags))
    };
}

/// `out dx, eax`.
pub fn outl(port: u16, v: u32) {
    // SAFETY: as for `outb`.
    unsafe {
        asm!("out dx, eax", in("dx") port, in("eax") v, options(nomem, nostack, preserves_flags))
    };
}

/// `in al, dx`.
pub fn inb(port: u16) -> u8 {
    let v: u8;
    // SAFETY: as for `outb`.
    unsafe {
        asm!("in al, dx", in("dx") port, out("al") v, options(nomem, nostack, preserves_flags))
    };
    v
}

/// Reads MSR `msr`.
pub fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: only architectural MSRs (EFER, PAT, APIC base, x2APIC) are read.
    unsafe {
        asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    };
    u64::from(hi) << 32 | u64::from(lo)
}

/// Writes MSR `msr`.
pub fn wrmsr(msr: u32, v: u64) {
    // SAFETY: only architectural MSRs are written, with values valid for them.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") v as u32, in("edx") (v >> 32) as u32, options(nomem, nostack, preserves_flags))
    };
}

/// Reads CR4.
pub fn cr4() -> u64 {
    let v: u64;
    // SAFETY: reading a control register has no side effects.
    unsafe { asm!("mov {}, cr4", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Sets CR0.WP.
pub fn set_cr0_wp() {
    // SAFETY: write protection only makes supervisor writes to read-only pages fault;
    // after ExitBootServices nothing of the firmware runs any more.
    unsafe {
        asm!("mov {t}, cr0", "or {t}, 0x10000", "mov cr0, {t}", t = out(reg) _, options(nomem, nostack))
    };
}

/// `hlt` with interrupts off.
pub fn hlt() {
    // SAFETY: stops the CPU until the next interrupt; no memory effects.
    unsafe { asm!("cli", "hlt", options(nomem, nostack)) };
}
