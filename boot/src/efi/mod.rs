//! The loader's flow under UEFI: config, kernel, requests, responses, memory map, page
//! tables, then the jump. Every failure before `ExitBootServices` is reported on the
//! serial console and returns to the firmware.

#[cfg(target_arch = "aarch64")]
mod aarch64;
mod arena;
mod load;
mod responses;
#[cfg(target_arch = "x86_64")]
mod x86_64;

#[cfg(target_arch = "aarch64")]
use aarch64 as arch;
#[cfg(target_arch = "aarch64")]
use aarch64::run;
#[cfg(target_arch = "x86_64")]
use x86_64 as arch;

use alloc::format;
use alloc::string::String;
#[cfg(target_arch = "x86_64")]
use core::fmt::Write;

#[cfg(target_arch = "x86_64")]
use boot::memmap::Builder;
#[cfg(target_arch = "x86_64")]
use boot::paging::x86_64::{Mapper, X86Format};
#[cfg(target_arch = "x86_64")]
use boot::paging::{self, Perm};
#[cfg(target_arch = "x86_64")]
use boot::protocol::{HHDM_X86_64_4LEVEL, MemmapEntry};
#[cfg(target_arch = "x86_64")]
use boot::revision::Revision;
#[cfg(target_arch = "x86_64")]
use uefi::boot as bs;
#[cfg(target_arch = "x86_64")]
use uefi::mem::memory_map::MemoryMap;
use uefi::{Status, entry};

/// Capacity of the Limine memory map (Limine uses the same).
#[cfg(target_arch = "x86_64")]
const MAX_MEMMAP: usize = 1024;
/// Frames reserved for the page tables of the hand-off (8 MiB).
#[cfg(target_arch = "x86_64")]
const TABLE_FRAMES: usize = 2048;

/// Prints a line on the loader console (serial), before and after ExitBootServices.
macro_rules! say {
    ($($arg:tt)*) => {{
        let _ = core::fmt::Write::write_fmt(&mut $crate::efi::arch::Serial, format_args!("{}\n", format_args!($($arg)*)));
    }};
}
pub(crate) use say;

#[entry]
fn main() -> Status {
    arch::Serial::init();
    say!(
        "{} {}: Limine protocol, base revisions {}-{}",
        boot::LOADER_NAME,
        boot::LOADER_VERSION,
        boot::revision::MIN,
        boot::revision::MAX
    );
    match run() {
        Ok(never) => match never {},
        Err(e) => {
            say!("hotmem-boot: error: {e}");
            say!("@@EXIT status=1");
            arch::fail_exit();
            Status::LOAD_ERROR
        }
    }
}

/// Loads and enters the kernel; returns only with an error.
#[cfg(target_arch = "x86_64")]
fn run() -> Result<core::convert::Infallible, String> {
    let mut kernel = load::load()?;
    let rev = kernel.revision.used;
    let cpu = arch::features();
    say!(
        "hotmem-boot: cpu 1gib-pages={} nx={}",
        u8::from(cpu.gib_pages),
        u8::from(cpu.nx)
    );
    let acpi =
        arch::rsdp().map(|rsdp| boot::acpi::walk(rsdp, &mut |pa, buf| arch::read_phys(pa, buf)));
    if let Some(t) = &acpi {
        say!(
            "hotmem-boot: acpi tables={} ioapics={} iommu={}",
            t.len,
            t.ioapic_count,
            u8::from(t.iommu)
        );
    }
    let mut arena = arena::Arena::new(16)?;
    let stack = arena::Arena::new(kernel.stack_size.div_ceil(4096) as usize)?;
    let mut frames = arena::Frames::new(TABLE_FRAMES)?;
    let memmap_buf = arena::Arena::new((MAX_MEMMAP * (24 + 8)).div_ceil(4096))?;
    let plan = responses::fill(&mut kernel, &mut arena, HHDM_X86_64_4LEVEL)?;
    let gdt = arch::build_gdt(&mut arena);
    arch::check_entry_cpu()?;
    say!(
        "hotmem-boot: entering {} at {:#x} (base revision {}{}), stack {} KiB",
        kernel.path,
        kernel.entry,
        rev.0,
        if kernel.revision.supported {
            ""
        } else {
            ", requested revision unsupported"
        },
        kernel.stack_size / 1024
    );
    // SAFETY: nothing borrowed from boot services is used after this point: the
    // arenas, the kernel block and the file buffer are LoaderData/kernel pages that
    // stay valid, and no protocol handles are held.
    let efi_map = unsafe { bs::exit_boot_services(None) };
    let (entries, ptrs) = memmap_buf.split_memmap(MAX_MEMMAP);
    let mut b = Builder::new(entries);
    for d in efi_map.entries() {
        if b.push_efi(d.ty.0, d.phys_start, d.page_count, rev).is_err() {
            fatal("memory map overflow");
        }
    }
    b.normalize();
    if let Some(t) = acpi.as_ref().filter(|_| rev.acpi_tables_mapped()) {
        for &(s, e) in t.ranges() {
            if b.ensure_mapped(s, e, rev).is_err() {
                fatal("memory map overflow");
            }
        }
    }
    let map = b.entries();
    responses::memmap(&plan, &mut arena, map, ptrs, HHDM_X86_64_4LEVEL);
    let cr3 = build_tables(&mut frames, &kernel, map, rev, cpu);
    say!(
        "hotmem-boot: memmap entries={} page-table frames={}",
        map.len(),
        frames.used()
    );
    arch::quiesce(rev, acpi.as_ref());
    arch::enter(&arch::Handoff {
        cr3: cr3.0,
        identity_slot: cr3.1,
        hhdm: HHDM_X86_64_4LEVEL,
        entry: kernel.entry,
        stack_top: HHDM_X86_64_4LEVEL + stack.end(),
        gdtr: gdt,
        strict: u64::from(rev.strict_x86_state()),
        nx: u64::from(cpu.nx),
    })
}

/// Builds the hand-off address space; returns (CR3, physical address of the PML4 slot
/// holding the temporary identity map of the trampoline).
#[cfg(target_arch = "x86_64")]
fn build_tables(
    frames: &mut arena::Frames,
    kernel: &load::Kernel,
    map: &[MemmapEntry],
    rev: Revision,
    cpu: arch::Features,
) -> (u64, u64) {
    let format = X86Format {
        gib_pages: cpu.gib_pages,
        nx: cpu.nx,
    };
    let mut m = Mapper::new(frames, format).unwrap_or_else(|_| fatal("no page-table frames"));
    let mut ranges = [(0u64, 0u64); MAX_MEMMAP + 1];
    let n =
        paging::hhdm_ranges(map, rev, &mut ranges).unwrap_or_else(|| fatal("too many HHDM ranges"));
    for &(s, e) in &ranges[..n] {
        check(m.map(HHDM_X86_64_4LEVEL + s, s, e - s, Perm::RWX), "HHDM");
    }
    for seg in &kernel.image.segments {
        let v = seg.vaddr & !0xfff;
        let end = (seg.vaddr + seg.memsz).next_multiple_of(4096);
        let perm = Perm {
            write: seg.flags & boot::elf::PF_W != 0,
            exec: seg.flags & boot::elf::PF_X != 0,
        };
        check(
            m.map(v, kernel.phys + (v - kernel.vbase), end - v, perm),
            "kernel",
        );
    }
    let tramp = arch::trampoline_page();
    check(m.map(tramp, tramp, 2 * 4096, Perm::RWX), "trampoline");
    let slot = m.root() + 8 * paging::index(tramp, 3) as u64;
    (m.root(), slot)
}

#[cfg(target_arch = "x86_64")]
fn check(r: Result<(), paging::MapError>, what: &str) {
    if let Err(e) = r {
        let mut s = String::new();
        let _ = write!(s, "mapping {what}: {e:?}");
        fatal(&s);
    }
}

/// After ExitBootServices there is no way back: report and stop the machine.
pub(crate) fn fatal(msg: &str) -> ! {
    say!("hotmem-boot: fatal: {msg}");
    say!("@@EXIT status=1");
    arch::fail_exit();
    arch::halt()
}

/// Formats an error for `run`.
pub(crate) fn err(what: &str, e: impl core::fmt::Debug) -> String {
    format!("{what}: {e:?}")
}
