//! Guarded memory access and the protection audit: `peek VADDR`, `poke VADDR VALUE`,
//! `jump VADDR` and `protect`.
//!
//! `protect` checks the policy the mappings promise — kernel text read-only and
//! executable, read-only data neither writable nor executable, data, heap, stack and
//! the memmap writable but never executable, and the vmemmap unmapped outside populated
//! sections — twice: in the tables (software walk of the live root) and on the CPU (a
//! guarded read, write-back of the same value, and jump, whose faults the port catches).

use core::sync::atomic::{AtomicU64, Ordering};

use crate::mm::pgtable::{EntryAttrs, Features};
use crate::mm::walk::Translation;
use crate::probe::{self, Access, ProbeFault};
use crate::shell::inspect::parse_number;
use crate::{Arch, Kernel, kprintln};

/// A read-only object: the linker places it with the rest of `.rodata`.
static READ_ONLY_WORD: u64 = 0x5052_4f54_4543_5421;

/// A writable object in `.data` / `.bss`.
static DATA_WORD: AtomicU64 = AtomicU64::new(0);

/// `peek VADDR`: one guarded doubleword read.
pub fn peek<A: Arch>(args: &[&str]) {
    let Some(va) = number("peek", args.first().copied(), "VADDR", true) else {
        return;
    };
    match A::probe(va, Access::Read) {
        Ok(value) => kprintln!("peek va={va:#x} value={value:#018x}"),
        Err(fault) => kprintln!("peek va={va:#x} {fault}{}", note::<A>(va)),
    }
}

/// `poke VADDR VALUE`: one guarded doubleword write.
pub fn poke<A: Arch>(args: &[&str]) {
    let Some(va) = number("poke", args.first().copied(), "VADDR VALUE", true) else {
        return;
    };
    let Some(value) = number("poke", args.get(1).copied(), "VADDR VALUE", false) else {
        return;
    };
    match A::probe(va, Access::Write(value)) {
        Ok(_) => kprintln!("poke va={va:#x} value={value:#018x} result=ok"),
        Err(fault) => kprintln!("poke va={va:#x} {fault}{}", note::<A>(va)),
    }
}

/// `jump VADDR`: a guarded branch, to show that an address is not executable. A target
/// the tables map executable is refused: branching there would run it.
pub fn jump<A: Arch>(kernel: &Kernel<A>, args: &[&str]) {
    let Some(va) = number("jump", args.first().copied(), "VADDR", false) else {
        return;
    };
    if let Some(mm) = kernel.mm.as_ref()
        && let Ok(t) = mm.translate(va)
        && executable(&t, nx(mm.features()))
    {
        kprintln!("error: jump: {va:#x} is mapped executable; refusing to run it");
        return;
    }
    match A::probe(va, Access::Execute) {
        Ok(_) => kprintln!("jump va={va:#x} result=returned"),
        Err(fault) => kprintln!("jump va={va:#x} {fault}{}", note::<A>(va)),
    }
}

/// Whether the CPU executes from a translation (everything does without NX support).
fn executable(t: &Translation, nx: bool) -> bool {
    !nx || !t.attrs.contains(EntryAttrs::NO_EXECUTE)
}

/// Whether the live tables carry a no-execute bit at all.
fn nx(features: Features) -> bool {
    features.contains(Features::NO_EXECUTE)
}

/// ` in=vmemmap pfn=.. section=..` when `va` is in the vmemmap, else nothing.
fn note<A: Arch>(va: u64) -> Note {
    Note(probe::vmemmap_note(
        <A::PageTable as crate::mm::vmemmap::VmemmapArch>::MM,
        va,
    ))
}

/// What [`note`] prints (formatted in place: the shell does not allocate).
struct Note(Option<probe::VmemmapNote>);

impl core::fmt::Display for Note {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match &self.0 {
            Some(n) => write!(f, " {n}"),
            None => Ok(()),
        }
    }
}

/// A number argument of `command` (an 8-byte-aligned address when `aligned`), or one
/// error line.
fn number(command: &str, text: Option<&str>, usage: &str, aligned: bool) -> Option<u64> {
    let Some(text) = text else {
        kprintln!("error: {command}: missing argument (usage: {command} {usage})");
        return None;
    };
    let Some(value) = parse_number(text) else {
        kprintln!("error: {command}: bad number '{text}' (hex with 0x, or decimal)");
        return None;
    };
    if aligned && value % 8 != 0 {
        kprintln!("error: {command}: address {value:#x} is not 8-byte aligned");
        return None;
    }
    Some(value)
}

/// What a target must look like.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Want {
    /// Mapped, read-only, executable.
    Text,
    /// Mapped, read-only, not executable.
    ReadOnly,
    /// Mapped, writable, not executable.
    Data,
    /// Not mapped at all.
    Unmapped,
}

impl Want {
    fn name(self) -> &'static str {
        match self {
            Want::Text => "r-x",
            Want::ReadOnly => "r--",
            Want::Data => "rw-",
            Want::Unmapped => "---",
        }
    }
}

/// `protect`: every target, its mapping and its live behaviour; one summary line.
pub fn protect<A: Arch>(kernel: &Kernel<A>) {
    let Some(mm) = kernel.mm.as_ref() else {
        kprintln!("error: protect: memory manager is down (see the boot log)");
        return;
    };
    // A word on the heap, taken fallibly (no heap room: one error line).
    let mut heap: alloc::vec::Vec<u64> = alloc::vec::Vec::new();
    if heap.try_reserve_exact(1).is_err() {
        kprintln!("error: protect: no heap room for the heap probe (errno=-12)");
        return;
    }
    heap.push(0);
    let stack = 0u64;
    let arch = mm.arch();
    let first_present = mm.sparse().sections().next().map(|(nr, _)| nr);
    let last_present = mm.sparse().sections().last().map(|(nr, _)| nr);
    let nx = nx(mm.features());
    let memmap = first_present.map(|nr| {
        let va = arch.pfn_to_page(arch.section_start(nr)).0;
        ("memmap", va, Want::Data)
    });
    let memmap_last = last_present
        .filter(|&nr| Some(nr) != first_present)
        .map(|nr| {
            let va = arch.pfn_to_page(arch.section_start(nr)).0;
            ("memmap.last", va, Want::Data)
        });
    let targets = [
        Some(("text", protect::<A> as *const () as u64, Want::Text)),
        Some(("rodata", &raw const READ_ONLY_WORD as u64, Want::ReadOnly)),
        Some(("data", DATA_WORD.as_ptr() as u64, Want::Data)),
        Some(("heap", heap.as_ptr() as u64, Want::Data)),
        Some(("stack", &raw const stack as u64, Want::Data)),
        memmap,
        memmap_last,
        Some(("vmemmap-hole", mm.vmemmap_hole().1, Want::Unmapped)),
    ];
    let targets = targets.iter().flatten();
    let mut failed = 0;
    for &(what, va, want) in targets.clone() {
        if !check::<A>(kernel, what, va, want, nx) {
            failed += 1;
        }
    }
    DATA_WORD.fetch_add(1, Ordering::Relaxed);
    kprintln!(
        "protect.summary checks={} failed={failed} nx={} result={}",
        targets.count(),
        u8::from(nx),
        if failed == 0 { "pass" } else { "FAIL" }
    );
}

/// One target: the tables' view, then the CPU's; prints one record, returns pass.
fn check<A: Arch>(kernel: &Kernel<A>, what: &str, va: u64, want: Want, nx: bool) -> bool {
    let Some(mm) = kernel.mm.as_ref() else {
        return false;
    };
    let translation = mm.translate(va);
    let table_ok = match &translation {
        Ok(t) => {
            let w = t.attrs.contains(EntryAttrs::WRITABLE);
            let x = nx && executable(t, nx);
            match want {
                Want::Text => !w && (x || !nx),
                Want::ReadOnly => !w && !x,
                Want::Data => w && !x,
                Want::Unmapped => false,
            }
        }
        Err(_) => want == Want::Unmapped,
    };
    let mapping = Mapping { translation, nx };
    let aligned = va & !7;
    let read = A::probe(aligned, Access::Read);
    let (write, exec) = match (want, read) {
        // Write back what was read: a store that is (wrongly) allowed changes nothing.
        (Want::Text | Want::ReadOnly | Want::Data, Ok(value)) => {
            let write = A::probe(aligned, Access::Write(value));
            // Branching to text would run it; only non-text targets are jumped to.
            let exec = (want != Want::Text && nx).then(|| A::probe(aligned, Access::Execute));
            (Some(write), exec)
        }
        _ => (None, None),
    };
    let cpu_ok = match want {
        Want::Text | Want::ReadOnly => read.is_ok() && write.is_some_and(|w| w.is_err()),
        Want::Data => read.is_ok() && write.is_some_and(|w| w.is_ok()),
        Want::Unmapped => read.is_err(),
    } && exec.is_none_or(|e| e.is_err());
    let pass = table_ok && cpu_ok;
    kprintln!(
        "protect: what={what} va={va:#x} want={} {mapping} read={}{} write={} jump={} result={}",
        want.name(),
        probe::outcome(&read),
        fault_suffix(&read),
        write.map_or("-", |w| probe::outcome(&w)),
        exec.map_or(if nx { "-" } else { "no-nx" }, |e| probe::outcome(&e)),
        if pass { "pass" } else { "FAIL" }
    );
    pass
}

/// `(page-translation)` after a faulting read, so the line names the exception.
fn fault_suffix(result: &Result<u64, ProbeFault>) -> FaultSuffix<'_> {
    FaultSuffix(result)
}

/// What [`fault_suffix`] prints.
struct FaultSuffix<'a>(&'a Result<u64, ProbeFault>);

impl core::fmt::Display for FaultSuffix<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Ok(_) => Ok(()),
            Err(fault) => write!(f, "({})", fault.name),
        }
    }
}

/// The tables' view of a target for its record: `pa=.. leaf=.. writable=.. executable=..`
/// or `walk=<fault>`.
struct Mapping {
    translation: Result<Translation, crate::mm::walk::WalkFault>,
    nx: bool,
}

impl core::fmt::Display for Mapping {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match &self.translation {
            Ok(t) => write!(
                f,
                "pa={:#x} leaf={} writable={} executable={}",
                t.phys.0,
                t.leaf_bytes,
                u8::from(t.attrs.contains(EntryAttrs::WRITABLE)),
                u8::from(self.nx && executable(t, self.nx))
            ),
            Err(fault) => write!(f, "walk={fault:?}"),
        }
    }
}
