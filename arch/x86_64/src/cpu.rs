//! CPU identification through CPUID: the features the memory code cares about (PSE,
//! 1 GiB pages, NX, LA57, invariant TSC, hypervisor) and the `cpu` shell report.

use core::arch::x86_64::__cpuid;
use core::fmt;

use kernel::mm::pgtable::Features as PtFeatures;

/// The CPU features the kernel reports and uses.
#[derive(Clone, Copy, Debug)]
pub struct Features {
    /// 2 MiB/4 MiB pages (CPUID 1 EDX.3).
    pub pse: bool,
    /// Global pages (CPUID 1 EDX.13): CR4.PGE can be set.
    pub pge: bool,
    /// 1 GiB pages (CPUID 0x80000001 EDX.26).
    pub pdpe1gb: bool,
    /// No-execute (CPUID 0x80000001 EDX.20).
    pub nx: bool,
    /// 5-level paging supported (CPUID 7 ECX.16).
    pub la57: bool,
    /// Invariant TSC (CPUID 0x80000007 EDX.8).
    pub invariant_tsc: bool,
    /// Physical address bits (CPUID 0x80000008 EAX[7:0]).
    pub phys_bits: u8,
    /// Linear address bits (CPUID 0x80000008 EAX[15:8]).
    pub virt_bits: u8,
    /// Running under a hypervisor (CPUID 1 ECX.31, Linux's X86_FEATURE_HYPERVISOR).
    pub hypervisor: bool,
}

/// Reads the features.
pub fn features() -> Features {
    let max = __cpuid(0).eax;
    let ext = __cpuid(0x8000_0000).eax;
    let leaf = |l: u32, ok: bool| if ok { Some(__cpuid(l)) } else { None };
    let l1 = __cpuid(1);
    let l7 = leaf(7, max >= 7);
    let e1 = leaf(0x8000_0001, ext >= 0x8000_0001);
    let e7 = leaf(0x8000_0007, ext >= 0x8000_0007);
    let e8 = leaf(0x8000_0008, ext >= 0x8000_0008);
    Features {
        pse: l1.edx & (1 << 3) != 0,
        pge: l1.edx & (1 << 13) != 0,
        pdpe1gb: e1.is_some_and(|r| r.edx & (1 << 26) != 0),
        nx: e1.is_some_and(|r| r.edx & (1 << 20) != 0),
        la57: l7.is_some_and(|r| r.ecx & (1 << 16) != 0),
        invariant_tsc: e7.is_some_and(|r| r.edx & (1 << 8) != 0),
        phys_bits: e8.map_or(36, |r| r.eax as u8),
        virt_bits: e8.map_or(48, |r| (r.eax >> 8) as u8),
        hypervisor: l1.ecx & (1 << 31) != 0,
    }
}

impl Features {
    /// The page-table format's view of these features.
    pub fn page_table(self) -> PtFeatures {
        let mut f = PtFeatures::empty();
        f.set(PtFeatures::PSE, self.pse);
        f.set(PtFeatures::PDPE1GB, self.pdpe1gb);
        f.set(PtFeatures::NO_EXECUTE, self.nx);
        f
    }
}

/// Vendor string and brand string.
fn vendor() -> [u8; 12] {
    let r = __cpuid(0);
    let mut v = [0u8; 12];
    v[..4].copy_from_slice(&r.ebx.to_le_bytes());
    v[4..8].copy_from_slice(&r.edx.to_le_bytes());
    v[8..].copy_from_slice(&r.ecx.to_le_bytes());
    v
}

/// The `cpu` report: stable `key=value` lines.
pub fn report(out: &mut dyn fmt::Write) -> fmt::Result {
    let f = features();
    let v = vendor();
    let l1 = __cpuid(1).eax;
    let family = ((l1 >> 8) & 0xf)
        + if (l1 >> 8) & 0xf == 0xf {
            (l1 >> 20) & 0xff
        } else {
            0
        };
    let model = ((l1 >> 4) & 0xf) | (((l1 >> 16) & 0xf) << 4);
    writeln!(
        out,
        "cpu vendor={} family={family:#x} model={model:#x} stepping={}",
        core::str::from_utf8(&v).unwrap_or("?"),
        l1 & 0xf
    )?;
    let flags = [
        ("pse", "PSE", f.pse),
        ("pge", "PGE", f.pge),
        ("pdpe1gb", "PDPE1GB", f.pdpe1gb),
        ("nx", "NX", f.nx),
        ("la57", "LA57", f.la57),
        ("invariant_tsc", "INVARIANT_TSC", f.invariant_tsc),
        ("hypervisor", "HYPERVISOR", f.hypervisor),
    ];
    write!(out, "cpu.features")?;
    for (name, _, on) in flags {
        write!(out, " {name}={}", u8::from(on))?;
    }
    writeln!(out)?;
    write!(out, "cpu.flags")?;
    for (_, upper, on) in flags {
        if on {
            write!(out, " {upper}")?;
        }
    }
    writeln!(out)?;
    writeln!(
        out,
        "cpu.addr phys_bits={} virt_bits={} paging=4level",
        f.phys_bits, f.virt_bits
    )?;
    writeln!(
        out,
        "cpu.tsc hz={} source={}",
        crate::clock::hz(),
        crate::clock::source()
    )
}
