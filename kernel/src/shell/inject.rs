//! `inject KIND N [once|always]` and `inject clear` (also `inject=KIND:N[:always]` on the
//! kernel command line): make the Nth allocation of one kind fail — an altmap leaf, a RAM
//! leaf, a page-table page (the vmemmap walker's), a buddy frame (boot RAM) or a kernel
//! heap allocation (any, counted from when the rule is armed) — to watch a hot-add or
//! region add fail and roll back, and the kernel go on.

use crate::mm::error::AllocKind;
use crate::mm::inject::{FaultMode, FaultRule};
use crate::mm::live::LiveMm;
use crate::mm::vmemmap::VmemmapArch;
use crate::{Arch, Kernel, kprintln};

use super::inspect::parse_number;

/// Parses `altmap-leaf | ram-leaf | page-table | buddy | heap`.
fn parse_kind(text: &str) -> Option<AllocKind> {
    match text {
        "altmap-leaf" => Some(AllocKind::AltmapLeaf),
        "ram-leaf" => Some(AllocKind::RamLeaf),
        "page-table" => Some(AllocKind::PageTable),
        "buddy" => Some(AllocKind::Buddy),
        "heap" => Some(AllocKind::Heap),
        _ => None,
    }
}

/// Removes every rule: the walker's, the buddy's and the heap's.
pub fn clear_all<F: VmemmapArch>(mm: &mut LiveMm<F>) {
    let (walker, buddy) = mm.injectors();
    walker.clear();
    buddy.clear();
    crate::heap::with_faults(|f| f.clear());
}

/// Arms one rule; returns the record line or the error line.
pub fn arm<F: VmemmapArch>(
    mm: &mut LiveMm<F>,
    kind: &str,
    nth: &str,
    mode: &str,
) -> Result<(), &'static str> {
    let kind_value =
        parse_kind(kind).ok_or("KIND is altmap-leaf, ram-leaf, page-table, buddy or heap")?;
    let nth_value = parse_number(nth)
        .filter(|&n| n >= 1)
        .ok_or("N is a count from 1")?;
    let mode_value = match mode {
        "once" => FaultMode::Once,
        "always" => FaultMode::Always,
        _ => return Err("mode is once or always"),
    };
    let rule = FaultRule {
        kind: kind_value,
        nth: nth_value,
        mode: mode_value,
    };
    let (walker, buddy) = mm.injectors();
    match kind_value {
        AllocKind::Buddy => buddy.add(rule),
        AllocKind::Heap => crate::heap::with_faults(|f| f.arm(nth_value, mode_value)),
        _ => walker.add(rule),
    }
    kprintln!("inject: kind={kind} nth={nth_value} mode={mode}");
    Ok(())
}

/// The shell command.
pub fn inject<A: Arch>(kernel: &mut Kernel<A>, args: &[&str]) {
    let Some(mm) = kernel.mm.as_mut() else {
        kprintln!("error: inject: memory manager is down");
        return;
    };
    let result = match args {
        ["clear"] => {
            clear_all(mm);
            kprintln!("inject: cleared");
            Ok(())
        }
        [kind, nth] => arm(mm, kind, nth, "once"),
        [kind, nth, mode] => arm(mm, kind, nth, mode),
        _ => Err("usage: inject KIND N [once|always] | inject clear"),
    };
    if let Err(why) = result {
        kprintln!("error: inject: {why}");
    }
}

/// `inject=KIND:N[:always]` from the command line, armed after boot RAM is up.
pub fn from_cmdline<F: VmemmapArch>(mm: &mut LiveMm<F>, cmdline: &str) {
    let Some(text) = crate::firmware::cmdline::value(cmdline, "inject") else {
        return;
    };
    let mut parts = text.split(':');
    let (kind, nth, mode) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or("once"),
    );
    if let Err(why) = arm(mm, kind, nth, mode) {
        kprintln!("error: inject={text}: {why}; ignored");
    }
}
