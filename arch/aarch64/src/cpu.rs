//! System registers and the `cpu` report: exception level, MIDR, the memory model
//! (PARange, supported granules and their block sizes, VHE), the translation registers
//! in use and the generic timer.

use core::fmt;

/// Reads a system register by name, e.g. `sysreg!("currentel")`.
macro_rules! sysreg {
    ($name:literal) => {{
        let v: u64;
        // SAFETY: reading an EL1-accessible system register has no side effects.
        unsafe {
            core::arch::asm!(concat!("mrs {}, ", $name), out(reg) v, options(nomem, nostack, preserves_flags))
        };
        v
    }};
}
pub(crate) use sysreg;

/// The exception level the kernel runs at (1, or 2 with VHE).
pub fn current_el() -> u64 {
    (sysreg!("currentel") >> 2) & 3
}

/// Physical address bits from ID_AA64MMFR0_EL1.PARange.
pub fn pa_bits() -> u32 {
    pa_bits_of(sysreg!("id_aa64mmfr0_el1") & 0xf)
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
    let midr = sysreg!("midr_el1");
    writeln!(
        out,
        "cpu midr={midr:#x} implementer={:#x} part={:#x} variant={} revision={}",
        (midr >> 24) & 0xff,
        (midr >> 4) & 0xfff,
        (midr >> 20) & 0xf,
        midr & 0xf
    )?;
    let mmfr0 = sysreg!("id_aa64mmfr0_el1");
    let mmfr1 = sysreg!("id_aa64mmfr1_el1");
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
        sysreg!("ttbr1_el1"),
        sysreg!("tcr_el1"),
        sysreg!("mair_el1"),
        sysreg!("sctlr_el1"),
        crate::kpt::frames_used()
    )?;
    writeln!(
        out,
        "cpu.timer freq_hz={} counter=cntvct",
        crate::timer::frequency()
    )
}
