//! The TSC as the kernel clock: frequency from CPUID 0x15 (crystal ratio), else CPUID
//! 0x16 (base MHz), else a 10 ms calibration against PIT channel 2. Time counts from
//! TSC 0, i.e. roughly from machine reset.

use core::arch::x86_64::{__cpuid, _rdtsc};
use core::sync::atomic::{AtomicU64, Ordering};

use x86_64::instructions::port::Port;

static HZ: AtomicU64 = AtomicU64::new(0);
static SOURCE: spin::Once<&'static str> = spin::Once::new();

/// Raw TSC.
pub fn ticks() -> u64 {
    // SAFETY: RDTSC has no preconditions in ring 0.
    unsafe { _rdtsc() }
}

/// Determines the TSC frequency once.
pub fn calibrate() {
    SOURCE.call_once(|| {
        let (hz, source) = from_cpuid().unwrap_or_else(|| (pit_calibrate(), "tsc-pit"));
        HZ.store(hz.max(1), Ordering::Relaxed);
        source
    });
}

/// `tsc-cpuid15`, `tsc-cpuid16` or `tsc-pit`.
pub fn source() -> &'static str {
    SOURCE.get().copied().unwrap_or("tsc-uncalibrated")
}

/// The frequency in Hz (0 before [`calibrate`]).
pub fn hz() -> u64 {
    HZ.load(Ordering::Relaxed)
}

/// Nanoseconds for a TSC value.
pub fn to_ns(ticks: u64) -> u64 {
    let hz = hz();
    if hz == 0 {
        return 0;
    }
    (u128::from(ticks) * 1_000_000_000 / u128::from(hz)) as u64
}

fn from_cpuid() -> Option<(u64, &'static str)> {
    let max = __cpuid(0).eax;
    if max >= 0x15 {
        let l = __cpuid(0x15);
        if l.eax != 0 && l.ebx != 0 && l.ecx != 0 {
            return Some((
                u64::from(l.ecx) * u64::from(l.ebx) / u64::from(l.eax),
                "tsc-cpuid15",
            ));
        }
    }
    if max >= 0x16 {
        let mhz = __cpuid(0x16).eax & 0xffff;
        if mhz != 0 {
            return Some((u64::from(mhz) * 1_000_000, "tsc-cpuid16"));
        }
    }
    None
}

/// Counts TSC ticks while PIT channel 2 counts down 10 ms in mode 0.
fn pit_calibrate() -> u64 {
    const PIT_HZ: u64 = 1_193_182;
    const COUNT: u16 = (PIT_HZ / 100) as u16;
    let mut gate: Port<u8> = Port::new(0x61);
    let mut cmd: Port<u8> = Port::new(0x43);
    let mut ch2: Port<u8> = Port::new(0x42);
    // SAFETY: the PIT and port 0x61 are standard PC devices the kernel owns; channel 2
    // only drives the (gated-off) speaker.
    unsafe {
        let g = gate.read();
        gate.write((g & !0x02) | 0x01);
        cmd.write(0b1011_0000); // channel 2, lobyte/hibyte, mode 0, binary
        ch2.write(COUNT as u8);
        ch2.write((COUNT >> 8) as u8);
        let start = ticks();
        while gate.read() & 0x20 == 0 {
            core::hint::spin_loop();
        }
        let end = ticks();
        gate.write(g);
        (end - start) * 100
    }
}
