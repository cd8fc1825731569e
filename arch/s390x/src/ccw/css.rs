//! Channel-subsystem instructions and one subchannel driven synchronously: STSCH, MSCH,
//! SSCH, TSCH, TPI, and DIAG 0x500 subcode 3 (virtio-ccw queue notification).
//!
//! Completion is polled with interrupts masked. TCG does not dequeue the floating I/O
//! interruption on TSCH (s390x.md §5.2), so ISC 3 is enabled in CR6 and every pending
//! interruption is taken with `TPI` before its subchannel's TSCH: no stale interrupts
//! pile up for the day the I/O mask opens.

use core::arch::asm;
use core::cell::RefCell;

use kernel::dma::DmaPages;

use super::layout::{self, IRB_LEN, ORB_LEN, SCHIB_LEN, Scsw};

/// Polls of TPI/TSCH before a channel program counts as lost.
const MAX_POLLS: u32 = 10_000_000;

/// Lowcore: the subsystem-id word TPI stores (operand address 0).
const LC_SUBCHANNEL_ID: usize = 0xb8;

/// Why a channel program did not complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoError {
    /// SSCH condition code 2 or 3 (busy, not operational).
    Start(u32),
    /// Ended with unexpected status (e.g. unit check: command rejected).
    Status(Scsw),
    /// No status within the poll budget.
    Timeout,
    /// The data does not fit the subchannel's buffer.
    TooLong,
}

/// STSCH: the SCHIB of `schid`, or `None` (cc 3) when no such subchannel exists.
pub fn stsch(schid: u32) -> Option<[u8; SCHIB_LEN]> {
    let mut schib = [0u8; SCHIB_LEN];
    let cc: u32;
    // SAFETY: STSCH (b234) stores a 52-byte SCHIB at the operand address; r1 holds the
    // subchannel id. Nothing else is touched but the condition code.
    unsafe {
        asm!(
            ".insn s,0xb2340000,0({schib})",
            "ipm {cc}",
            "srl {cc},28",
            schib = in(reg_addr) schib.as_mut_ptr(),
            cc = lateout(reg) cc,
            in("r1") u64::from(schid),
            options(nostack),
        );
    }
    (cc == 0).then_some(schib)
}

/// MSCH: installs `schib`; returns the condition code (0 = done).
pub fn msch(schid: u32, schib: &[u8; SCHIB_LEN]) -> u32 {
    let cc: u32;
    // SAFETY: MSCH (b232) only reads the 52-byte SCHIB operand; r1 is the subchannel id.
    unsafe {
        asm!(
            ".insn s,0xb2320000,0({schib})",
            "ipm {cc}",
            "srl {cc},28",
            schib = in(reg_addr) schib.as_ptr(),
            cc = lateout(reg) cc,
            in("r1") u64::from(schid),
            options(nostack),
        );
    }
    cc
}

/// SSCH with the ORB `orb` (below 2 GiB); returns the condition code.
fn ssch(schid: u32, orb: &[u8]) -> u32 {
    assert!(orb.len() >= ORB_LEN);
    let cc: u32;
    // SAFETY: SSCH (b233) reads the 32-byte ORB; the channel program it names and its
    // data live in the subchannel's DMA page, which the caller holds borrowed.
    unsafe {
        asm!(
            ".insn s,0xb2330000,0({orb})",
            "ipm {cc}",
            "srl {cc},28",
            orb = in(reg_addr) orb.as_ptr(),
            cc = lateout(reg) cc,
            in("r1") u64::from(schid),
            options(nostack),
        );
    }
    cc
}

/// TSCH: stores the IRB and clears pending status; returns the condition code
/// (0 = status was pending, 1 = none, 3 = not operational).
fn tsch(schid: u32, irb: &mut [u8]) -> u32 {
    assert!(irb.len() >= IRB_LEN);
    let cc: u32;
    // SAFETY: TSCH (b235) stores at most 32 words at the operand, which points to an
    // IRB_LEN-byte buffer.
    unsafe {
        asm!(
            ".insn s,0xb2350000,0({irb})",
            "ipm {cc}",
            "srl {cc},28",
            irb = in(reg_addr) irb.as_mut_ptr(),
            cc = lateout(reg) cc,
            in("r1") u64::from(schid),
            options(nostack),
        );
    }
    cc
}

/// TPI with operand 0: takes one pending I/O interruption of an enabled ISC and returns
/// its subsystem-id word (stored in the lowcore), or `None` when none is pending.
fn tpi() -> Option<u32> {
    let cc: u32;
    // SAFETY: TPI (b236) with address 0 stores the interruption code into lowcore
    // 0xb8..0xc4, which is reserved for exactly that.
    unsafe {
        asm!(
            ".insn s,0xb2360000,0",
            "ipm {cc}",
            "srl {cc},28",
            cc = lateout(reg) cc,
            options(nostack),
        );
    }
    if cc != 1 {
        return None;
    }
    // SAFETY: the lowcore is mapped at absolute 0 (prefix 0, identity DAT), and TPI just
    // wrote the word.
    Some(unsafe { core::ptr::read_volatile(LC_SUBCHANNEL_ID as *const u32) })
}

/// Enables I/O interruption subclass `isc` in CR6, so TPI sees its interruptions (the
/// PSW's I/O mask stays closed: nothing is ever delivered).
pub fn enable_isc(isc: u16) {
    let mut cr6 = 0u64;
    // SAFETY: STCTG/LCTLG of CR6 only change which I/O subclasses are enabled.
    unsafe {
        asm!(
            "stctg %c6, %c6, 0({p})",
            p = in(reg_addr) &raw mut cr6,
            options(nostack),
        );
    }
    cr6 |= 0x8000_0000u64 >> isc;
    // SAFETY: as above.
    unsafe {
        asm!(
            "lctlg %c6, %c6, 0({p})",
            p = in(reg_addr) &raw const cr6,
            options(nostack),
        );
    }
}

/// DIAG 0x500 subcode 3: notifies virtqueue `queue` of the device on `schid`; returns
/// QEMU's result (0 or a small non-negative cookie on success, negative on error).
pub fn virtio_notify(schid: u32, queue: u16) -> i64 {
    let rc: i64;
    // SAFETY: the hypercall reads r1-r4 and writes r2; it touches no guest memory.
    unsafe {
        asm!(
            "diag %r2, %r4, 0x500",
            in("r1") 3u64,
            inout("r2") u64::from(schid) => rc,
            in("r3") u64::from(queue),
            in("r4") 0u64,
            options(nostack),
        );
    }
    rc
}

/// Page layout of a subchannel's DMA page: CCW, ORB, IRB, then data.
const CCW_AT: usize = 0;
const ORB_AT: usize = 64;
const IRB_AT: usize = 128;
const DATA_AT: usize = 512;

/// One enabled subchannel and the page (below 2 GiB) its channel programs use.
pub struct Subchannel {
    id: u32,
    page: RefCell<DmaPages>,
}

impl Subchannel {
    /// Enables subchannel `id` on ISC 3 (MSCH) and claims a DMA page for it.
    pub fn enable(id: u32) -> Option<Self> {
        let mut schib = stsch(id)?;
        layout::set_enabled(&mut schib, true, id);
        if msch(id, &schib) != 0 || !layout::Pmcw::decode(&stsch(id)?).enabled() {
            log::warn!("ccw: subchannel {id:#x}: MSCH did not enable it");
            return None;
        }
        let page = DmaPages::new(1)?;
        if page.phys() + page.len() as u64 > 1 << 31 {
            log::error!("ccw: DMA page {:#x} is above 2 GiB", page.phys());
            return None;
        }
        Some(Subchannel {
            id,
            page: RefCell::new(page),
        })
    }

    /// Disables the subchannel again (a device we do not drive).
    pub fn disable(self) {
        if let Some(mut schib) = stsch(self.id) {
            layout::set_enabled(&mut schib, false, 0);
            msch(self.id, &schib);
        }
    }

    /// The subchannel-id word.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Runs one CCW `cmd` whose data area starts as `data` and is `count` bytes long
    /// (`count >= data.len()`); after completion the data area is copied into `back`.
    /// Returns the bytes transferred (`count` minus the residual).
    pub fn run(
        &self,
        cmd: u8,
        flags: u8,
        data: &[u8],
        count: usize,
        back: &mut [u8],
    ) -> Result<usize, IoError> {
        let mut page = self.page.borrow_mut();
        let phys = page.phys();
        let bytes = page.bytes_mut();
        if count > bytes.len() - DATA_AT || data.len() > count || back.len() > count {
            return Err(IoError::TooLong);
        }
        bytes[DATA_AT..DATA_AT + count].fill(0);
        bytes[DATA_AT..DATA_AT + data.len()].copy_from_slice(data);
        let data_addr = (phys + DATA_AT as u64) as u32;
        let ccw = layout::ccw1(cmd, flags, count as u16, data_addr);
        bytes[CCW_AT..CCW_AT + 8].copy_from_slice(&ccw);
        let orb = layout::orb(self.id, (phys + CCW_AT as u64) as u32);
        bytes[ORB_AT..ORB_AT + ORB_LEN].copy_from_slice(&orb);
        let scsw = self.start_and_wait(bytes)?;
        if !scsw.done_ok() {
            return Err(IoError::Status(scsw));
        }
        back.copy_from_slice(&bytes[DATA_AT..DATA_AT + back.len()]);
        Ok(count.saturating_sub(usize::from(scsw.residual)))
    }

    /// SSCH (clearing stale pending status first), then waits for this subchannel's
    /// final status.
    fn start_and_wait(&self, bytes: &mut [u8]) -> Result<Scsw, IoError> {
        let mut cc = ssch(self.id, &bytes[ORB_AT..ORB_AT + ORB_LEN]);
        for _ in 0..4 {
            if cc != 1 {
                break;
            }
            // Status pending (e.g. a config-change alert): take it and retry.
            drain_interruptions();
            tsch(self.id, &mut bytes[IRB_AT..IRB_AT + IRB_LEN]);
            cc = ssch(self.id, &bytes[ORB_AT..ORB_AT + ORB_LEN]);
        }
        if cc != 0 {
            return Err(IoError::Start(cc));
        }
        for _ in 0..MAX_POLLS {
            drain_interruptions();
            if tsch(self.id, &mut bytes[IRB_AT..IRB_AT + IRB_LEN]) == 0 {
                let scsw = Scsw::decode(&bytes[IRB_AT..IRB_AT + IRB_LEN]);
                if scsw.alert_only() {
                    continue; // an unsolicited alert, not our program's end
                }
                return Ok(scsw);
            }
            core::hint::spin_loop();
        }
        Err(IoError::Timeout)
    }
}

/// Takes every pending I/O interruption (TPI), so the floating interruptions TCG leaves
/// behind never accumulate. Their status stays at the subchannel for its TSCH.
fn drain_interruptions() {
    for _ in 0..64 {
        if tpi().is_none() {
            return;
        }
    }
}
