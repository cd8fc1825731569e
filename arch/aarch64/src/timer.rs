//! The generic timer's virtual counter (CNTVCT_EL0 at CNTFRQ_EL0 Hz) as the kernel
//! clock. It counts from machine reset, so it also times the firmware and the loader.

use crate::cpu::sysreg;

/// The counter value.
pub fn ticks() -> u64 {
    // SAFETY: an ISB orders the counter read after earlier instructions; no memory
    // effects.
    unsafe { core::arch::asm!("isb", options(nomem, nostack, preserves_flags)) };
    sysreg!("cntvct_el0")
}

/// Counter frequency in Hz (CNTFRQ_EL0, set by firmware).
pub fn frequency() -> u64 {
    sysreg!("cntfrq_el0").max(1)
}

/// Nanoseconds for a counter value.
pub fn to_ns(ticks: u64) -> u64 {
    (u128::from(ticks) * 1_000_000_000 / u128::from(frequency())) as u64
}
