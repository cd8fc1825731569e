//! The SCLP service call and the ASCII console on top of it: output by Write Event
//! Data, input by polling Read Event Data, and Read SCP Info for the RAM size.
//!
//! QEMU completes service calls synchronously and we never open the external-interrupt
//! mask, so the service-signal interrupt stays pending and polling is enough here.

use core::arch::asm;
use core::cell::UnsafeCell;

use crate::sccb::{self, SCCB_SIZE, ScpInfo};

/// One page-aligned SCCB. SCLP requires below 2 GiB, 8-byte aligned, outside the
/// lowcore and not crossing a page: a page-aligned static in the image satisfies all.
#[repr(C, align(4096))]
struct SccbPage(UnsafeCell<[u8; SCCB_SIZE]>);

// SAFETY: one CPU, and the console is not re-entered from interrupts (only the fatal
// path writes from handler context, and it never returns to the interrupted write).
unsafe impl Sync for SccbPage {}

static OUT: SccbPage = SccbPage(UnsafeCell::new([0; SCCB_SIZE]));
static IN: SccbPage = SccbPage(UnsafeCell::new([0; SCCB_SIZE]));

/// Input bytes received but not yet read.
static PENDING: spin::Mutex<InputQueue> = spin::Mutex::new(InputQueue::new());

/// Issues SERVC for `command` on `page` until it is accepted; returns the response code.
fn service_call(command: u32, page: &SccbPage) -> u16 {
    let addr = page.0.get() as u64;
    loop {
        let cc: u64;
        // SAFETY: `addr` is a whole, page-aligned SCCB below 2 GiB that the SCLP may
        // write; the asm touches nothing else but the condition code.
        unsafe {
            asm!(
                ".insn rre,0xb2200000,{cmd},{sccb}",
                "ipm {cc}",
                "srl {cc},28",
                cmd = in(reg_addr) u64::from(command),
                sccb = in(reg_addr) addr,
                cc = lateout(reg) cc,
                options(nostack),
            );
        }
        match cc {
            0 => break,
            2 => core::hint::spin_loop(), // busy: try again
            _ => return 0,                // not operational
        }
    }
    // SAFETY: the call completed; nothing else accesses the page right now.
    sccb::response(unsafe { &*page.0.get() })
}

/// Runs `fill`, then the service call, then `read` on the same SCCB.
fn with_sccb<R>(
    page: &SccbPage,
    command: u32,
    fill: impl FnOnce(&mut [u8; SCCB_SIZE]),
    read: impl FnOnce(&[u8; SCCB_SIZE]) -> R,
) -> R {
    // SAFETY: single CPU, no re-entry (see the `Sync` impl): this is the only borrow.
    fill(unsafe { &mut *page.0.get() });
    service_call(command, page);
    // SAFETY: as above; the SCLP finished writing before `service_call` returned.
    read(unsafe { &*page.0.get() })
}

/// Enables ASCII console input and output.
pub fn init() {
    let mask = |b: &mut [u8; SCCB_SIZE]| {
        sccb::build_event_mask(b, sccb::MASK_ASCII, sccb::MASK_ASCII | sccb::MASK_MSG);
    };
    with_sccb(&OUT, sccb::CMD_WRITE_EVENT_MASK, mask, |_| ());
}

/// Writes bytes to the ASCII console.
pub fn write(bytes: &[u8]) {
    for chunk in bytes.chunks(sccb::MAX_WRITE) {
        with_sccb(
            &OUT,
            sccb::CMD_WRITE_EVENT_DATA,
            |b| sccb::build_write(b, chunk),
            |_| (),
        );
    }
}

/// Returns one byte of console input, polling the SCLP when none is queued.
pub fn read() -> Option<u8> {
    let mut queue = PENDING.lock();
    if queue.is_empty() {
        with_sccb(&IN, sccb::CMD_READ_EVENT_DATA, sccb::build_read, |b| {
            if let Some(chars) = sccb::parse_read(b) {
                chars.iter().for_each(|&c| queue.push(c));
            }
        });
    }
    queue.pop()
}

/// Reads the SCP information (initial RAM, CPU count).
pub fn read_scp_info() -> Option<ScpInfo> {
    let fill = |b: &mut [u8; SCCB_SIZE]| {
        b.fill(0);
        b[..2].copy_from_slice(&(SCCB_SIZE as u16).to_be_bytes());
    };
    let forced = with_sccb(
        &IN,
        sccb::CMD_READ_SCP_INFO_FORCED,
        fill,
        sccb::parse_scp_info,
    );
    forced.or_else(|| with_sccb(&IN, sccb::CMD_READ_SCP_INFO, fill, sccb::parse_scp_info))
}

/// A small FIFO of input bytes (an event can carry a whole pasted line).
struct InputQueue {
    buf: [u8; 512],
    head: usize,
    len: usize,
}

impl InputQueue {
    const fn new() -> Self {
        Self {
            buf: [0; 512],
            head: 0,
            len: 0,
        }
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends a byte; when full, the byte is dropped (the line editor copes).
    fn push(&mut self, byte: u8) {
        if self.len < self.buf.len() {
            self.buf[(self.head + self.len) % self.buf.len()] = byte;
            self.len += 1;
        }
    }

    fn pop(&mut self) -> Option<u8> {
        if self.len == 0 {
            return None;
        }
        let byte = self.buf[self.head];
        self.head = (self.head + 1) % self.buf.len();
        self.len -= 1;
        Some(byte)
    }
}
