//! The common exception handler: every exception but a guarded probe's
//! ([`crate::probe`]) is fatal. It prints one record,
//! `exception: vector=.. kind=.. class=.. esr=.. elr=.. far=.. spsr=..`, and ends the run
//! with status 2 through the kernel's exit protocol.

use aarch64_cpu::registers::{ELR_EL1, ESR_EL1, FAR_EL1, Readable, SPSR_EL1};

use crate::power;

/// Exit status of a run that took an unexpected exception.
pub const FAULT_STATUS: u32 = 2;

/// x0-x30 as the vector saved them.
#[repr(C)]
pub struct Frame {
    /// General-purpose registers x0-x30.
    pub x: [u64; 31],
}

const KINDS: [&str; 4] = ["sync", "irq", "fiq", "serror"];
const ORIGINS: [&str; 4] = ["el1-sp0", "el1-spx", "lower-a64", "lower-a32"];

/// Called by every vector with its index and the saved registers.
#[unsafe(no_mangle)]
extern "C" fn aarch64_exception(vector: u64, frame: &Frame) -> ! {
    if power::exiting() {
        // The semihosting trap of `power::exit` faulted: no semihosting here.
        power::system_off();
    }
    let esr = ESR_EL1.get();
    let v = (vector & 15) as usize;
    if v.is_multiple_of(4) {
        crate::probe::recover(frame, esr, FAR_EL1.get());
    }
    kernel::kprintln!(
        "exception: vector={v} kind={} from={} class={} ec={:#x} esr={esr:#x} elr={:#x} far={:#x} spsr={:#x} lr={:#x}",
        KINDS[v % 4],
        ORIGINS[v / 4],
        class_name(esr >> 26),
        esr >> 26,
        ELR_EL1.get(),
        FAR_EL1.get(),
        SPSR_EL1.get(),
        frame.x[30],
    );
    if matches!(esr >> 26, 0x20 | 0x21 | 0x24 | 0x25) {
        let (arch, name) = (&crate::vmemmap::MM, class_name(esr >> 26));
        kernel::probe::report_vmemmap_fault(arch, name, FAR_EL1.get());
    }
    kernel::console::exit(FAULT_STATUS)
}

/// A short name for the exception class (ESR_EL1.EC).
pub fn class_name(ec: u64) -> &'static str {
    match ec {
        0x00 => "unknown",
        0x01 => "wfi-wfe",
        0x07 => "fp-simd-access",
        0x0e => "illegal-state",
        0x15 => "svc",
        0x16 => "hvc",
        0x17 => "smc",
        0x18 => "sysreg",
        0x20 => "instruction-abort-lower",
        0x21 => "instruction-abort",
        0x22 => "pc-alignment",
        0x24 => "data-abort-lower",
        0x25 => "data-abort",
        0x26 => "sp-alignment",
        0x2f => "serror",
        0x3c => "brk",
        _ => "other",
    }
}
