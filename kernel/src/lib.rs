//! The arch-independent kernel, as a library.
//!
//! Each arch crate owns the executable: it gathers a [`BootInfo`] from its
//! firmware or loader and calls [`main`] with its [`Arch`] implementation. Everything
//! here compiles on the host too, so the memory-management core, the parsers and the
//! shell are unit-tested with plain `cargo test`.
#![cfg_attr(target_os = "none", no_std)]

extern crate alloc;

pub mod arch;
pub mod bench;
pub mod boot_info;
pub mod console;
pub mod devices;
pub mod dma;
pub mod faultsweep;
pub mod firmware;
pub mod heap;
pub mod hotplug;
pub mod kpt;
pub mod logger;
pub mod mm;
#[cfg(target_os = "none")]
mod panic;
pub mod probe;
pub mod region;
pub mod shell;
pub mod virtio;

pub use arch::Arch;
pub use boot_info::BootInfo;

use firmware::cmdline;

/// The kernel proper: console and log first, then the shell. Never returns.
pub fn main<A: Arch>(boot: BootInfo) -> ! {
    console::install::<A>();
    let mut boot = boot;
    #[cfg(target_os = "none")]
    let heap_chunk = heap::init(&mut boot.memory, A::phys_to_virt);
    #[cfg(not(target_os = "none"))]
    let heap_chunk: Option<core::ops::Range<u64>> = None;
    let level = cmdline::value(boot.cmdline, "loglevel").and_then(logger::parse_level);
    logger::init(level.unwrap_or(log::LevelFilter::Info));
    log::info!(
        "hotmem {} on {} (loaded by {})",
        env!("CARGO_PKG_VERSION"),
        A::NAME,
        boot.loader
    );
    log::info!("cmdline: {}", boot.cmdline);
    match &heap_chunk {
        Some(chunk) => log::info!("heap: boot chunk {:#x}-{:#x}", chunk.start, chunk.end),
        None => log::error!("heap: no usable RAM span holds the boot chunk"),
    }
    run_selftest::<A>(boot.cmdline);
    let regions = devices::discover::<A>(&boot);
    boot.memory = regions.carve(&boot.memory);
    let hidden = hidden_by_mem_limit(&boot.memory, boot.cmdline);
    boot.memory = region::carve_ram(&boot.memory, &hidden);
    let mut mm = bring_up_memory::<A>(&boot);
    if let Some(mm) = mm.as_mut() {
        shell::inject::from_cmdline(mm, boot.cmdline);
        shell::switches::from_cmdline(mm, boot.cmdline);
    }
    let devices = mm
        .as_mut()
        .map(|mm| devices::populate::<A>(mm, &regions))
        .unwrap_or_default();
    let block = memory_block::<A>(&boot);
    let sources = A::hotplug_sources(&boot);
    let mode = memmap_on_memory_mode(boot.cmdline);
    let mut kernel = Kernel::<A> {
        boot,
        mm,
        regions,
        devices,
        hotplug: hotplug::engine::Hotplug::new(block, mode),
        sources,
        events: hotplug::dispatch::event_queue(),
        allocated: alloc::vec::Vec::new(),
        hidden,
    };
    for source in &kernel.sources {
        log::info!("hotplug: source {}", source.name());
    }
    hotplug::dispatch::poll(&mut kernel);
    hotplug::dispatch::verify_added(&mut kernel);
    if cmdline::value(kernel.boot.cmdline, "selftest") == Some("vmemmap") {
        touch_vmemmap_hole(&kernel);
    }
    if cmdline::value(kernel.boot.cmdline, "selftest") == Some("faultsweep") {
        let ok = faultsweep::run(&mut kernel);
        console::exit(if ok { 0 } else { 1 });
    }
    if let Some(mode) = cmdline::value(kernel.boot.cmdline, "bench") {
        let ok = bench::run(&mut kernel, mode != "full");
        console::exit(if ok { 0 } else { 1 });
    }
    let boot = &kernel.boot;
    let entry_to_prompt_us = A::timestamp_ns().saturating_sub(boot.entry_ns) / 1_000;
    kprintln!(
        "boot: ready arch={} loader={} ram={} entry_to_prompt_us={entry_to_prompt_us}",
        A::NAME,
        boot.loader,
        boot.memory.ram_bytes()
    );
    shell::run::<A>(&mut kernel)
}

/// `selftest=vmemmap`: an unguarded read of the struct page of the first frame past the
/// last present section, as a kernel bug would do it. The exception handler reports the
/// fault and names the vmemmap; the run ends with status 2.
fn touch_vmemmap_hole<A: Arch>(kernel: &Kernel<A>) {
    let Some(mm) = kernel.mm.as_ref() else {
        log::error!("selftest=vmemmap: memory manager is down");
        return;
    };
    let (pfn, va) = mm.vmemmap_hole();
    log::warn!(
        "selftest=vmemmap: reading the struct page of pfn {:#x} at {va:#x} (section {} not present)",
        pfn.0,
        mm.arch().section_nr(pfn)
    );
    // SAFETY: deliberately reads an unmapped address: the CPU raises a translation fault
    // before any value is produced, and the port's exception handler reports it and ends
    // the run, so execution never continues past the load.
    let value = unsafe { core::ptr::read_volatile(va as *const u64) };
    log::error!("selftest=vmemmap: the read returned {value:#x}: the vmemmap hole is mapped");
}

/// Everything the shell and the event handlers work on.
pub struct Kernel<A: Arch> {
    /// What the arch handed over at boot.
    pub boot: BootInfo,
    /// The live memory manager; `None` if boot RAM could not be brought up (the kernel
    /// still runs its shell, and `mem` says why).
    pub mm: Option<mm::live::LiveMm<A::PageTable>>,
    /// The device regions and hotplug windows found at boot (and every refusal).
    pub regions: region::RegionSet,
    /// Device regions that are live: added with their altmap and verified.
    pub devices: alloc::vec::Vec<devices::LiveDevice>,
    /// Hot-added RAM.
    pub hotplug: hotplug::engine::Hotplug,
    /// The devices that report hotplug events.
    pub sources: alloc::vec::Vec<alloc::boxed::Box<dyn hotplug::event::EventSource>>,
    /// The event queue the sources fill (room reserved at boot, so polls do not allocate).
    pub events: alloc::vec::Vec<hotplug::event::Event>,
    /// RAM hidden from the allocator by `mem=` (the shell's `probe` hot-adds it, as
    /// Linux's memory probe interface does).
    pub hidden: alloc::vec::Vec<core::ops::Range<u64>>,
    /// Pages the shell's `alloc` took (given back by `free`).
    pub allocated: alloc::vec::Vec<mm::addr::Pfn>,
}

/// `mem=SIZE`: usable RAM at or above physical address SIZE is hidden (2 MiB-aligned
/// inward) so the shell's `probe` can hot-add real memory there.
fn hidden_by_mem_limit(
    map: &boot_info::MemoryMap,
    cmdline: &str,
) -> alloc::vec::Vec<core::ops::Range<u64>> {
    let Some(text) = cmdline::value(cmdline, "mem") else {
        return alloc::vec::Vec::new();
    };
    let limit = match firmware::memmap_param::parse_size(text, "mem") {
        Ok((limit, "")) => limit,
        _ => {
            kprintln!("error: mem={text}: not a size (e.g. mem=512M); ignored");
            return alloc::vec::Vec::new();
        }
    };
    const ALIGN: u64 = 1 << mm::arch::SUBSECTION_SHIFT;
    region::usable_spans(map)
        .into_iter()
        .map(|s| s.start.max(limit).next_multiple_of(ALIGN)..s.end / ALIGN * ALIGN)
        .filter(|r| r.start < r.end)
        .inspect(|r| {
            kprintln!(
                "mem: hidden range={:#x}-{:#x} (mem={text}; hot-add with probe)",
                r.start,
                r.end
            )
        })
        .collect()
}

/// The arch's memory block, checked as Linux's `memory_dev_init` checks it (which
/// panics where this falls back to one section).
fn memory_block<A: Arch>(boot: &BootInfo) -> mm::memory_block::MemoryBlock {
    let arch = <A::PageTable as mm::vmemmap::VmemmapArch>::MM;
    let block = A::memory_block(boot);
    match block.checked(arch) {
        Ok(block) => {
            log::info!(
                "mm: memory block bytes={:#x} rule={} sections={}",
                block.bytes,
                block.rule,
                block.sections(arch)
            );
            block
        }
        Err(e) => {
            kprintln!("error: {e}; using one section");
            mm::memory_block::MemoryBlock::section(arch)
        }
    }
}

/// `memory_hotplug.memmap_on_memory=0|1|force` (default on, as the ACPI driver asks).
fn memmap_on_memory_mode(cmdline: &str) -> mm::memmap_on_memory::MemmapOnMemoryMode {
    use mm::memmap_on_memory::MemmapOnMemoryMode as Mode;
    match cmdline::value(cmdline, "memory_hotplug.memmap_on_memory") {
        Some("0" | "n" | "N" | "off") => Mode::Disabled,
        Some("force") => Mode::Force,
        _ => Mode::Enabled,
    }
}

/// Boot RAM sections, their memmap and the buddy allocator (DESIGN.md §2 `mm::init`).
fn bring_up_memory<A: Arch>(boot: &BootInfo) -> Option<mm::live::LiveMm<A::PageTable>> {
    match mm::live::LiveMm::boot(A::mm_config(), &boot.memory, A::timestamp_ns) {
        Ok(mm) => {
            let f = mm.boot_figures();
            let vm = mm.sparse().vmemmap().stats();
            log::info!(
                "mm: boot sections={} managed={} free={} memmap.leaves={} tables={} bump={} in {} us",
                f.sections,
                mm.buddy().managed_pages(),
                mm.buddy().free_pages(),
                vm.leaves(),
                vm.table_pages(),
                f.bump_bytes,
                f.ns / 1000
            );
            Some(mm)
        }
        Err(e) => {
            log::error!("mm: bringing up boot RAM failed: {e:?}; running without a memmap");
            None
        }
    }
}

/// `selftest=panic`, `fault` and `hang` let the host prove that a kernel which panics,
/// faults, or never prints the exit sentinel, fails its run.
fn run_selftest<A: Arch>(cmdline: &str) {
    match cmdline::value(cmdline, "selftest") {
        None => {}
        Some("panic") => panic!("selftest=panic requested on the command line"),
        // Run once the memory manager is up.
        Some("faultsweep" | "vmemmap") => {}
        Some("fault") => {
            log::warn!("selftest=fault: provoking a CPU exception");
            A::provoke_fault();
            log::error!("selftest=fault: the CPU took no exception");
        }
        Some("hang") => {
            log::warn!("selftest=hang: halting without @@EXIT");
            A::halt()
        }
        Some(other) => log::error!(
            "selftest={other}: unknown (expected panic, fault, hang, vmemmap or faultsweep)"
        ),
    }
}
