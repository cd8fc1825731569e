//! The first Rust code (`entry` set SP_EL1 and VBAR_EL1): the loader's responses, the
//! firmware facts, our own page tables (which map the UART), then the console and the
//! kernel. Until the console exists a failure ends the run silently with status 1
//! (semihosting exit code 1).

use kernel::firmware::acpi::PhysWindow;
use kernel::firmware::limine::requests as limine;
use kernel::{BootInfo, console, kprintln};

use crate::port::{self, Aarch64};
use crate::{clock, cpu, kpt, platform, power, requests};

/// Called by `aarch64_start` on the boot stack.
#[unsafe(no_mangle)]
extern "C" fn aarch64_kernel_entry() -> ! {
    let entry_ticks = clock::ticks();
    // Without the HHDM, the memory map or the image's placement no tables can be built.
    let Ok(h) = limine::gather() else {
        power::exit(1)
    };
    let Some(exec) = h.exec else { power::exit(1) };
    let dtb = requests::dtb(h.hhdm);
    let p = platform::discover(
        h.rsdp,
        dtb,
        PhysWindow::direct_map(h.hhdm as usize, &h.memory),
        &|pa, len| platform::loader_hhdm(&h, pa, len),
    );
    power::set_conduit(p.conduit);
    let placement = kpt::Placement {
        hhdm: h.hhdm,
        exec,
        ranges: &mut h.hhdm_ranges(),
    };
    let Ok(switched) = kpt::build_and_switch(placement, &[(p.uart, 0x1000)]) else {
        power::exit(1)
    };
    port::set_hhdm(h.hhdm);
    crate::console::init(h.hhdm + p.uart);
    console::install::<Aarch64>();
    h.print(&[("dtb", dtb)]);
    report(&switched, &p);
    let (start, end) = kpt::image_span();
    let kphys = exec.0 + (start - exec.1);
    let boot = BootInfo {
        memory: h.memory.clone(),
        max_phys_addr: Some((1u64 << cpu::pa_bits()) - 1),
        hotplug: None,
        cmdline: h.cmdline,
        firmware: p.firmware,
        kernel_image: (kphys, kphys + (end - start)),
        loader: h.loader,
        entry_ns: clock::to_ns(entry_ticks),
    };
    kernel::main::<Aarch64>(boot)
}

/// The `paging:` and `platform:` records (both entry paths).
pub(crate) fn report(switched: &kpt::Switched, p: &platform::Platform) {
    let leaves = switched.stats.leaves;
    kprintln!(
        "paging: ttbr1={:#x} format={} hhdm_ranges={} table_frames={} leaves.1g={} leaves.2m={} leaves.4k={} text=rx rodata=r data=rw",
        switched.root,
        <crate::paging::Aarch64Paging as kernel::mm::pgtable::PageTableFormat>::NAME,
        switched.ranges,
        kpt::frames_used(),
        leaves[1],
        leaves[2],
        leaves[3]
    );
    kprintln!(
        "platform: firmware={} uart.pl011={:#x} uart.source={} psci={} el={}",
        platform::kind(p.firmware),
        p.uart,
        p.uart_source,
        p.conduit.name(),
        cpu::current_el()
    );
}
