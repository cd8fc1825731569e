//! The first Rust code at the link address on the direct path
//! ([`crate::direct_entry`] turned the MMU on with temporary tables): the device tree
//! (read through the temporary identity map) gives the RAM, the console PL011 and the
//! PSCI conduit; the kernel builds its own TTBR1 tables as after a Limine boot (HHDM at
//! Limine's aarch64 default, W^X image, TTBR0 walks off), then the console, the command
//! line (`/chosen` `bootargs`, read again through the HHDM) and the kernel, with the DTB
//! as its firmware description, exactly as a Limine boot of `-M virt,acpi=off`.
//!
//! Until the console exists a failure ends the run silently with status 1 (semihosting
//! exit code 1), as on the Limine path.

use kernel::boot_info::{Firmware, MemKind};
use kernel::firmware::acpi::PhysWindow;
use kernel::firmware::fdt;
use kernel::{BootInfo, console, kprintln};

use crate::direct_entry::KERNEL_VIRT;
use crate::port::{self, Aarch64};
use crate::{clock, cpu, dtb_memory, kpt, platform, power};

/// The HHDM offset of this path: Limine's aarch64 default for 4-level paging.
pub const HHDM: u64 = 0xffff_0000_0000_0000;
/// `loader=` of the `boot: ready` record on this path.
pub const LOADER: &str = "linux-image";
/// The temporary identity map covers the 1 GiB block holding the DTB.
const GIB: u64 = 1 << 30;

/// Called on the boot stack at the link address with the DTB's physical address.
#[unsafe(no_mangle)]
extern "C" fn aarch64_direct_main(dtb: u64) -> ! {
    let entry_ticks = clock::ticks();
    let (image_pa, entry_el) = crate::direct_entry::placement();
    let (start, end) = kpt::image_span();
    let kernel_image = (image_pa, image_pa + (end - start));
    let identity = PhysWindow {
        base_pa: dtb & !(GIB - 1),
        base_va: (dtb & !(GIB - 1)) as usize,
        len: GIB,
        // The temporary identity map covers the whole 1 GiB block: `len` bounds it.
        mapped: None,
    };
    let Ok(blob) = fdt::bytes(dtb, identity) else {
        power::exit(1)
    };
    let Ok(memory) = dtb_memory::memory_map(blob, dtb, kernel_image) else {
        power::exit(1)
    };
    // No ACPI on this path (QEMU builds ACPI tables only for firmware): nothing to read.
    let p = platform::discover(None, Some(dtb), identity, &|_, _| None);
    power::set_conduit(p.conduit);
    let mut ranges = memory
        .regions()
        .iter()
        .filter(|r| hhdm_maps(r.kind))
        .map(|r| (r.start, r.end));
    let placement = kpt::Placement {
        hhdm: HHDM,
        exec: (image_pa, KERNEL_VIRT),
        ranges: &mut ranges,
    };
    // From here on the identity map is gone (TTBR0 walks off): `blob` is not used again.
    let Ok(switched) = kpt::build_and_switch(placement, &[(p.uart, 0x1000)]) else {
        power::exit(1)
    };
    port::set_hhdm(HHDM);
    crate::console::init(HHDM + p.uart);
    console::install::<Aarch64>();
    let tree = fdt::bytes(dtb, PhysWindow::direct_map(HHDM as usize, &memory)).and_then(fdt::parse);
    let cmdline = tree.ok().and_then(|t| t.bootargs).unwrap_or("").trim();
    kprintln!(
        "direct: image=linux-image dtb={dtb:#x} dtb.size={} entry.el={entry_el} kernel={:#x}-{:#x} memmap_entries={} cmdline_bytes={}",
        tree.map_or(0, |t| t.size),
        kernel_image.0,
        kernel_image.1,
        memory.regions().len(),
        cmdline.len()
    );
    crate::boot::report(&switched, &p);
    let boot = BootInfo {
        memory,
        max_phys_addr: Some((1u64 << cpu::pa_bits()) - 1),
        hotplug: None,
        cmdline,
        firmware: Firmware::Fdt { dtb },
        kernel_image,
        loader: LOADER,
        entry_ns: clock::to_ns(entry_ticks),
    };
    kernel::main::<Aarch64>(boot)
}

/// What the HHDM maps of the memory map (as a Limine base revision 4+ HHDM does): RAM,
/// the kernel and the DTB, never reserved memory.
fn hhdm_maps(kind: MemKind) -> bool {
    matches!(
        kind,
        MemKind::Usable
            | MemKind::Kernel
            | MemKind::LoaderReclaimable
            | MemKind::AcpiReclaimable
            | MemKind::AcpiNvs
    )
}
