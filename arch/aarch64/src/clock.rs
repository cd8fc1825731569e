//! The generic timer's virtual counter (CNTVCT_EL0 at CNTFRQ_EL0 Hz) as the kernel
//! clock. It counts from machine reset, so it also times the firmware and the loader.

use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{CNTFRQ_EL0, CNTVCT_EL0, Readable};

/// The counter value.
pub fn ticks() -> u64 {
    // The ISB orders the counter read after earlier instructions.
    barrier::isb(barrier::SY);
    CNTVCT_EL0.get()
}

/// Counter frequency in Hz (CNTFRQ_EL0, set by firmware).
pub fn frequency() -> u64 {
    CNTFRQ_EL0.get().max(1)
}

/// Nanoseconds for a counter value.
pub fn to_ns(ticks: u64) -> u64 {
    (u128::from(ticks) * 1_000_000_000 / u128::from(frequency())) as u64
}
