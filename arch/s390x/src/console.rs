//! The SCLP ASCII console: output by Write Event Data, input by polling Read Event Data
//! into a small FIFO, both over [`crate::sclp`]'s service call.

use crate::sccb::{self, SCCB_SIZE};
use crate::sclp::{IN, OUT, with_sccb};

/// Input bytes received but not yet read.
static PENDING: spin::Mutex<InputQueue> = spin::Mutex::new(InputQueue::new());

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
