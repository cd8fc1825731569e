//! The first Rust code: the Limine loader jumps here (CS 0x28, IF 0, on its stack).
//! Console, descriptor tables, clock, the loader's responses, our own page tables,
//! then the kernel.

use kernel::boot_info::Firmware;
use kernel::{BootInfo, console};

use crate::{X86_64, cpu, gdt, idt, kpt, port, requests, serial, tsc};

/// ELF entry point (`ENTRY` in `linker.ld`).
#[unsafe(no_mangle)]
extern "C" fn x86_64_kernel_entry() -> ! {
    let entry_ticks = tsc::ticks();
    serial::init();
    console::install::<X86_64>();
    gdt::init();
    idt::init();
    tsc::calibrate();
    let h = requests::gather();
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
        entry_ns: tsc::to_ns(entry_ticks),
    };
    kernel::main::<X86_64>(boot)
}
