//! The first Rust code on the PVH path ([`crate::direct_entry`] set up a stack and a
//! temporary identity map): console, descriptor tables and clock as after a Limine boot,
//! then `hvm_start_info` (memory map, RSDP, command line) into the same [`BootInfo`] the
//! Limine path fills, our own page tables, and the kernel.
//!
//! The HHDM sits at Limine's default offset and covers the same memory a Limine base
//! revision 4+ HHDM covers: RAM, ACPI reclaimable and NVS, and every ACPI table (the
//! walk of `boot::acpi`, the loader's own), so the kernel's ACPI, NFIT, SRAT and SCI code
//! reads the firmware exactly as after a Limine boot.

use kernel::boot_info::{Firmware, MemKind};
use kernel::{BootInfo, console, kprintln};
use spin::Once;

use crate::direct_entry::{KERNEL_PHYS, KERNEL_VIRT};
use crate::start_info::{self, StartInfo};
use crate::{X86_64, clock, cpu, kpt, port};

/// The HHDM offset of this path: Limine's default for 4-level paging.
pub const HHDM: u64 = 0xffff_8000_0000_0000;
/// The trampoline identity-maps `[0, IDENTITY_END)`.
const IDENTITY_END: u64 = 4 << 30;
/// Longest command line kept (QEMU's PVH option ROM passes at most 4 KiB too).
const CMDLINE_MAX: usize = 4096;

/// `loader=` of the `boot: ready` record on this path.
pub const LOADER: &str = "pvh";

/// Called by the trampoline on the boot stack with the start info's physical address.
#[unsafe(no_mangle)]
extern "C" fn x86_64_pvh_main(start_info_pa: u64) -> ! {
    let entry_ticks = crate::boot::start_cpu();
    let (start, end) = kpt::image_span();
    let kernel_image = (
        KERNEL_PHYS + (start - KERNEL_VIRT),
        KERNEL_PHYS + (end - KERNEL_VIRT),
    );
    let info = StartInfo::read(start_info_pa, &mut read_phys).unwrap_or_else(|e| fatal(e));
    let memory = info
        .memory_map(kernel_image, &mut read_phys)
        .unwrap_or_else(|e| fatal(e));
    let (rsdp, rsdp_source) = match info.rsdp_paddr {
        0 => (start_info::find_rsdp(&mut read_phys), "scan"),
        pa => (Some(pa), "start-info"),
    };
    let tables = rsdp.map(|pa| {
        boot::acpi::walk(pa, &mut |at, buf| {
            if !read_phys(at, buf) {
                buf.fill(0);
            }
        })
    });
    let cmdline = copy_cmdline(&info);
    let acpi = tables.as_ref().map_or(&[][..], |t| t.ranges());
    kprintln!(
        "pvh: start_info={start_info_pa:#x} version={} memmap_entries={} rsdp={:#x} rsdp.source={} acpi_tables={} cmdline_bytes={} kernel={:#x}-{:#x}",
        info.version,
        info.memmap_entries,
        rsdp.unwrap_or(0),
        if rsdp.is_some() { rsdp_source } else { "none" },
        acpi.len(),
        cmdline.len(),
        kernel_image.0,
        kernel_image.1
    );
    port::set_hhdm(HHDM);
    let features = cpu::features();
    let mut ranges = memory
        .regions()
        .iter()
        .filter(|r| hhdm_maps(r.kind))
        .map(|r| (r.start, r.end))
        .chain(acpi.iter().copied());
    let placement = kpt::Placement {
        hhdm: HHDM,
        exec: Some((KERNEL_PHYS, KERNEL_VIRT)),
        ranges: &mut ranges,
    };
    kpt::switch(placement, features);
    let boot = BootInfo {
        memory,
        max_phys_addr: Some((1u64 << features.phys_bits) - 1),
        hotplug: None,
        cmdline,
        firmware: rsdp.map_or(Firmware::None, |rsdp| Firmware::Acpi { rsdp }),
        kernel_image,
        loader: LOADER,
        entry_ns: clock::to_ns(entry_ticks),
    };
    kernel::main::<X86_64>(boot)
}

/// What the HHDM maps of the memory map (as a Limine base revision 4+ HHDM does).
fn hhdm_maps(kind: MemKind) -> bool {
    matches!(
        kind,
        MemKind::Usable
            | MemKind::Kernel
            | MemKind::AcpiReclaimable
            | MemKind::AcpiNvs
            | MemKind::LoaderReclaimable
    )
}

/// Reads physical memory through the trampoline's identity map; `false` outside it.
fn read_phys(pa: u64, buf: &mut [u8]) -> bool {
    let Some(end) = pa.checked_add(buf.len() as u64) else {
        return false;
    };
    if pa == 0 || end > IDENTITY_END {
        return false;
    }
    // SAFETY: until `kpt::switch` loads the kernel's tables (after the last call), the
    // trampoline's tables map [0, 4 GiB) onto itself, and [pa, end) lies inside that and
    // does not start at null. The addresses come from the start info and the ACPI
    // tables, i.e. RAM and firmware memory, where reading has no side effects.
    unsafe { core::ptr::copy_nonoverlapping(pa as *const u8, buf.as_mut_ptr(), buf.len()) };
    true
}

/// The command line, copied out of the option ROM's memory (which the HHDM does not
/// map) into a static buffer.
fn copy_cmdline(info: &StartInfo) -> &'static str {
    struct Cmdline {
        buf: [u8; CMDLINE_MAX],
        len: usize,
    }
    static COPY: Once<Cmdline> = Once::new();
    let c = COPY.call_once(|| {
        let mut c = Cmdline {
            buf: [0; CMDLINE_MAX],
            len: 0,
        };
        c.len = info.cmdline(&mut c.buf, &mut read_phys).len();
        c
    });
    core::str::from_utf8(&c.buf[..c.len]).map_or("", str::trim)
}

fn fatal(e: start_info::StartInfoError) -> ! {
    kprintln!("pvh: fatal: {e}");
    console::exit(1)
}
