//! CPU facts and primitives: STFLE facility bits, the CPU id, the TOD clock, DIAG
//! 0x500 STORAGE_LIMIT (guarded), and the disabled-wait stop.

use core::arch::asm;
use core::sync::atomic::{AtomicU64, Ordering};

use kernel::probe::{Access, ProbeFault};

use crate::facility::Facilities;
use crate::lowcore;

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
            slot = in(reg_addr) lowcore::recovery_slot(),
            ok = out(reg_addr) ok,
            out("r1") _,
            out("r2") limit,
            out("r3") _,
            out("r4") _,
        );
    }
    (ok == 1).then_some(limit)
}

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
            slot = in(reg_addr) lowcore::recovery_slot(),
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
    let (code, teid) = lowcore::last_program_check();
    Err(ProbeFault {
        name: lowcore::program_check_name(code),
        code: u64::from(code),
        addr: teid & !0xfff,
    })
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
