//! The lowcore fields the interrupt path reads, the program-check recovery slot, and
//! the Rust half of every fatal interrupt: report the class, code and old PSW, then fail
//! the run. The new PSWs themselves are stored by `entry.S` before any Rust runs.

use core::sync::atomic::AtomicU64;

use kernel::{console, kprintln};

/// Program interruption: instruction-length code (halfword).
const PGM_ILC: usize = 0x8c;
/// Program interruption code (halfword).
const PGM_CODE: usize = 0x8e;
/// Translation-exception identification (doubleword).
const TEID: usize = 0xa8;
/// Old PSWs: restart, external, SVC, program, machine check, I/O (16 bytes each).
const OLD_PSWS: [usize; 6] = [0x120, 0x130, 0x140, 0x150, 0x160, 0x170];
/// Where the stubs store r0-r15 of the interrupted context.
const SAVED_GPRS: usize = 0x200;

const CLASS_NAMES: [&str; 6] = [
    "restart",
    "external",
    "svc",
    "program-check",
    "machine-check",
    "io",
];

/// Address to resume at after the next program check, or 0 (see `entry.S`).
#[unsafe(no_mangle)]
static s390x_pgm_recovery: AtomicU64 = AtomicU64::new(0);

/// The recovery slot's address, for asm that arms it around a probing instruction.
pub fn recovery_slot() -> *const AtomicU64 {
    &raw const s390x_pgm_recovery
}

/// The code and translation-exception identification of the last program check
/// (what a recovered probe reports).
pub fn last_program_check() -> (u16, u64) {
    (read(PGM_CODE), read(TEID))
}

/// A short name for a program-interruption code (the low 8 bits; PER adds 0x80).
pub fn program_check_name(code: u16) -> &'static str {
    match code & 0x7f {
        0x04 => "protection",
        0x05 => "addressing",
        0x06 => "specification",
        0x10 => "segment-translation",
        0x11 => "page-translation",
        0x12 => "translation-specification",
        0x38 => "asce-type",
        0x39 => "region-first-translation",
        0x3a => "region-second-translation",
        0x3b => "region-third-translation",
        _ => "program-check",
    }
}

/// Reads a big-endian field of the lowcore at absolute address `offset`.
fn read<T: Copy>(offset: usize) -> T {
    // SAFETY: the prefix register is 0, so the lowcore is at absolute 0..0x2000, which
    // is always mapped (DAT off, or an identity map that includes it) and readable.
    unsafe { core::ptr::read_volatile(offset as *const T) }
}

/// Called by the stubs in `entry.S` with the interrupt class; never returns.
#[unsafe(no_mangle)]
extern "C" fn s390x_fatal_interrupt(class: u64) -> ! {
    let class = class as usize % CLASS_NAMES.len();
    let psw = OLD_PSWS[class];
    let (mask, addr): (u64, u64) = (read(psw), read(psw + 8));
    if class == 3 {
        let code: u16 = read(PGM_CODE);
        let ilc: u16 = read(PGM_ILC);
        let teid: u64 = read(TEID);
        kprintln!(
            "\nexception: program-check code={code:#06x} ilc={} psw={mask:#018x}:{addr:#018x} teid={teid:#x}",
            (ilc >> 1) & 0x3
        );
        if matches!(code & 0x7f, 0x04 | 0x10 | 0x11 | 0x38..=0x3b) {
            let name = program_check_name(code);
            kernel::probe::report_vmemmap_fault(&crate::vmemmap::MM, name, teid & !0xfff);
        }
    } else {
        kprintln!(
            "\nexception: unexpected {} interrupt psw={mask:#018x}:{addr:#018x}",
            CLASS_NAMES[class]
        );
    }
    let r14: u64 = read(SAVED_GPRS + 14 * 8);
    let r15: u64 = read(SAVED_GPRS + 15 * 8);
    kprintln!("exception: r14={r14:#x} r15={r15:#x}");
    console::exit(2)
}
