//! The shell's commands: one table for `help`, one `match` to run them.

use crate::boot_info::MemKind;
use crate::console::{self, Console};
use crate::mm::addr::PAGE_SIZE;
use crate::{Arch, BootInfo, Kernel, kprintln};

/// A command's name, argument synopsis and one-line description.
struct CommandInfo {
    name: &'static str,
    args: &'static str,
    help: &'static str,
}

const COMMANDS: &[CommandInfo] = &[
    CommandInfo {
        name: "help",
        args: "",
        help: "list the commands",
    },
    CommandInfo {
        name: "mem",
        args: "",
        help: "boot memory map and totals",
    },
    CommandInfo {
        name: "cpu",
        args: "",
        help: "CPU model, facilities and features",
    },
    CommandInfo {
        name: "cmdline",
        args: "",
        help: "the kernel command line",
    },
    CommandInfo {
        name: "firmware",
        args: "",
        help: "what ACPI or the device tree describe (UART, ECAM, GIC, SRAT)",
    },
    CommandInfo {
        name: "poweroff",
        args: "",
        help: "stop the machine (exit status 0)",
    },
    CommandInfo {
        name: "exit",
        args: "N",
        help: "stop the machine with exit status N (0..=255)",
    },
    CommandInfo {
        name: "regions",
        args: "",
        help: "device regions and hotplug windows, refusals, and a map of the address space",
    },
    CommandInfo {
        name: "altmap",
        args: "ID",
        help: "the altmap of region ID: all six fields and the derived offset",
    },
    CommandInfo {
        name: "hotplug",
        args: "",
        help: "hot-added ranges (source, blocks, altmap, state) and event sources",
    },
    CommandInfo {
        name: "verify",
        args: "[ID|ADDR]",
        help: "check every struct page and memmap leaf through the MMU (all, region ID, or the hot range at ADDR)",
    },
    CommandInfo {
        name: "probe",
        args: "START SIZE",
        help: "hot-add RAM hidden by mem= (Linux's memory probe interface)",
    },
    CommandInfo {
        name: "unprobe",
        args: "START SIZE",
        help: "offline and hot-remove a range added by probe",
    },
    CommandInfo {
        name: "alloc",
        args: "N [PFN]",
        help: "take N pages from the buddy (at PFN.. if given: makes that memory busy)",
    },
    CommandInfo {
        name: "free",
        args: "",
        help: "give back every page 'alloc' took",
    },
    CommandInfo {
        name: "bench",
        args: "[MODE]",
        help: "time add/populate/init/verify per region size vs memset (quick|full; needs mem=)",
    },
    CommandInfo {
        name: "inject",
        args: "KIND N MODE",
        help: "fail the Nth altmap-leaf|ram-leaf|page-table|buddy allocation (once|always); 'inject clear'",
    },
    CommandInfo {
        name: "faultsweep",
        args: "",
        help: "fail each allocation of a 2-section add in turn; check exact rollback (needs mem=)",
    },
    CommandInfo {
        name: "vmemmap",
        args: "[trace on|off]",
        help: "populated memmap ranges, leaf sizes and table pages; 'trace on' prints every table and leaf a populate or free makes",
    },
    CommandInfo {
        name: "semantics",
        args: "[NAME]",
        help: "whose rules the vmemmap and altmap follow: hotmem (default), linux (hazards included) or rfc-2017",
    },
    CommandInfo {
        name: "walk",
        args: "VADDR",
        help: "each level's entry for VADDR (software walk; LRAG / AT S1E1R beside it)",
    },
    CommandInfo {
        name: "page",
        args: "PFN",
        help: "the struct page of PFN, decoded",
    },
    CommandInfo {
        name: "peek",
        args: "VADDR",
        help: "read a doubleword at VADDR; a fault is caught and reported",
    },
    CommandInfo {
        name: "poke",
        args: "VADDR VALUE",
        help: "write VALUE at VADDR; a fault is caught and reported",
    },
    CommandInfo {
        name: "jump",
        args: "VADDR",
        help: "branch to VADDR expecting a fault (shows VADDR is not executable)",
    },
    CommandInfo {
        name: "protect",
        args: "",
        help: "check W^X of text, rodata, data, heap, stack, memmap and a vmemmap hole",
    },
];

/// Most arguments any command takes.
const MAX_ARGS: usize = 4;

/// Parses and runs one submitted line.
pub fn execute<A: Arch>(kernel: &mut Kernel<A>, line: &str) {
    let boot = &kernel.boot;
    let mut words = line.split_ascii_whitespace();
    let Some(name) = words.next() else { return };
    let Some(info) = COMMANDS.iter().find(|c| c.name == name) else {
        kprintln!("error: unknown command '{name}' (try 'help')");
        return;
    };
    // No command takes more than MAX_ARGS words: a fixed array, so parsing never allocates.
    let mut slots = [""; MAX_ARGS];
    let mut count = 0;
    for word in words {
        if count == MAX_ARGS {
            count += 1;
            break;
        }
        slots[count] = word;
        count += 1;
    }
    let args = &slots[..count.min(MAX_ARGS)];
    let wanted = info.args.split_ascii_whitespace().count();
    if count > wanted {
        kprintln!(
            "error: {name}: too many arguments (usage: {name} {})",
            info.args
        );
        return;
    }
    let arg = args.first().copied();
    match name {
        "help" => help(),
        "mem" => {
            mem(boot);
            mm_report(kernel);
            let block = kernel.hotplug.block();
            kprintln!(
                "mem.block bytes={:#x} rule={} sections={}",
                block.bytes,
                block.rule,
                block.sections(<A::PageTable as crate::mm::vmemmap::VmemmapArch>::MM)
            );
        }
        "cpu" => {
            kprintln!("cpu arch={} clock={}", A::NAME, A::clock_name());
            let _ = A::cpu_report(&mut Console);
        }
        "cmdline" => kprintln!("cmdline: {}", boot.cmdline),
        "firmware" => firmware::<A>(boot),
        "poweroff" => console::exit(0),
        "exit" => exit(arg),
        "regions" => super::regions::regions(kernel),
        "altmap" => super::regions::altmap(kernel, arg),
        "hotplug" => super::memory::hotplug(kernel),
        "verify" => super::memory::verify(kernel, arg),
        "alloc" => super::memory::alloc(kernel, args),
        "probe" => super::memory::probe(kernel, args, true),
        "unprobe" => super::memory::probe(kernel, args, false),
        "free" => super::memory::free(kernel),
        "bench" => match arg {
            None | Some("quick") => {
                let _ = crate::bench::run(kernel, true);
            }
            Some("full") => {
                let _ = crate::bench::run(kernel, false);
            }
            Some(other) => kprintln!("error: bench: unknown mode '{other}' (quick or full)"),
        },
        "inject" => super::inject::inject(kernel, args),
        "faultsweep" => {
            let _ = crate::faultsweep::run(kernel);
        }
        "vmemmap" => match args {
            [] => super::inspect::vmemmap(kernel),
            ["trace", rest @ ..] => super::switches::trace(kernel, rest.first().copied()),
            [other, ..] => kprintln!(
                "error: vmemmap: unknown argument '{other}' (usage: vmemmap [trace on|off])"
            ),
        },
        "semantics" => super::switches::semantics(kernel, arg),
        "walk" => super::inspect::walk(kernel, arg),
        "page" => super::inspect::page(kernel, arg),
        "peek" => super::protect::peek::<A>(args),
        "poke" => super::protect::poke::<A>(args),
        "jump" => super::protect::jump(kernel, args),
        "protect" => super::protect::protect(kernel),
        _ => unreachable!("every table entry has a match arm"),
    }
}

fn help() {
    for c in COMMANDS {
        kprintln!("  {:<10} {:<11} {}", c.name, c.args, c.help);
    }
}

fn mem(boot: &BootInfo) {
    let map = &boot.memory;
    for r in map.regions() {
        kprintln!(
            "mem.region start={:#x} end={:#x} kind={}",
            r.start,
            r.end,
            r.kind.name()
        );
    }
    if map.dropped() > 0 {
        kprintln!("mem.dropped regions={}", map.dropped());
    }
    let reserved = map.bytes_of(MemKind::Reserved);
    kprint_total(
        boot,
        map.ram_bytes(),
        map.bytes_of(MemKind::Usable),
        reserved,
    );
}

fn kprint_total(boot: &BootInfo, ram: u64, usable: u64, reserved: u64) {
    crate::kprint!(
        "mem.total ram={ram} usable={usable} reserved={reserved} ram.mib={}",
        ram >> 20
    );
    if let Some(max) = boot.max_phys_addr {
        crate::kprint!(" max_phys={max:#x}");
    }
    if let Some(w) = boot.hotplug {
        crate::kprint!(" hotplug.start={:#x} hotplug.end={:#x}", w.start, w.end);
    }
    kprintln!();
    let (start, end) = boot.kernel_image;
    kprintln!(
        "mem.kernel start={start:#x} end={end:#x} bytes={}",
        end - start
    );
}

fn exit(arg: Option<&str>) {
    let Some(text) = arg else {
        kprintln!("error: exit: missing status (usage: exit N, N in 0..=255)");
        return;
    };
    match text.parse::<u8>() {
        Ok(status) => console::exit(u32::from(status)),
        Err(_) => kprintln!("error: exit: bad status '{text}' (expected 0..=255)"),
    }
}

/// The live memory manager's figures: buddy, memmap, vmemmap tables.
fn mm_report<A: Arch>(kernel: &Kernel<A>) {
    let heap = crate::heap::stats();
    kprintln!(
        "mem.heap used={} bytes={} grows={} shrinks={} chunks={} buddy.pages={} failures={} injected={}",
        heap.used,
        heap.bytes,
        heap.grows,
        heap.shrinks,
        heap.chunks,
        kernel.mm.as_ref().map_or(0, |mm| mm.heap_pages()),
        heap.failures,
        heap.injected
    );
    let Some(mm) = &kernel.mm else {
        kprintln!("mem.mm state=down (boot RAM bring-up failed; see the boot log)");
        return;
    };
    let movable = mm.movable();
    let sparse = mm.sparse();
    let vm = sparse.vmemmap().stats();
    let memmap_pages = sparse.present_pages() * crate::mm::page::STRUCT_PAGE_SIZE / PAGE_SIZE;
    kprintln!(
        "mem.mm managed={} free={} movable.managed={} movable.free={} sections={} present={} memmap.pages={memmap_pages} vmemmap.leaves={} vmemmap.tables={}",
        mm.managed_pages(),
        mm.free_pages(),
        movable.managed_pages(),
        movable.free_pages(),
        sparse.sections().count(),
        sparse.present_pages(),
        vm.leaves(),
        mm.table_pages(),
    );
}

/// `firmware kind=acpi|fdt|sclp|none ...` then `firmware.*` detail records.
fn firmware<A: Arch>(boot: &BootInfo) {
    use crate::boot_info::Firmware;
    use crate::firmware::{acpi, acpi_find, fdt};
    let window = acpi::PhysWindow::direct_map(A::phys_to_virt(0) as usize, &boot.memory);
    match boot.firmware {
        Firmware::Acpi { rsdp } => match acpi::parse(rsdp, &acpi_find::read_direct_map::<A>) {
            Ok(info) => {
                kprintln!("firmware kind=acpi rsdp={rsdp:#x} {info}");
                let _ = info.details(&mut Console);
            }
            Err(e) => kprintln!("firmware kind=acpi rsdp={rsdp:#x} error={e:?}"),
        },
        Firmware::Fdt { dtb } => match fdt::bytes(dtb, window).and_then(fdt::parse) {
            Ok(info) => {
                kprintln!("firmware kind=fdt dtb={dtb:#x} {info}");
                let _ = info.details(&mut Console);
            }
            Err(e) => kprintln!("firmware kind=fdt dtb={dtb:#x} error={e:?}"),
        },
        Firmware::Sclp => kprintln!("firmware kind=sclp"),
        Firmware::None => kprintln!("firmware kind=none"),
    }
}
