//! System registers and the `cpu` report: exception level, MIDR, the memory model
//! (PARange, supported granules and their block sizes, VHE), the translation registers
//! in use and the generic timer.

use core::arch::asm;
use core::fmt;

use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{
    CurrentEL, ID_AA64MMFR0_EL1, ID_AA64MMFR1_EL1, MAIR_EL1, MIDR_EL1, Readable, SCTLR_EL1,
    TCR_EL1, TTBR1_EL1,
};

/// The exception level the kernel runs at (1, or 2 with VHE).
pub fn current_el() -> u64 {
    CurrentEL.read(CurrentEL::EL)
}

/// Invalidates every EL1 TLB entry of this VMID (inner shareable) once earlier
/// table writes are visible, and waits until the invalidation is complete.
pub fn flush_tlb_all() {
    barrier::dsb(barrier::ISHST);
    // SAFETY: TLBI VMALLE1 only drops cached translations; it accesses no memory.
    // aarch64-cpu has no TLB maintenance instructions, so this one stays asm.
    unsafe { asm!("tlbi vmalle1", options(nostack, preserves_flags)) };
    barrier::dsb(barrier::ISH);
    barrier::isb(barrier::SY);
}

/// Physical address bits from ID_AA64MMFR0_EL1.PARange.
pub fn pa_bits() -> u32 {
    pa_bits_of(ID_AA64MMFR0_EL1.get() & 0xf)
}

/// PARange encoding to bits.
pub const fn pa_bits_of(parange: u64) -> u32 {
    match parange {
        0 => 32,
        1 => 36,
        2 => 40,
        3 => 42,
        4 => 44,
        5 => 48,
        6 => 52,
        _ => 56,
    }
}

/// One translation granule: whether the CPU supports it and its block sizes.
struct Granule {
    name: &'static str,
    supported: bool,
    lpa2: bool,
    blocks: &'static str,
}

fn granules(mmfr0: u64) -> [Granule; 3] {
    let field = |shift: u32| (mmfr0 >> shift) & 0xf;
    [
        Granule {
            name: "4k",
            supported: field(28) != 0xf,
            lpa2: field(28) == 1,
            blocks: "2M,1G",
        },
        Granule {
            name: "16k",
            supported: field(20) != 0,
            lpa2: field(20) == 2,
            blocks: "32M",
        },
        Granule {
            name: "64k",
            supported: field(24) != 0xf,
            lpa2: false,
            blocks: "512M",
        },
    ]
}

/// The `cpu` report: stable `key=value` lines.
pub fn report(out: &mut dyn fmt::Write) -> fmt::Result {
    let midr = MIDR_EL1.get();
    writeln!(
        out,
        "cpu midr={midr:#x} implementer={:#x} part={:#x} variant={} revision={}",
        (midr >> 24) & 0xff,
        (midr >> 4) & 0xfff,
        (midr >> 20) & 0xf,
        midr & 0xf
    )?;
    let mmfr0 = ID_AA64MMFR0_EL1.get();
    let mmfr1 = ID_AA64MMFR1_EL1.get();
    writeln!(
        out,
        "cpu.el current_el=EL{} vhe={}",
        current_el(),
        u8::from((mmfr1 >> 8) & 0xf != 0)
    )?;
    write!(
        out,
        "cpu.mmu parange={} pa_bits={} asid_bits={}",
        mmfr0 & 0xf,
        pa_bits(),
        if (mmfr0 >> 4) & 0xf == 2 { 16 } else { 8 }
    )?;
    for g in granules(mmfr0) {
        write!(out, " tgran{}={}", g.name, u8::from(g.supported))?;
        if g.supported {
            write!(out, " blocks.{}={}", g.name, g.blocks)?;
        }
        if g.lpa2 {
            write!(out, " lpa2.{}=1", g.name)?;
        }
    }
    writeln!(out)?;
    writeln!(
        out,
        "cpu.paging format={} ttbr1={:#x} tcr={:#x} mair={:#x} sctlr={:#x} table_frames={}",
        <crate::paging::Aarch64Paging as kernel::mm::pgtable::PageTableFormat>::NAME,
        TTBR1_EL1.get(),
        TCR_EL1.get(),
        MAIR_EL1.get(),
        SCTLR_EL1.get(),
        crate::kpt::frames_used()
    )?;
    writeln!(
        out,
        "cpu.timer freq_hz={} counter=cntvct",
        crate::clock::frequency()
    )
}
