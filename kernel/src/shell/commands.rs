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
        name: "poweroff",
        args: "",
        help: "stop the machine (exit status 0)",
    },
    CommandInfo {
        name: "exit",
        args: "N",
        help: "stop the machine with exit status N (0..=255)",
    },
];

/// Parses and runs one submitted line.
pub fn execute<A: Arch>(kernel: &mut Kernel<A>, line: &str) {
    let boot = &kernel.boot;
    let mut words = line.split_ascii_whitespace();
    let Some(name) = words.next() else { return };
    let args: [Option<&str>; 2] = [words.next(), words.next()];
    let extra = words.next().is_some() || args[1].is_some();
    let known = COMMANDS.iter().find(|c| c.name == name);
    let Some(info) = known else {
        kprintln!("error: unknown command '{name}' (try 'help')");
        return;
    };
    let max_args = info.args.split_ascii_whitespace().count();
    let given = args.iter().flatten().count() + usize::from(extra);
    if given > max_args {
        kprintln!(
            "error: {name}: too many arguments (usage: {name} {})",
            info.args
        );
        return;
    }
    match name {
        "help" => help(),
        "mem" => {
            mem(boot);
            mm_report(kernel);
        }
        "cpu" => {
            kprintln!("cpu arch={} clock={}", A::NAME, A::clock_name());
            let _ = A::cpu_report(&mut Console);
        }
        "cmdline" => kprintln!("cmdline: {}", boot.cmdline),
        "poweroff" => console::exit(0),
        "exit" => exit(args[0]),
        _ => unreachable!("every table entry has a match arm"),
    }
}

fn help() {
    for c in COMMANDS {
        kprintln!("  {:<10} {:<4} {}", c.name, c.args, c.help);
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
    #[cfg(target_os = "none")]
    kprintln!(
        "mem.heap used={} bytes={}",
        crate::heap::used(),
        crate::heap::HEAP_BYTES
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
    let Some(mm) = &kernel.mm else {
        kprintln!("mem.mm state=down (boot RAM bring-up failed; see the boot log)");
        return;
    };
    let buddy = mm.buddy();
    let sparse = mm.sparse();
    let vm = sparse.vmemmap().stats();
    let memmap_pages = sparse.present_pages() * crate::mm::page::STRUCT_PAGE_SIZE / PAGE_SIZE;
    kprintln!(
        "mem.mm managed={} free={} sections={} present={} memmap.pages={memmap_pages} vmemmap.leaves={} vmemmap.tables={}",
        buddy.managed_pages(),
        buddy.free_pages(),
        sparse.sections().count(),
        sparse.present_pages(),
        vm.leaves(),
        vm.table_pages(),
    );
}
