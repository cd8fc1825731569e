//! CPU facts and primitives: STFLE facility bits, the CPU id, DIAG 0x500
//! STORAGE_LIMIT (guarded), the TLB purge, and the disabled-wait stop. The TOD clock is
//! [`crate::clock`], guarded accesses [`crate::probe`].

use core::arch::asm;

use crate::exceptions;
use crate::facility::Facilities;

/// Reads the facility list with STFLE (four doublewords: facilities 0..=255).
pub fn facilities() -> Facilities {
    let mut words = [0u64; 4];
    // SAFETY: STFLE stores at most r0+1 = 4 doublewords into `words`, and updates r0.
    unsafe {
        asm!(
            "stfle 0({buf})",
            buf = in(reg_addr) words.as_mut_ptr(),
            inout("r0") 3u64 => _,
            options(nostack),
        );
    }
    Facilities::new(words)
}

/// The CPU identification (STIDP).
pub fn cpu_id() -> u64 {
    let mut id = 0u64;
    // SAFETY: STIDP stores one doubleword at the given address.
    unsafe { asm!("stidp 0({p})", p = in(reg_addr) &raw mut id, options(nostack)) };
    id
}

/// DIAG 0x500 subcode 4: the highest valid absolute address including hotplug space.
/// `None` on hypervisors without the subcode (their specification exception is
/// caught through the program-check recovery slot).
pub fn storage_limit() -> Option<u64> {
    let limit: u64;
    let ok: u64;
    // SAFETY: the DIAG reads r1/r2 and writes r2. Should it raise a program check, the
    // handler restores the registers saved at the fault and resumes at label 2 (the
    // slot is armed first); either way the slot is cleared before the asm ends.
    unsafe {
        asm!(
            "larl {tmp}, 2f",
            "stg {tmp}, 0({slot})",
            "lghi %r1, 4",
            "lghi %r2, 0",
            "diag %r2, %r4, 0x500",
            "lghi {ok}, 1",
            "j 3f",
            "2:",
            "lghi {ok}, 0",
            "3:",
            "mvghi 0({slot}), 0",
            tmp = out(reg_addr) _,
            slot = in(reg_addr) exceptions::recovery_slot(),
            ok = out(reg_addr) ok,
            out("r1") _,
            out("r2") limit,
            out("r3") _,
            out("r4") _,
        );
    }
    (ok == 1).then_some(limit)
}

/// PTLB: purges this CPU's TLB, so new and removed translations take effect.
pub fn purge_tlb() {
    // SAFETY: PTLB only discards cached translations.
    unsafe { asm!("ptlb", options(nostack)) };
}

/// Loads a disabled-wait PSW: the CPU stops for good. Address 0xfff tells QEMU the
/// guest ended normally (exit status 0); any other address is reported as a crash.
pub fn disabled_wait(address: u64) -> ! {
    let psw: [u64; 2] = [0x0002_0001_8000_0000, address];
    // SAFETY: a valid disabled-wait PSW; nothing runs after it.
    unsafe { asm!("lpswe 0({p})", p = in(reg_addr) &raw const psw, options(noreturn)) }
}

/// Touches an address beyond any storage QEMU gives us: an addressing exception with
/// DAT off, a translation exception with DAT on. Either way a program check.
pub fn provoke_fault() {
    let bad = 0x7fff_ffff_f000u64 as *const u64;
    // SAFETY: deliberately invalid; the program-check handler reports it and stops
    // the machine, so execution never continues past the load.
    let value = unsafe { core::ptr::read_volatile(bad) };
    core::hint::black_box(value);
}
