//! Guarded accesses (`kernel::probe`) on s390x: one recovery slot the program-check
//! stub checks first ([`crate::exceptions::recovery_slot`]). Armed, the stub restores
//! the registers saved at the fault and resumes at the probe's recovery label, and the
//! probe reports the program-interruption code and the failing page.

use core::arch::asm;

use kernel::probe::{Access, ProbeFault};

use crate::exceptions;

/// One guarded access (see `kernel::probe`): the program-check stub, finding the
/// recovery slot armed, restores the registers saved at the fault and resumes at label
/// 2, so `ok` tells whether the access completed. A non-faulting `Execute` branches to
/// `va` with the return address in r14.
pub fn probe(va: u64, access: Access) -> Result<u64, ProbeFault> {
    let (kind, value) = access.encode();
    let ok: u64;
    let out: u64;
    // SAFETY: the slot is armed before the one access and cleared on both paths; a
    // fault resumes at label 2 with every register as it was at the faulting
    // instruction (the stub reloads r0-r15 from the save area). The access itself is
    // what the caller asked for: the kernel shell's deliberate peek, poke or jump.
    unsafe {
        asm!(
            "larl {tmp}, 2f",
            "stg {tmp}, 0({slot})",
            "lghi {ok}, 0",
            "cgfi {kind}, 1",
            "je 4f",
            "jh 5f",
            "lg {val}, 0({va})",
            "j 6f",
            "4:",
            "stg {val}, 0({va})",
            "j 6f",
            "5:",
            "basr %r14, {va}",
            "6:",
            "lghi {ok}, 1",
            "2:",
            "mvghi 0({slot}), 0",
            tmp = out(reg_addr) _,
            slot = in(reg_addr) exceptions::recovery_slot(),
            kind = in(reg) kind,
            va = in(reg_addr) va,
            val = inout(reg) value => out,
            ok = out(reg) ok,
            out("r14") _,
        );
    }
    if ok == 1 {
        return Ok(out);
    }
    let (code, teid) = exceptions::last_program_check();
    Err(ProbeFault {
        name: exceptions::program_check_name(code),
        code: u64::from(code),
        addr: teid & !0xfff,
    })
}
