//! The TOD clock (STCKF) as the kernel clock, counted from [`mark_boot`], and the idle
//! wait on the clock comparator.

use core::arch::asm;
use core::sync::atomic::{AtomicU64, Ordering};

/// The TOD clock (STCKF): bit 51 ticks once per microsecond.
pub fn tod() -> u64 {
    let mut tod = 0u64;
    // SAFETY: STCKF (opcode b27c) stores one doubleword at the given address.
    unsafe { asm!(".insn s,0xb27c0000,0({p})", p = in(reg_addr) &raw mut tod, options(nostack)) };
    tod
}

static BOOT_TOD: AtomicU64 = AtomicU64::new(0);

/// Records the clock origin for [`now_ns`]; the first call wins.
pub fn mark_boot() {
    let _ = BOOT_TOD.compare_exchange(0, tod(), Ordering::Relaxed, Ordering::Relaxed);
}

/// Nanoseconds since [`mark_boot`]: TOD units are 2^-12 microseconds.
pub fn now_ns() -> u64 {
    let ticks = tod().wrapping_sub(BOOT_TOD.load(Ordering::Relaxed));
    ((u128::from(ticks) * 1000) >> 12) as u64
}

/// Waits about `us` microseconds in an enabled wait, so an idle CPU costs the host
/// nothing. Only the clock-comparator subclass is opened: service signals, which every
/// SCLP call leaves pending, stay masked. `entry.S`'s external handler ends the wait.
pub fn sleep_us(us: u64) {
    let deadline = tod().saturating_add(us << 12);
    let mut scratch = [0u64; 2];
    // SAFETY: sets CR0's clock-comparator subclass bit and the comparator, then loads an
    // enabled-wait PSW (the current mask plus external mask and wait bit) whose address
    // is label 2. The external handler clears the wait and mask bits in the old PSW and
    // resumes there with every register restored. `scratch` holds CR0 and the PSW.
    unsafe {
        asm!(
            "stctg %c0, %c0, 0({buf})",
            "oi 6({buf}), 0x08",
            "lctlg %c0, %c0, 0({buf})",
            "sckc 0({deadline})",
            "epsw {hi}, {lo}",
            "llgfr {hi}, {hi}",
            "llgfr {lo}, {lo}",
            "sllg {hi}, {hi}, 32",
            "ogr {hi}, {lo}",
            "oihh {hi}, 0x0102",
            "stg {hi}, 0({buf})",
            "larl {lo}, 2f",
            "stg {lo}, 8({buf})",
            "lpswe 0({buf})",
            "2:",
            buf = in(reg_addr) scratch.as_mut_ptr(),
            deadline = in(reg_addr) &raw const deadline,
            hi = out(reg) _,
            lo = out(reg) _,
            options(nostack),
        );
    }
}
