//! The x86_64 side of the loader (BOOTX64.EFI under OVMF): serial console, CPU
//! features, the GDT the kernel is entered with, the 4-level hand-off tables, platform
//! quiescing and the hand-off trampoline — and [`run`], the flow step by step.

mod fwcfg;
mod handoff;
mod io;
mod platform;

pub use fwcfg::cmdline_override;
pub use io::Serial;

use alloc::string::String;
use core::arch::x86_64::__cpuid;
use core::convert::Infallible;

use boot::elf::EM_X86_64;
use boot::paging::x86_64::X86Format;
use boot::paging::{self, Perm};
use boot::protocol::{HHDM_X86_64_4LEVEL as HHDM, MemmapEntry};
use boot::revision::Revision;

use self::handoff::{Handoff, enter, trampoline_page};
use super::arena::{Arena, Frames};
use super::load::Kernel;
use super::steps::{self, Buffers};
use super::{responses, say};

/// `e_machine` of the kernels this loader boots.
pub const ELF_MACHINE: u16 = EM_X86_64;

/// What the CPU offers for the hand-off tables.
#[derive(Clone, Copy, Debug)]
pub struct Features {
    /// 1 GiB pages (CPUID 0x80000001 EDX bit 26).
    pub gib_pages: bool,
    /// No-execute (CPUID 0x80000001 EDX bit 20).
    pub nx: bool,
}

/// Reads the CPU features that shape the page tables.
fn features() -> Features {
    let max = __cpuid(0x8000_0000).eax;
    let edx = if max >= 0x8000_0001 {
        __cpuid(0x8000_0001).edx
    } else {
        0
    };
    Features {
        gib_pages: edx & (1 << 26) != 0,
        nx: edx & (1 << 20) != 0,
    }
}

/// Loads and enters the kernel; returns only with an error.
pub fn run() -> Result<Infallible, String> {
    let mut kernel = super::load::load()?;
    let rev = kernel.revision.used;
    let cpu = features();
    say!(
        "hotmem-boot: cpu 1gib-pages={} nx={}",
        u8::from(cpu.gib_pages),
        u8::from(cpu.nx)
    );
    let acpi = steps::acpi_tables();
    if let Some(t) = &acpi {
        say!(
            "hotmem-boot: acpi tables={} ioapics={} iommu={}",
            t.len,
            t.ioapic_count,
            u8::from(t.iommu)
        );
    }
    let mut buf = Buffers::new(&kernel)?;
    let plan = responses::fill(&mut kernel, &mut buf.arena, HHDM)?;
    let gdt = build_gdt(&mut buf.arena);
    check_entry_cpu()?;
    steps::say_entering(&kernel, "");
    let (map, ptrs) = steps::exit_boot_services(&buf.memmap, rev, acpi.as_ref());
    responses::memmap(&plan, &mut buf.arena, map, ptrs, HHDM);
    let (cr3, identity_slot) = build_tables(&mut buf.frames, &kernel, map, rev, cpu);
    say!(
        "hotmem-boot: memmap entries={} page-table frames={}",
        map.len(),
        buf.frames.used()
    );
    platform::quiesce(rev, acpi.as_ref());
    enter(&Handoff {
        cr3,
        identity_slot,
        hhdm: HHDM,
        entry: kernel.entry,
        stack_top: HHDM + buf.stack.end(),
        gdtr: gdt,
        strict: u64::from(rev.strict_x86_state()),
        nx: u64::from(cpu.nx),
    })
}

/// Builds the hand-off address space; returns (CR3, physical address of the PML4 slot
/// holding the temporary identity map of the trampoline).
fn build_tables(
    frames: &mut Frames,
    kernel: &Kernel,
    map: &[MemmapEntry],
    rev: Revision,
    cpu: Features,
) -> (u64, u64) {
    let format = X86Format {
        gib_pages: cpu.gib_pages,
        nx: cpu.nx,
    };
    let mut m = steps::new_mapper(frames, format);
    steps::map_hhdm_and_kernel(&mut m, HHDM, kernel, map, rev);
    let tramp = trampoline_page();
    steps::check(m.map(tramp, tramp, 2 * 4096, Perm::RWX), "trampoline");
    let slot = m.root() + 8 * paging::index(tramp, 3) as u64;
    (m.root(), slot)
}

/// Builds the protocol's GDT (null, 16/32/64-bit code and data; 64-bit code is 0x28,
/// data 0x30) in the arena; returns the physical address of a GDTR whose base is the
/// table's HHDM address.
fn build_gdt(a: &mut Arena) -> u64 {
    const GDT: [u64; 7] = [
        0,
        0x0000_9a00_0000_ffff, // 16-bit code
        0x0000_9200_0000_ffff, // 16-bit data
        0x00cf_9a00_0000_ffff, // 32-bit code
        0x00cf_9200_0000_ffff, // 32-bit data
        0x00af_9a00_0000_ffff, // 64-bit code
        0x00cf_9200_0000_ffff, // 64-bit data
    ];
    let table = a.put(GDT);
    a.put(Gdtr {
        limit: (core::mem::size_of_val(&GDT) - 1) as u16,
        base: HHDM + table,
    })
}

#[repr(C, packed)]
struct Gdtr {
    limit: u16,
    base: u64,
}

/// Refuses CPUs in a state the 4-level hand-off cannot handle.
fn check_entry_cpu() -> Result<(), String> {
    if io::cr4() & (1 << 12) != 0 {
        return Err(String::from(
            "firmware runs with 5-level paging (LA57); only 4-level is implemented",
        ));
    }
    Ok(())
}

/// Tells QEMU's isa-debug-exit that the boot failed (status 1), if the device exists.
pub fn fail_exit() {
    io::outl(0xf4, 0x11);
}

/// Stops this CPU.
pub fn halt() -> ! {
    loop {
        io::hlt();
    }
}
