//! `kernel::Arch` for x86_64: the glue between the kernel and this port's primitives.

use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};

extern crate alloc;

use alloc::boxed::Box;
use alloc::vec::Vec;

use kernel::hotplug::event::EventSource;
use kernel::mm::addr::PhysAddr;
use kernel::mm::live::LiveConfig;
use kernel::mm::memory_block::MemoryBlock;
use kernel::probe::{Access, ProbeFault};
use kernel::{Arch, BootInfo};
use x86_64::instructions::port::Port;
use x86_64::registers::control::{Cr3, Cr4, Cr4Flags};

use crate::{clock, console, cpu};

/// The x86_64 architecture port.
pub struct X86_64;

/// QEMU `isa-debug-exit` I/O port (`-device isa-debug-exit,iobase=0xf4,iosize=0x04`).
const DEBUG_EXIT_PORT: u16 = 0xf4;

/// A canonical lower-half address nothing maps (the lower half is empty).
const UNMAPPED: u64 = 0x0000_4000_0000_0000;

static HHDM: AtomicU64 = AtomicU64::new(0);

/// Records the HHDM offset for [`Arch::phys_to_virt`].
pub(crate) fn set_hhdm(offset: u64) {
    HHDM.store(offset, Ordering::Relaxed);
}

/// The value written to isa-debug-exit for `status`: QEMU then exits with
/// `(value << 1) | 1`, i.e. 33 for status 0 and `33 + 2 * status` otherwise (capped),
/// never QEMU's own 0 or 1.
pub const fn debug_exit_value(status: u32) -> u32 {
    0x10 + if status > 0x6f { 0x6f } else { status }
}

/// Flushes every TLB entry, global ones included: vmemmap leaves are GLOBAL, and a CR3
/// reload keeps global entries once CR4.PGE is set. Clearing and setting PGE again
/// flushes them all (Intel SDM Vol. 3A §4.10.4.1), as Linux's `native_flush_tlb_global`
/// does without INVPCID; with PGE off a CR3 reload is a full flush.
fn flush_tlb_global() {
    let cr4 = Cr4::read();
    if cr4.contains(Cr4Flags::PAGE_GLOBAL) {
        // SAFETY: only the TLB's retention of global entries changes, for the instant
        // between the two writes; every mapping stays as it is.
        unsafe {
            Cr4::write(cr4 - Cr4Flags::PAGE_GLOBAL);
            Cr4::write(cr4);
        }
    } else {
        x86_64::instructions::tlb::flush_all();
    }
}

impl Arch for X86_64 {
    type PageTable = crate::paging::X86_64Paging;

    const NAME: &'static str = "x86_64";

    fn console_write(bytes: &[u8]) {
        console::write(bytes);
    }

    fn console_read() -> Option<u8> {
        console::read()
    }

    fn exit(status: u32) -> ! {
        let mut port: Port<u32> = Port::new(DEBUG_EXIT_PORT);
        // SAFETY: isa-debug-exit ends QEMU; on a machine without it the write to an
        // unused port is ignored and we halt below.
        unsafe { port.write(debug_exit_value(status)) };
        Self::halt()
    }

    fn halt() -> ! {
        loop {
            x86_64::instructions::interrupts::disable();
            x86_64::instructions::hlt();
        }
    }

    fn relax() {
        for _ in 0..64 {
            core::hint::spin_loop();
        }
    }

    fn timestamp_ns() -> u64 {
        clock::to_ns(clock::ticks())
    }

    fn clock_name() -> &'static str {
        clock::source()
    }

    fn phys_to_virt(pa: u64) -> *mut u8 {
        (HHDM.load(Ordering::Relaxed) + pa) as *mut u8
    }

    fn mm_config() -> LiveConfig {
        let (frame, _) = Cr3::read();
        LiveConfig {
            features: cpu::features().page_table(),
            root: PhysAddr(frame.start_address().as_u64()),
            phys_to_virt: <Self as Arch>::phys_to_virt,
            flush_tlb: flush_tlb_global,
            fill_pages: kernel::mm::memmap::fill_pages,
        }
    }

    fn memory_block(boot: &BootInfo) -> MemoryBlock {
        let end = crate::memory_block::boot_mem_end(&boot.memory);
        crate::memory_block::size(end, cpu::features().hypervisor)
    }

    fn hotplug_sources(boot: &BootInfo) -> Vec<Box<dyn EventSource>> {
        crate::hotplug::sources(boot)
    }

    fn hw_translate(_va: u64) -> Option<u64> {
        None // x86 has no instruction that reports a translation
    }

    fn provoke_fault() {
        // SAFETY: deliberately reads an unmapped address to take a #PF; the handler
        // reports it and ends the run, so the read never completes.
        unsafe { core::ptr::read_volatile(UNMAPPED as *const u64) };
    }

    fn probe(va: u64, access: Access) -> Result<u64, ProbeFault> {
        crate::probe::probe(va, access)
    }

    fn cpu_report(out: &mut dyn fmt::Write) -> fmt::Result {
        cpu::report(out)
    }
}
