//! Guarded accesses (`kernel::probe`) on aarch64: one recovery slot the synchronous
//! exception handler checks first. Armed, it records ESR_EL1 and FAR_EL1, points
//! ELR_EL1 at the recovery label and returns through the registers the vector saved,
//! so the probe resumes with everything as it was at the faulting instruction.

use core::arch::asm;
use core::sync::atomic::{AtomicU64, Ordering};

use aarch64_cpu::registers::{ELR_EL1, Writeable};
use kernel::probe::{Access, ProbeFault};

use crate::exceptions::{Frame, class_name};

/// Where to resume after the next synchronous exception, or 0.
static RECOVERY: AtomicU64 = AtomicU64::new(0);
/// What the recovered exception reported: ESR_EL1, FAR_EL1.
static FAULT: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];

/// Called first by the exception handler for synchronous exceptions: when a probe is
/// armed, records the syndrome and returns to the probe's recovery label.
pub fn recover(frame: &Frame, esr: u64, far: u64) {
    let resume = RECOVERY.swap(0, Ordering::SeqCst);
    if resume == 0 {
        return;
    }
    FAULT[0].store(esr, Ordering::SeqCst);
    FAULT[1].store(far, Ordering::SeqCst);
    // The exception returns to the probe's recovery label.
    ELR_EL1.set(resume);
    // SAFETY: `frame` is where the vector saved x0-x30 (SP at the vector, 256 bytes);
    // reloading them, dropping the frame and returning with ELR_EL1 at the probe's
    // label resumes the probe exactly as it was at the fault, SPSR_EL1 untouched.
    // Asm because an exception return that reloads every general register and SP
    // cannot be written in Rust, and aarch64-cpu's `eret` restores none of them.
    unsafe {
        asm!(
            "mov sp, {frame}",
            "ldp x0, x1, [sp, #0]",
            "ldp x2, x3, [sp, #16]",
            "ldp x4, x5, [sp, #32]",
            "ldp x6, x7, [sp, #48]",
            "ldp x8, x9, [sp, #64]",
            "ldp x10, x11, [sp, #80]",
            "ldp x12, x13, [sp, #96]",
            "ldp x14, x15, [sp, #112]",
            "ldp x16, x17, [sp, #128]",
            "ldp x18, x19, [sp, #144]",
            "ldp x20, x21, [sp, #160]",
            "ldp x22, x23, [sp, #176]",
            "ldp x24, x25, [sp, #192]",
            "ldp x26, x27, [sp, #208]",
            "ldp x28, x29, [sp, #224]",
            "ldr x30, [sp, #240]",
            "add sp, sp, #256",
            "eret",
            frame = in(reg) frame as *const Frame,
            options(noreturn),
        );
    }
}

/// One guarded access; `Execute` branches with link, so a target that does not fault
/// and returns comes back with the probe reporting success.
pub fn probe(va: u64, access: Access) -> Result<u64, ProbeFault> {
    let (kind, value) = access.encode();
    let ok: u64;
    let out: u64;
    // SAFETY: the slot is armed before the one access and cleared on both paths; an
    // exception resumes at label 2 with every register as at the faulting instruction.
    // The access is the one the shell asked for. Asm because the recovery label must
    // be the address right after the one faulting instruction, with the registers the
    // handler restores; no crate (aarch64-cpu included) expresses a guarded access.
    unsafe {
        asm!(
            "adr {tmp}, 2f",
            "str {tmp}, [{slot}]",
            "mov {ok}, #0",
            "cmp {kind}, #1",
            "b.eq 4f",
            "b.hi 5f",
            "ldr {val}, [{va}]",
            "b 6f",
            "4:",
            "str {val}, [{va}]",
            "b 6f",
            "5:",
            "blr {va}",
            "6:",
            "mov {ok}, #1",
            "2:",
            "str xzr, [{slot}]",
            tmp = out(reg) _,
            slot = in(reg) RECOVERY.as_ptr(),
            kind = in(reg) kind,
            va = in(reg) va,
            val = inout(reg) value => out,
            ok = out(reg) ok,
            out("x30") _,
        );
    }
    if ok == 1 {
        return Ok(out);
    }
    let [esr, far] = FAULT.each_ref().map(|a| a.load(Ordering::SeqCst));
    Err(ProbeFault {
        name: class_name(esr >> 26),
        code: esr,
        addr: far,
    })
}
