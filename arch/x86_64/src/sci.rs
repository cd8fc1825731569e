//! The ACPI SCI and the GPE0 block (qemu-hotplug.md §1.3): QEMU raises GPE0 status bit 3
//! for the memory-hotplug controller and bit 4 for NVDIMM hot-add, and asserts the SCI
//! (IRQ 9, level, active-high through the MADT override) while `STS & EN` is non-zero.
//!
//! Interrupt mode: the handler only latches the enabled status bits, clears them (so the
//! level drops) and sends the EOI; the sources consume their bit from the shell loop.
//! Polling fallback (no MADT/IO-APIC, or `hotplug.notify=poll`): the sources read and
//! clear the status bits themselves; without a GPE0 block they scan their registers.

use core::fmt;
use core::sync::atomic::{AtomicU8, AtomicU16, AtomicU64, Ordering};

use kernel::firmware::apic::ApicInfo;
use kernel::firmware::fadt::FadtInfo;
use x86_64::instructions::port::Port;
use x86_64::structures::idt::InterruptStackFrame;

use crate::apic;

/// The CPU vector of the SCI.
pub const SCI_VECTOR: u8 = 0x30;
/// GPE0 bit of the ACPI memory-hotplug controller.
pub const GPE_MEMORY: u8 = 1 << 3;
/// GPE0 bit of NVDIMM hot-add.
pub const GPE_NVDIMM: u8 = 1 << 4;

/// How hotplug events reach the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notify {
    /// The SCI interrupt latches GPE0 bits.
    Sci,
    /// The shell loop polls the GPE0 status bits.
    GpePoll,
    /// No GPE0 block: the shell loop polls the device registers.
    RegPoll,
}

impl Notify {
    fn name(self) -> &'static str {
        match self {
            Notify::Sci => "sci",
            Notify::GpePoll => "gpe-poll",
            Notify::RegPoll => "register-poll",
        }
    }
}

const MODE_UNSET: u8 = 0xff;
static MODE: AtomicU8 = AtomicU8::new(MODE_UNSET);
static STS_PORT: AtomicU16 = AtomicU16::new(0);
static EN_PORT: AtomicU16 = AtomicU16::new(0);
static LATCHED: AtomicU8 = AtomicU8::new(0);
static INTERRUPTS: AtomicU64 = AtomicU64::new(0);
static IRQ: AtomicU16 = AtomicU16::new(0);
static GSI: AtomicU16 = AtomicU16::new(0);

/// The delivery mode chosen by [`init`].
pub fn mode() -> Notify {
    match MODE.load(Ordering::Relaxed) {
        0 => Notify::Sci,
        1 => Notify::GpePoll,
        _ => Notify::RegPoll,
    }
}

fn inb(port: u16) -> u8 {
    // SAFETY: `port` is a byte of the FADT's GPE0 block; reading it has no side effect.
    unsafe { Port::<u8>::new(port).read() }
}

fn outb(port: u16, value: u8) {
    // SAFETY: `port` is a byte of the GPE0 block: status bytes are write-1-to-clear,
    // enable bytes plain read/write.
    unsafe { Port::<u8>::new(port).write(value) }
}

/// Sets up event delivery once for the GPE bits in `mask` (later calls return the mode
/// chosen first): the SCI through the I/O APIC unless `force_poll` or the tables lack
/// what it needs.
pub fn init(fadt: &FadtInfo, madt: Option<&ApicInfo>, mask: u8, force_poll: bool) -> Notify {
    if MODE.load(Ordering::Relaxed) != MODE_UNSET {
        return mode();
    }
    let (Some((sts, _)), Some((en, _))) = (fadt.gpe0_status(0), fadt.gpe0_enable(0)) else {
        MODE.store(2, Ordering::Relaxed);
        log::warn!("sci: no GPE0 block in the FADT: hotplug sources poll their registers");
        return Notify::RegPoll;
    };
    STS_PORT.store(sts, Ordering::Relaxed);
    EN_PORT.store(en, Ordering::Relaxed);
    // Stale status from before the kernel ran: the first scans cover it.
    outb(sts, mask);
    let routed = if force_poll {
        Err("forced by hotplug.notify=poll")
    } else {
        madt.ok_or("no MADT").and_then(|m| route(fadt.sci_int, m))
    };
    match routed {
        Ok(()) => {
            MODE.store(0, Ordering::Relaxed);
            outb(en, inb(en) | mask);
            x86_64::instructions::interrupts::enable();
            Notify::Sci
        }
        Err(why) => {
            MODE.store(1, Ordering::Relaxed);
            outb(en, inb(en) & !mask);
            log::warn!("sci: not using the interrupt ({why}): polling GPE0 status");
            Notify::GpePoll
        }
    }
}

fn route(irq: u16, madt: &ApicInfo) -> Result<(), &'static str> {
    let irq8 = u8::try_from(irq).map_err(|_| "sci-not-isa")?;
    let r = madt.route(irq8);
    let ioapic = madt.ioapic_for(r.gsi).ok_or("no-ioapic")?;
    let dest = apic::init_local(madt.lapic).ok_or("lapic-unmapped")?;
    apic::route(apic::Redirect {
        ioapic: (ioapic.address, ioapic.gsi_base),
        gsi: r.gsi,
        vector: SCI_VECTOR,
        level: r.level,
        active_low: r.active_low,
        dest,
    })?;
    IRQ.store(irq, Ordering::Relaxed);
    GSI.store(r.gsi as u16, Ordering::Relaxed);
    log::info!(
        "sci: irq={irq} gsi={} level={} active_low={} vector={SCI_VECTOR:#x} apic={} dest={dest}",
        r.gsi,
        u8::from(r.level),
        u8::from(r.active_low),
        apic::mode()
    );
    Ok(())
}

/// Whether any GPE bit of `mask` fired since the last call (and forgets it). In the
/// register-poll mode there is nothing to ask, so always `true`.
pub fn take(mask: u8) -> bool {
    match mode() {
        Notify::Sci => LATCHED.fetch_and(!mask, Ordering::AcqRel) & mask != 0,
        Notify::GpePoll => {
            let port = STS_PORT.load(Ordering::Relaxed);
            let hit = inb(port) & mask;
            if hit != 0 {
                outb(port, hit);
            }
            hit != 0
        }
        Notify::RegPoll => true,
    }
}

/// `notify=sci irq=9 gsi=9 vector=0x30 gpe0=0x620 interrupts=N` (or the polling mode).
pub fn describe(out: &mut dyn fmt::Write) -> fmt::Result {
    let m = mode();
    write!(out, "notify={}", m.name())?;
    if m == Notify::Sci {
        write!(
            out,
            " irq={} gsi={} vector={SCI_VECTOR:#x} interrupts={}",
            IRQ.load(Ordering::Relaxed),
            GSI.load(Ordering::Relaxed),
            INTERRUPTS.load(Ordering::Relaxed)
        )?;
    }
    if m != Notify::RegPoll {
        write!(out, " gpe0={:#x}", STS_PORT.load(Ordering::Relaxed))?;
    }
    Ok(())
}

/// The SCI handler: latch and clear the enabled GPE0 status bits, then EOI.
pub extern "x86-interrupt" fn interrupt(_frame: InterruptStackFrame) {
    let (sts, en) = (
        STS_PORT.load(Ordering::Relaxed),
        EN_PORT.load(Ordering::Relaxed),
    );
    if sts != 0 {
        let hit = inb(sts) & inb(en);
        if hit != 0 {
            outb(sts, hit);
            LATCHED.fetch_or(hit, Ordering::AcqRel);
        }
    }
    INTERRUPTS.fetch_add(1, Ordering::Relaxed);
    apic::eoi();
}

/// Spurious local-APIC interrupts need no EOI.
pub extern "x86-interrupt" fn spurious(_frame: InterruptStackFrame) {}
