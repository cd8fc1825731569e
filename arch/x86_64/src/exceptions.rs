//! The IDT: every CPU exception prints one record line (vector, name, error code, RIP,
//! CR2, RSP) and ends the run with status 2 through the kernel's exit protocol — except
//! a #PF or #GP taken by a guarded probe ([`crate::probe`]), which resumes. The
//! only device interrupts are the SCI ([`crate::sci`]) and the APIC's spurious vector.

use spin::Once;
use x86_64::registers::control::Cr2;
use x86_64::structures::idt::{InterruptDescriptorTable, InterruptStackFrame, PageFaultErrorCode};

use crate::gdt;

/// Exit status of a run that took an unexpected CPU exception.
pub const FAULT_STATUS: u32 = 2;

static IDT: Once<InterruptDescriptorTable> = Once::new();

/// Builds and loads the IDT.
pub fn init() {
    IDT.call_once(build).load();
}

fn build() -> InterruptDescriptorTable {
    let mut idt = InterruptDescriptorTable::new();
    idt.divide_error.set_handler_fn(de);
    idt.debug.set_handler_fn(db);
    idt.breakpoint.set_handler_fn(bp);
    idt.overflow.set_handler_fn(of);
    idt.bound_range_exceeded.set_handler_fn(br);
    idt.invalid_opcode.set_handler_fn(ud);
    idt.device_not_available.set_handler_fn(nm);
    idt.invalid_tss.set_handler_fn(ts);
    idt.segment_not_present.set_handler_fn(np);
    idt.stack_segment_fault.set_handler_fn(ss);
    idt.general_protection_fault.set_handler_fn(gp);
    idt.x87_floating_point.set_handler_fn(mf);
    idt.alignment_check.set_handler_fn(ac);
    idt.simd_floating_point.set_handler_fn(xm);
    idt[crate::sci::SCI_VECTOR].set_handler_fn(crate::sci::interrupt);
    idt[crate::apic::SPURIOUS_VECTOR].set_handler_fn(crate::sci::spurious);
    // SAFETY: the IST indices name stacks set up in the TSS by `gdt::init`, which runs
    // before the IDT is loaded.
    unsafe {
        idt.double_fault
            .set_handler_fn(df)
            .set_stack_index(gdt::IST_DOUBLE_FAULT);
        idt.non_maskable_interrupt
            .set_handler_fn(nmi)
            .set_stack_index(gdt::IST_NMI);
        idt.machine_check
            .set_handler_fn(mc)
            .set_stack_index(gdt::IST_NMI);
        idt.page_fault
            .set_handler_fn(pf)
            .set_stack_index(gdt::IST_PAGE_FAULT);
    }
    idt
}

/// Prints the exception record and ends the run.
fn report(vector: u8, name: &str, error: Option<u64>, frame: &InterruptStackFrame) -> ! {
    let cr2 = Cr2::read_raw();
    kernel::kprintln!(
        "exception: vector={vector} name={name} error={} rip={:#x} cr2={cr2:#x} rsp={:#x} cs={:#x}",
        ErrorCode(error),
        frame.instruction_pointer.as_u64(),
        frame.stack_pointer.as_u64(),
        frame.code_segment.0,
    );
    if vector == 14 {
        kernel::probe::report_vmemmap_fault(&crate::vmemmap::MM, "#PF", cr2);
    }
    kernel::console::exit(FAULT_STATUS)
}

/// `0x..` for an error code, `none` for exceptions that push none.
struct ErrorCode(Option<u64>);

impl core::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Some(e) => write!(f, "{e:#x}"),
            None => f.write_str("none"),
        }
    }
}

macro_rules! plain {
    ($($f:ident $v:literal $n:literal;)*) => {$(
        extern "x86-interrupt" fn $f(frame: InterruptStackFrame) {
            report($v, $n, None, &frame)
        }
    )*};
}

macro_rules! with_code {
    ($($f:ident $v:literal $n:literal;)*) => {$(
        extern "x86-interrupt" fn $f(frame: InterruptStackFrame, code: u64) {
            report($v, $n, Some(code), &frame)
        }
    )*};
}

plain! {
    de 0 "#DE"; db 1 "#DB"; nmi 2 "NMI"; bp 3 "#BP"; of 4 "#OF"; br 5 "#BR";
    ud 6 "#UD"; nm 7 "#NM"; mf 16 "#MF"; xm 19 "#XM";
}

with_code! {
    ts 10 "#TS"; np 11 "#NP"; ss 12 "#SS"; ac 17 "#AC";
}

/// #GP: a guarded probe of a non-canonical address resumes; anything else is fatal.
extern "x86-interrupt" fn gp(mut frame: InterruptStackFrame, code: u64) {
    if crate::probe::recover(&mut frame, 13, code, 0) {
        return;
    }
    report(13, "#GP", Some(code), &frame)
}

extern "x86-interrupt" fn df(frame: InterruptStackFrame, code: u64) -> ! {
    report(8, "#DF", Some(code), &frame)
}

extern "x86-interrupt" fn mc(frame: InterruptStackFrame) -> ! {
    report(18, "#MC", None, &frame)
}

/// #PF: a guarded probe resumes at its recovery label; anything else is fatal.
extern "x86-interrupt" fn pf(mut frame: InterruptStackFrame, code: PageFaultErrorCode) {
    if crate::probe::recover(&mut frame, 14, code.bits(), Cr2::read_raw()) {
        return;
    }
    report(14, "#PF", Some(code.bits()), &frame)
}
