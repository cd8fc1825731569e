//! Guarded accesses (`kernel::probe`) on x86_64: one recovery slot that the #PF and #GP
//! handlers check before reporting. Armed, they record the vector, error code and CR2
//! and resume at the slot's address with every register as it was at the fault.

use core::arch::asm;
use core::sync::atomic::{AtomicU64, Ordering};

use kernel::probe::{Access, ProbeFault};
use x86_64::VirtAddr;
use x86_64::structures::idt::InterruptStackFrame;

/// Where to resume after the next #PF or #GP, or 0.
static RECOVERY: AtomicU64 = AtomicU64::new(0);
/// What the recovered fault reported: vector, error code, CR2.
static FAULT: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];

/// Called first by the #PF and #GP handlers: when a probe is armed, records the fault,
/// redirects the return to the recovery address and returns true.
pub fn recover(frame: &mut InterruptStackFrame, vector: u64, code: u64, addr: u64) -> bool {
    let resume = RECOVERY.swap(0, Ordering::SeqCst);
    if resume == 0 {
        return false;
    }
    for (slot, value) in FAULT.iter().zip([vector, code, addr]) {
        slot.store(value, Ordering::SeqCst);
    }
    // SAFETY: the interrupted code is the probe's asm, which armed `resume` as a label
    // of its own that expects exactly the registers and stack of the faulting
    // instruction (no access in the probe moves RSP).
    unsafe {
        frame
            .as_mut()
            .update(|f| f.instruction_pointer = VirtAddr::new(resume));
    }
    true
}

/// One guarded access; `Execute` is a plain `jmp`, so a target that does not fault is
/// never returned from.
pub fn probe(va: u64, access: Access) -> Result<u64, ProbeFault> {
    let (kind, value) = access.encode();
    let ok: u64;
    let out: u64;
    // SAFETY: the slot is armed before the one access and cleared on both paths; a
    // #PF or #GP resumes at label 2 with every register as at the faulting
    // instruction. The access is the one the shell asked for.
    unsafe {
        asm!(
            "lea {tmp}, [rip + 2f]",
            "mov [{slot}], {tmp}",
            "xor {ok:e}, {ok:e}",
            "cmp {kind}, 1",
            "je 4f",
            "ja 5f",
            "mov {val}, [{va}]",
            "jmp 6f",
            "4:",
            "mov [{va}], {val}",
            "jmp 6f",
            "5:",
            "jmp {va}",
            "6:",
            "mov {ok:e}, 1",
            "2:",
            "mov qword ptr [{slot}], 0",
            tmp = out(reg) _,
            slot = in(reg) RECOVERY.as_ptr(),
            kind = in(reg) kind,
            va = in(reg) va,
            val = inout(reg) value => out,
            ok = out(reg) ok,
        );
    }
    if ok == 1 {
        return Ok(out);
    }
    let [vector, code, addr] = FAULT.each_ref().map(|a| a.load(Ordering::SeqCst));
    Err(ProbeFault {
        name: if vector == 14 { "#PF" } else { "#GP" },
        code,
        addr,
    })
}
