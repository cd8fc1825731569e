//! `kernel::Arch` for s390x: the glue between the kernel and this port's primitives.

use core::fmt;

extern crate alloc;

use alloc::boxed::Box;
use alloc::vec::Vec;

use kernel::hotplug::event::EventSource;
use kernel::mm::addr::PhysAddr;
use kernel::mm::live::LiveConfig;
use kernel::mm::memory_block::MemoryBlock;
use kernel::probe::{Access, ProbeFault};
use kernel::{Arch, BootInfo};
use spin::Once;

use crate::cpu;
use crate::facility::{self, Facilities};
use crate::kpt::{self, DatInfo};

/// The s390x architecture port.
pub struct S390x;

static FACILITIES: Once<Facilities> = Once::new();
static DAT: Once<DatInfo> = Once::new();
static INCREMENT: Once<u64> = Once::new();

/// Reads STFLE once, early in boot.
pub(crate) fn init_facilities() -> Facilities {
    *FACILITIES.call_once(cpu::facilities)
}

/// Remembers the boot identity map for the `cpu` report.
pub(crate) fn record_dat(info: DatInfo) {
    DAT.call_once(|| info);
}

/// Remembers the storage increment (`sclp.rzm`) Read SCP Info reported.
pub(crate) fn record_increment(bytes: u64) {
    INCREMENT.call_once(|| bytes);
}

/// The facility list read at boot.
pub fn facilities() -> Facilities {
    *FACILITIES.call_once(cpu::facilities)
}

impl Arch for S390x {
    type PageTable = crate::paging::S390xPaging;

    const NAME: &'static str = "s390x";

    fn console_write(bytes: &[u8]) {
        crate::console::write(bytes);
    }

    fn console_read() -> Option<u8> {
        crate::console::read()
    }

    fn exit(status: u32) -> ! {
        cpu::disabled_wait(if status == 0 {
            0xfff
        } else {
            0x1_0000 | u64::from(status)
        })
    }

    fn halt() -> ! {
        loop {
            core::hint::spin_loop();
        }
    }

    fn relax() {
        // Console input is polled; 1 ms between polls is quick to type at and idle.
        crate::clock::sleep_us(1000);
    }

    fn timestamp_ns() -> u64 {
        crate::clock::now_ns()
    }

    fn clock_name() -> &'static str {
        "stckf"
    }

    fn phys_to_virt(pa: u64) -> *mut u8 {
        // Identity: DAT is either off or an identity map of RAM.
        pa as *mut u8
    }

    fn mm_config() -> LiveConfig {
        let features = crate::boot::dat_features(&facilities());
        let root = DAT.get().map_or(0, |d| d.asce & !0xfff);
        LiveConfig {
            features,
            root: PhysAddr(root),
            phys_to_virt: |pa| pa as *mut u8,
            flush_tlb: cpu::purge_tlb,
            fill_pages: crate::memfill::fill_pages,
        }
    }

    fn memory_block(_boot: &BootInfo) -> MemoryBlock {
        crate::memory_block::size(INCREMENT.get().copied().unwrap_or(0))
    }

    fn hotplug_sources(boot: &BootInfo) -> Vec<Box<dyn EventSource>> {
        crate::hotplug::sources(boot)
    }

    fn hw_translate(va: u64) -> Option<u64> {
        kpt::translate(va)
    }

    fn provoke_fault() {
        cpu::provoke_fault();
    }

    fn probe(va: u64, access: Access) -> Result<u64, ProbeFault> {
        crate::probe::probe(va, access)
    }

    fn cpu_report(out: &mut dyn fmt::Write) -> fmt::Result {
        let f = facilities();
        let w = f.words();
        writeln!(out, "cpu.id {:#018x}", cpu::cpu_id())?;
        writeln!(
            out,
            "facility edat1={} edat2={} stckf={} idte={} iep={}",
            u8::from(f.has(facility::EDAT1)),
            u8::from(f.has(facility::EDAT2)),
            u8::from(f.has(facility::STCKF)),
            u8::from(f.has(facility::IDTE)),
            u8::from(f.has(facility::IEP)),
        )?;
        writeln!(
            out,
            "facility.stfle dw0={:#018x} dw1={:#018x} dw2={:#018x}",
            w[0], w[1], w[2]
        )?;
        let Some(d) = DAT.get() else {
            return writeln!(out, "dat on=0");
        };
        // Probe the translation of the kernel's entry page through the live tables.
        let probe = kpt::translate(0x10000).map_or(-1, |real| real as i64);
        writeln!(
            out,
            "dat on=1 asce={:#x} tables={} leaves.4k={} leaves.1m={} tables.bytes={} probe.0x10000={probe:#x}",
            d.asce,
            d.stats.tables + 1,
            d.stats.leaves[4],
            d.stats.leaves[3],
            d.tables_end - d.tables_start,
        )
    }
}
