//! The first Rust code: gather what the machine tells us into a `BootInfo` and hand
//! over to the kernel. `entry.S` has installed the new PSWs, the stack and a clear BSS.

use kernel::boot_info::{Firmware, HotplugWindow, MemKind, MemRegion, MemoryMap};
use kernel::{BootInfo, console, kprintln};

use crate::{S390x, cpu, ipl, sclp};

/// QEMU places device memory at the first 1 GiB boundary at or above the end of RAM.
const DEVICE_MEMORY_ALIGN: u64 = 1 << 30;

unsafe extern "C" {
    static __kernel_start: u8;
    static __kernel_end: u8;
}

/// Called from `_start` in `entry.S`.
#[unsafe(no_mangle)]
extern "C" fn s390x_rust_start() -> ! {
    cpu::mark_boot();
    let entry_ns = cpu::now_ns();
    console::install::<S390x>();
    sclp::init();
    crate::init_facilities();
    let Some(scp) = sclp::read_scp_info() else {
        kprintln!("error: SCLP Read SCP Info failed: RAM size unknown, cannot continue");
        console::exit(1);
    };
    let ram = scp.ram_bytes();
    let limit = cpu::storage_limit();
    let mut memory = MemoryMap::new();
    memory.push(MemRegion {
        start: 0,
        end: ram,
        kind: MemKind::Usable,
    });
    let boot = BootInfo {
        memory,
        max_phys_addr: Some(limit.unwrap_or(ram - 1)),
        hotplug: hotplug_window(ram, limit),
        cmdline: ipl::cmdline(),
        firmware: Firmware::Sclp,
        kernel_image: kernel_image(),
        loader: "qemu-ipl",
        entry_ns,
    };
    if limit.is_none() {
        log::warn!("DIAG 0x500 STORAGE_LIMIT unavailable: no hotplug window");
    }
    kernel::main::<S390x>(boot)
}

/// The device-memory window implied by RAM and the storage limit, if there is one.
fn hotplug_window(ram: u64, limit: Option<u64>) -> Option<HotplugWindow> {
    let end = limit? + 1;
    let start = ram.next_multiple_of(DEVICE_MEMORY_ALIGN);
    (end > start).then_some(HotplugWindow { start, end })
}

fn kernel_image() -> (u64, u64) {
    (
        &raw const __kernel_start as u64,
        &raw const __kernel_end as u64,
    )
}
