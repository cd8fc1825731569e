//! `kernel::Arch` for aarch64: the glue between the kernel and this port's primitives.

use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};

use alloc::boxed::Box;
use alloc::vec::Vec;

use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{PAR_EL1, Readable, TTBR1_EL1};
use kernel::hotplug::event::EventSource;
use kernel::mm::addr::PhysAddr;
use kernel::mm::live::LiveConfig;
use kernel::mm::memory_block::MemoryBlock;
use kernel::mm::pgtable::Features;
use kernel::probe::{Access, ProbeFault};
use kernel::{Arch, BootInfo};

use crate::{clock, console, cpu, power};

/// The aarch64 architecture port.
pub struct Aarch64;

/// A lower-half address: TTBR0 walks are disabled (TCR_EL1.EPD0), so it faults.
const UNMAPPED: u64 = 0x0000_0000_dead_0000;

static HHDM: AtomicU64 = AtomicU64::new(0);

/// Records the HHDM offset for [`Arch::phys_to_virt`].
pub(crate) fn set_hhdm(offset: u64) {
    HHDM.store(offset, Ordering::Relaxed);
}

/// The HHDM offset.
pub(crate) fn hhdm() -> u64 {
    HHDM.load(Ordering::Relaxed)
}

/// The HHDM address of physical `pa`.
pub(crate) fn phys_to_virt(pa: u64) -> *mut u8 {
    (hhdm() + pa) as *mut u8
}

impl Arch for Aarch64 {
    const NAME: &'static str = "aarch64";

    type PageTable = crate::paging::Aarch64Paging;

    fn console_write(bytes: &[u8]) {
        console::write(bytes);
    }

    fn console_read() -> Option<u8> {
        console::read()
    }

    fn exit(status: u32) -> ! {
        power::exit(status)
    }

    fn halt() -> ! {
        loop {
            aarch64_cpu::asm::wfe();
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
        "cntvct"
    }

    fn phys_to_virt(pa: u64) -> *mut u8 {
        (HHDM.load(Ordering::Relaxed) + pa) as *mut u8
    }

    fn mm_config() -> LiveConfig {
        let ttbr1 = TTBR1_EL1.get();
        LiveConfig {
            features: Features::NO_EXECUTE,
            // BADDR: bits 47:1 (the ASID and CnP bits are not part of the address).
            root: PhysAddr(ttbr1 & 0x0000_ffff_ffff_f000),
            phys_to_virt: <Self as Arch>::phys_to_virt,
            flush_tlb: cpu::flush_tlb_all,
            fill_pages: kernel::mm::memmap::fill_pages,
        }
    }

    fn memory_block(_boot: &BootInfo) -> MemoryBlock {
        crate::memory_block::size()
    }

    fn hotplug_sources(boot: &BootInfo) -> Vec<Box<dyn EventSource>> {
        crate::hotplug::sources(boot)
    }

    fn hw_translate(va: u64) -> Option<u64> {
        // SAFETY: AT S1E1R only performs a stage-1 EL1 read translation and writes
        // PAR_EL1; it accesses no memory. aarch64-cpu has no address-translation
        // instructions, so this one stays asm.
        unsafe { core::arch::asm!("at s1e1r, {va}", va = in(reg) va, options(nostack, nomem)) };
        // The ISB makes the translation's result visible to the PAR_EL1 read.
        barrier::isb(barrier::SY);
        let par = PAR_EL1.get();
        // PAR_EL1.F (bit 0) set: the translation aborted. PA is bits 47:12.
        (par & 1 == 0).then_some((par & 0x0000_ffff_ffff_f000) | (va & 0xfff))
    }

    fn provoke_fault() {
        // SAFETY: deliberately reads an unmapped address to take a data abort; the
        // vectors report it and end the run, so the read never completes.
        unsafe { core::ptr::read_volatile(UNMAPPED as *const u64) };
    }

    fn probe(va: u64, access: Access) -> Result<u64, ProbeFault> {
        crate::probe::probe(va, access)
    }

    fn cpu_report(out: &mut dyn fmt::Write) -> fmt::Result {
        cpu::report(out)
    }
}
