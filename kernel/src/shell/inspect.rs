//! Inspection commands over the live memory manager: `vmemmap`, `walk VADDR`, `page PFN`.

use crate::mm::addr::Pfn;
use crate::mm::live::LiveMm;
use crate::mm::memmap::MemmapAccess;
use crate::mm::page::PageFlags;
use crate::mm::pgtable::{Entry, PageTableFormat};
use crate::mm::walk;
use crate::{Arch, Kernel, kprintln};

/// The live memory manager, or one error line saying it is not there.
fn live<'k, A: Arch>(kernel: &'k Kernel<A>, command: &str) -> Option<&'k LiveMm<A::PageTable>> {
    if kernel.mm.is_none() {
        kprintln!("error: {command}: memory manager is down (see the boot log)");
    }
    kernel.mm.as_ref()
}

/// Parses `0x`-prefixed hexadecimal or decimal.
pub fn parse_number(text: &str) -> Option<u64> {
    // Digit by digit (underscores skipped), so parsing never allocates.
    let (digits, radix) = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => (hex, 16),
        None => (text, 10),
    };
    let mut value: u64 = 0;
    let mut any = false;
    for c in digits.chars().filter(|&c| c != '_') {
        let digit = c.to_digit(radix)?;
        value = value
            .checked_mul(u64::from(radix))?
            .checked_add(u64::from(digit))?;
        any = true;
    }
    any.then_some(value)
}

/// Parses the one numeric argument of `command`, printing the error line if it is bad.
fn number_arg(command: &str, what: &str, arg: Option<&str>) -> Option<u64> {
    let Some(text) = arg else {
        kprintln!("error: {command}: missing {what} (usage: {command} {what})");
        return None;
    };
    let value = parse_number(text);
    if value.is_none() {
        kprintln!("error: {command}: bad {what} '{text}' (hex with 0x, or decimal)");
    }
    value
}

/// `vmemmap`: populated struct-page ranges (runs of present subsections) and counters.
pub fn vmemmap<A: Arch>(kernel: &Kernel<A>) {
    let Some(mm) = live(kernel, "vmemmap") else {
        return;
    };
    let arch = mm.arch();
    let per_sub = arch.pages_per_subsection();
    for (nr, section) in mm.sparse().sections() {
        let mut bits = section.present;
        while bits != 0 {
            let first = bits.trailing_zeros() as u64;
            let run = (bits >> first).trailing_ones() as u64;
            let start = Pfn(arch.section_start(nr).0 + first * per_sub);
            let end = start.add(run * per_sub);
            kprintln!(
                "vmemmap.range section={nr} pfn={:#x}-{:#x} va={:#x}-{:#x}",
                start.0,
                end.0,
                arch.pfn_to_page(start).0,
                arch.pfn_to_page(end).0
            );
            let ones = 1u128.checked_shl(run as u32).map_or(u128::MAX, |b| b - 1);
            bits &= !(ones << first);
        }
    }
    let vm = mm.sparse().vmemmap();
    let s = vm.stats();
    kprintln!(
        "vmemmap.mode semantics={} trace={} hazards={}",
        vm.semantics(),
        if vm.tracing() { "on" } else { "off" },
        vm.tally().hazards
    );
    kprintln!(
        "vmemmap.stats base={:#x} leaf.huge={}K huge.altmap={} huge.ram={} base.altmap={} base.ram={} altmap.pages={} ram.leaf.bytes={} tables={} table.bytes={}",
        arch.vmemmap_base,
        arch.vmemmap_leaf_bytes() / 1024,
        s.huge_leaves_altmap,
        s.huge_leaves_ram,
        s.base_leaves_altmap,
        s.base_leaves_ram,
        s.altmap_pages,
        s.ram_leaf_bytes,
        s.table_pages(),
        s.table_bytes
    );
}

/// `walk VADDR`: each level's entry in software, and the CPU's own translation beside it.
pub fn walk<A: Arch>(kernel: &Kernel<A>, arg: Option<&str>) {
    let Some(mm) = live(kernel, "walk") else {
        return;
    };
    let Some(va) = number_arg("walk", "VADDR", arg) else {
        return;
    };
    let mem = mm.direct_map();
    for step in walk::steps::<A::PageTable, _>(&mem, mm.root(), va) {
        let name = A::PageTable::LEVELS[step.level].name;
        crate::kprint!(
            "walk.level level={} name={name} entry@{:#x} raw={:#018x} ",
            step.level,
            step.entry_addr.0,
            step.raw
        );
        match step.entry {
            Entry::Empty => kprintln!("empty"),
            Entry::Malformed => kprintln!("malformed"),
            Entry::Table(t) => kprintln!("table={:#x}", t.0),
            Entry::Leaf { frame, attrs } => kprintln!("leaf={:#x} attrs={attrs:?}", frame.0),
        }
    }
    let software = mm.translate(va);
    let hardware = A::hw_translate(va);
    let sw = software.map(|t| t.phys.0);
    let hw_text = HwText(hardware);
    let matches = match (sw, hardware) {
        (Ok(a), Some(b)) => u8::from(a == b),
        (Err(_), None) => 1,
        _ => 0,
    };
    match software {
        Ok(t) => kprintln!(
            "walk.result va={va:#x} pa={:#x} leaf.bytes={} level={} hw={hw_text} match={matches}",
            t.phys.0,
            t.leaf_bytes,
            t.level
        ),
        Err(fault) => {
            kprintln!("walk.result va={va:#x} fault={fault:?} hw={hw_text} match={matches}")
        }
    }
}

/// `page PFN`: the struct page, decoded.
pub fn page<A: Arch>(kernel: &Kernel<A>, arg: Option<&str>) {
    let Some(mm) = live(kernel, "page") else {
        return;
    };
    let Some(pfn) = number_arg("page", "PFN", arg).map(Pfn) else {
        return;
    };
    if !mm.memmap().has_page(pfn) {
        kprintln!(
            "error: page: pfn {:#x} has no struct page (its subsection is not present)",
            pfn.0
        );
        return;
    }
    // A device region's reserve pfns (the info block) have a mapped struct page that is
    // never initialised, as in Linux: reading it as a page is the 2019 kpageflags bug
    // (fs/proc/page.c now asks pfn_to_online_page / pgmap_pfn_valid first).
    if let Some(d) = kernel
        .devices
        .iter()
        .find(|d| d.memory.range.contains(&pfn))
    {
        let a = &d.memory.altmap;
        if pfn.0 < a.base_pfn + a.reserve {
            kprintln!(
                "error: page: pfn {:#x} is a reserve pfn of region {} (base_pfn={:#x} reserve={}): its struct page is never initialised",
                pfn.0,
                d.memory.region_id,
                a.base_pfn,
                a.reserve
            );
            return;
        }
    }
    let p = mm.memmap().page(pfn);
    if !p.has(PageFlags::INITIALIZED) {
        kprintln!(
            "error: page: pfn {:#x} has a struct page that was never initialised",
            pfn.0
        );
        return;
    }
    kprintln!(
        "page pfn={:#x} va={:#x} flags={:?} zone={:?} node={} section={} refcount={} order={} pgmap={} buddy.next={:#x} buddy.prev={:#x}",
        pfn.0,
        mm.arch().pfn_to_page(pfn).0,
        p.state(),
        p.zone(),
        p.node(),
        p.section(),
        p.refcount,
        p.order,
        p.pgmap,
        p.buddy_next,
        p.buddy_prev
    );
}

/// The CPU's translation for a record: the address, or `none`.
struct HwText(Option<u64>);

impl core::fmt::Display for HwText {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Some(pa) => write!(f, "{pa:#x}"),
            None => write!(f, "none"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_number;

    #[test]
    fn numbers_parse_without_allocating() {
        assert_eq!(parse_number("0x20000000"), Some(0x2000_0000));
        assert_eq!(parse_number("0X1_000"), Some(0x1000));
        assert_eq!(parse_number("4_096"), Some(4096));
        assert_eq!(parse_number("0x"), None);
        assert_eq!(parse_number(""), None);
        assert_eq!(parse_number("12z"), None);
        assert_eq!(parse_number("0x1_0000_0000_0000_0000"), None, "overflow");
        crate::heap::with_faults(|f| f.arm(1, crate::mm::inject::FaultMode::Always));
        let parsed = parse_number("0xdead_beef");
        crate::heap::with_faults(|f| f.clear());
        assert_eq!(parsed, Some(0xdead_beef));
    }
}
