//! The SCLP service call on two page-aligned SCCBs, and Read SCP Info for the RAM size.
//! The ASCII console on top of it is [`crate::console`].
//!
//! QEMU completes service calls synchronously and we never open the external-interrupt
//! mask, so the service-signal interrupt stays pending and polling is enough here.

use core::arch::asm;
use core::cell::UnsafeCell;

use crate::sccb::{self, SCCB_SIZE, ScpInfo};

/// One page-aligned SCCB. SCLP requires below 2 GiB, 8-byte aligned, outside the
/// lowcore and not crossing a page: a page-aligned static in the image satisfies all.
#[repr(C, align(4096))]
pub(crate) struct SccbPage(UnsafeCell<[u8; SCCB_SIZE]>);

// SAFETY: one CPU, and the console is not re-entered from interrupts (only the fatal
// path writes from handler context, and it never returns to the interrupted write).
unsafe impl Sync for SccbPage {}

/// The SCCB of requests that only send (console output, event masks).
pub(crate) static OUT: SccbPage = SccbPage(UnsafeCell::new([0; SCCB_SIZE]));
/// The SCCB of requests answered with data (console input, SCP information).
pub(crate) static IN: SccbPage = SccbPage(UnsafeCell::new([0; SCCB_SIZE]));

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
pub(crate) fn with_sccb<R>(
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
