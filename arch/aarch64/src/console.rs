//! The PL011 UART as the kernel console, polled. Firmware has programmed baud rate and
//! format; [`init`] only makes sure the UART, transmitter and receiver are enabled.

use core::sync::atomic::{AtomicU64, Ordering};

const DR: u64 = 0x00;
const FR: u64 = 0x18;
const CR: u64 = 0x30;
const IMSC: u64 = 0x38;
const FR_TXFF: u32 = 1 << 5;
const FR_RXFE: u32 = 1 << 4;
const CR_UARTEN_TXE_RXE: u32 = (1 << 0) | (1 << 8) | (1 << 9);

/// Virtual address of the registers (0: no console yet).
static BASE: AtomicU64 = AtomicU64::new(0);

/// Uses the PL011 whose registers are mapped (device memory) at `va`.
pub fn init(va: u64) {
    BASE.store(va, Ordering::Relaxed);
    write_reg(IMSC, 0);
    let cr = read_reg(CR);
    if cr & CR_UARTEN_TXE_RXE != CR_UARTEN_TXE_RXE {
        write_reg(CR, cr | CR_UARTEN_TXE_RXE);
    }
}

/// Writes all of `bytes` (blocking).
pub fn write(bytes: &[u8]) {
    if BASE.load(Ordering::Relaxed) == 0 {
        return;
    }
    for &b in bytes {
        while read_reg(FR) & FR_TXFF != 0 {
            core::hint::spin_loop();
        }
        write_reg(DR, u32::from(b));
    }
}

/// The next received byte, if any.
pub fn read() -> Option<u8> {
    if BASE.load(Ordering::Relaxed) == 0 || read_reg(FR) & FR_RXFE != 0 {
        return None;
    }
    Some(read_reg(DR) as u8)
}

fn read_reg(off: u64) -> u32 {
    let p = (BASE.load(Ordering::Relaxed) + off) as *const u32;
    // SAFETY: `BASE` is the device mapping of a PL011 set by `init`; registers are
    // 32-bit and aligned.
    unsafe { p.read_volatile() }
}

fn write_reg(off: u64, v: u32) {
    let p = (BASE.load(Ordering::Relaxed) + off) as *mut u32;
    // SAFETY: as for `read_reg`.
    unsafe { p.write_volatile(v) }
}
