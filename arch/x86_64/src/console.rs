//! COM1 (I/O port 0x3f8) through `uart_16550`: the kernel console, output and input.

use spin::Mutex;
use uart_16550::backend::PioBackend;
use uart_16550::{Config, Uart16550};

static COM1: Mutex<Option<Uart16550<PioBackend>>> = Mutex::new(None);

/// Programs COM1 (115200 8N1, FIFO on, no interrupts).
pub fn init() {
    // SAFETY: 0x3f8..0x400 is COM1 on PC-compatible machines (QEMU q35 included) and
    // only this module touches it.
    let Ok(mut uart) = (unsafe { Uart16550::new_port(0x3f8) }) else {
        return;
    };
    if uart.init(Config::default()).is_ok() {
        *COM1.lock() = Some(uart);
    }
}

/// Writes all of `bytes` (blocking).
pub fn write(bytes: &[u8]) {
    if let Some(uart) = COM1.lock().as_mut() {
        uart.send_bytes_exact(bytes);
    }
}

/// The next received byte, if any.
pub fn read() -> Option<u8> {
    COM1.lock().as_mut()?.try_receive_byte().ok()
}
