//! The first Rust code: the Limine loader jumps here (CS 0x28, IF 0, on its stack).
//! Console, descriptor tables, clock, the loader's responses, our own page tables,
//! then the kernel.

use kernel::boot_info::Firmware;
use kernel::firmware::limine::requests;
use kernel::{BootInfo, console, kprintln};

use crate::{X86_64, clock, cpu, exceptions, gdt, kpt, port};

/// ELF entry point (`ENTRY` in `linker.ld`).
#[unsafe(no_mangle)]
extern "C" fn x86_64_kernel_entry() -> ! {
    let entry_ticks = start_cpu();
    let h = match requests::gather() {
        Ok(h) => h,
        Err(missing) => {
            requests::print_revision();
            kprintln!("limine: fatal: {missing}");
            console::exit(1);
        }
    };
    h.print(&[]);
    port::set_hhdm(h.hhdm);
    let features = cpu::features();
    kpt::switch(
        kpt::Placement {
            hhdm: h.hhdm,
            exec: h.exec,
            ranges: &mut h.hhdm_ranges(),
        },
        features,
    );
    let (start, end) = kpt::image_span();
    let kernel_image = h
        .exec
        .map_or((0, 0), |(p, v)| (p + (start - v), p + (end - v)));
    let boot = BootInfo {
        memory: h.memory,
        max_phys_addr: Some((1u64 << features.phys_bits) - 1),
        hotplug: None,
        cmdline: h.cmdline,
        firmware: h
            .rsdp
            .map_or(Firmware::None, |rsdp| Firmware::Acpi { rsdp }),
        kernel_image,
        loader: h.loader,
        entry_ns: clock::to_ns(entry_ticks),
    };
    kernel::main::<X86_64>(boot)
}

/// What both entry paths (Limine, PVH) do first: the console, the descriptor tables and
/// the clock. Returns the clock reading at entry, for `boot: ready`'s entry time.
pub(crate) fn start_cpu() -> u64 {
    let entry_ticks = clock::ticks();
    crate::console::init();
    console::install::<X86_64>();
    gdt::init();
    exceptions::init();
    clock::calibrate();
    entry_ticks
}
