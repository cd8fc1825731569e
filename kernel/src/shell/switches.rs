//! The memory manager's switches: `semantics [hotmem|linux|rfc-2017]` and
//! `vmemmap trace on|off`, also on the command line as `mm.semantics=` and
//! `vmemmap.trace=` (applied before the boot-time regions are populated, so their
//! populate is traced and follows the chosen rules).

use alloc::boxed::Box;

use crate::firmware::cmdline;
use crate::mm::live::LiveMm;
use crate::mm::semantics::Semantics;
use crate::mm::vmemmap::{TraceEvent, Tracer, VmemmapArch};
use crate::{Arch, Kernel, kprintln};

/// Applies `mm.semantics=` and `vmemmap.trace=` from the command line; a bad value is
/// one error line and changes nothing.
pub fn from_cmdline<F: VmemmapArch>(mm: &mut LiveMm<F>, line: &str) {
    if let Some(text) = cmdline::value(line, "mm.semantics") {
        match Semantics::parse(text) {
            Some(semantics) => set_semantics(mm, semantics, "cmdline"),
            None => kprintln!(
                "error: mm.semantics={text}: unknown (hotmem, linux or rfc-2017); staying {}",
                mm.sparse().vmemmap().semantics()
            ),
        }
    }
    if let Some(text) = cmdline::value(line, "vmemmap.trace") {
        match parse_on_off(text) {
            Some(on) => set_trace(mm, on, "cmdline"),
            None => kprintln!("error: vmemmap.trace={text}: expected on or off; trace stays off"),
        }
    }
}

/// `semantics`: shows the rules in force; `semantics NAME` changes them for every later
/// populate and free.
pub fn semantics<A: Arch>(kernel: &mut Kernel<A>, arg: Option<&str>) {
    let Some(mm) = kernel.mm.as_mut() else {
        kprintln!("error: semantics: memory manager is down (see the boot log)");
        return;
    };
    match arg {
        None => kprintln!(
            "mm.semantics mode={} choices=hotmem,linux,rfc-2017",
            mm.sparse().vmemmap().semantics()
        ),
        Some(text) => match Semantics::parse(text) {
            Some(semantics) => set_semantics(mm, semantics, "shell"),
            None => kprintln!("error: semantics: unknown '{text}' (hotmem, linux or rfc-2017)"),
        },
    }
}

/// `vmemmap trace on|off`.
pub fn trace<A: Arch>(kernel: &mut Kernel<A>, arg: Option<&str>) {
    let Some(mm) = kernel.mm.as_mut() else {
        kprintln!("error: vmemmap: memory manager is down (see the boot log)");
        return;
    };
    match arg.and_then(parse_on_off) {
        Some(on) => set_trace(mm, on, "shell"),
        None => kprintln!("error: vmemmap: usage: vmemmap trace on|off"),
    }
}

fn parse_on_off(text: &str) -> Option<bool> {
    match text {
        "on" | "1" => Some(true),
        "off" | "0" => Some(false),
        _ => None,
    }
}

fn set_semantics<F: VmemmapArch>(mm: &mut LiveMm<F>, semantics: Semantics, source: &str) {
    let was = mm.sparse().vmemmap().semantics();
    mm.vmemmap_mut().set_semantics(semantics);
    kprintln!("mm.semantics mode={semantics} was={was} source={source}");
}

fn set_trace<F: VmemmapArch>(mm: &mut LiveMm<F>, on: bool, source: &str) {
    let tracer: Option<Tracer> = if on {
        Some(Box::new(|event: &TraceEvent| kprintln!("{event}")))
    } else {
        None
    };
    mm.vmemmap_mut().set_tracer(tracer);
    kprintln!(
        "vmemmap.trace state={} source={source}",
        if on { "on" } else { "off" }
    );
}
