//! The first Rust code: gather what the machine tells us into a `BootInfo` and hand
//! over to the kernel. `entry.S` has installed the new PSWs, the stack and a clear BSS.

use kernel::boot_info::{Firmware, HotplugWindow, MemKind, MemRegion, MemoryMap};
use kernel::kpt::ImageLayout;
use kernel::{BootInfo, console, kprintln};

use kernel::mm::pgtable::Features;

use crate::facility::{self, Facilities};
use crate::{S390x, clock, cpu, ipl, kpt, sclp};

/// QEMU places device memory at the first 1 GiB boundary at or above the end of RAM.
const DEVICE_MEMORY_ALIGN: u64 = 1 << 30;

/// Called from `_start` in `entry.S`.
#[unsafe(no_mangle)]
extern "C" fn s390x_rust_start() -> ! {
    clock::mark_boot();
    let entry_ns = clock::now_ns();
    console::install::<S390x>();
    crate::console::init();
    let facilities = crate::init_facilities();
    let Some(scp) = sclp::read_scp_info() else {
        kprintln!("error: SCLP Read SCP Info failed: RAM size unknown, cannot continue");
        console::exit(1);
    };
    crate::record_increment(scp.increment);
    let ram = scp.ram_bytes();
    let limit = cpu::storage_limit();
    let (_, image_end) = kernel_image();
    let dat = match kpt::enable_identity_map(ram, image_end, dat_features(&facilities)) {
        Ok(dat) => dat,
        Err(e) => {
            kprintln!("error: identity map of {ram:#x} bytes of RAM failed: {e:?}");
            console::exit(1);
        }
    };
    crate::record_dat(dat);
    // Lowcore, image and boot tables are in use; the rest of RAM is free.
    let mut memory = MemoryMap::new();
    memory.push(MemRegion {
        start: 0,
        end: dat.tables_end,
        kind: MemKind::Kernel,
    });
    memory.push(MemRegion {
        start: dat.tables_end,
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

/// The DAT features this CPU offers: EDAT-1 lets the identity map use 1 MiB segments,
/// IEP makes data non-executable.
pub(crate) fn dat_features(facilities: &Facilities) -> Features {
    let mut features = Features::empty();
    features.set(Features::EDAT1, facilities.has(facility::EDAT1));
    features.set(Features::NO_EXECUTE, facilities.has(facility::IEP));
    features
}

/// The device-memory window implied by RAM and the storage limit, if there is one.
fn hotplug_window(ram: u64, limit: Option<u64>) -> Option<HotplugWindow> {
    let end = limit? + 1;
    let start = ram.next_multiple_of(DEVICE_MEMORY_ALIGN);
    (end > start).then_some(HotplugWindow { start, end })
}

fn kernel_image() -> (u64, u64) {
    let image = ImageLayout::of_this_kernel();
    (image.start, image.end)
}
