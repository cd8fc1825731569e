//! Guarded accesses: read, write or jump to an address with the CPU's fault caught, so
//! the shell can touch memory that may be unmapped or protected and keep running.
//!
//! Each port arms a recovery address before the one access and disarms it after; its
//! exception handler, finding it armed, records what the CPU reported and resumes there
//! (Linux's exception-table fixups, reduced to a single slot: one CPU, no nesting).

use core::fmt;

use crate::mm::addr::VirtAddr;
use crate::mm::arch::MmArch;

/// The one access a probe performs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Load a doubleword.
    Read,
    /// Store this doubleword.
    Write(u64),
    /// Branch to the address (an instruction fetch), expecting a fault.
    Execute,
}

impl Access {
    /// The access as the ports' probe asm takes it: `(kind, value)` with kind 0 read,
    /// 1 write (of `value`), 2 execute.
    pub const fn encode(self) -> (u64, u64) {
        match self {
            Access::Read => (0, 0),
            Access::Write(v) => (1, v),
            Access::Execute => (2, 0),
        }
    }

    /// `read`, `write` or `exec`, as records print it.
    pub fn name(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write(_) => "write",
            Access::Execute => "exec",
        }
    }
}

/// The exception a probe took, as the CPU reported it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeFault {
    /// The exception's name, e.g. `page-translation`, `#PF`, `data-abort`.
    pub name: &'static str,
    /// The architected code: s390x program-interruption code, x86 error code, aarch64 ESR.
    pub code: u64,
    /// The faulting address the CPU reported (TEID page, CR2, FAR).
    pub addr: u64,
}

impl fmt::Display for ProbeFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "fault={} code={:#x} fault.addr={:#x}",
            self.name, self.code, self.addr
        )
    }
}

/// Whether an access of this kind came back without a fault; for tables and records.
pub fn outcome(result: &Result<u64, ProbeFault>) -> &'static str {
    if result.is_ok() { "ok" } else { "fault" }
}

/// What a faulting address means to the memory model, when it is in the vmemmap: the
/// struct page of `pfn`, in `section`. Printed after a probe's fault and by the ports'
/// fatal exception reports, so a touch of an unpopulated memmap names itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmemmapNote {
    /// The frame whose struct page the address holds.
    pub pfn: u64,
    /// Its memory section.
    pub section: u64,
}

impl fmt::Display for VmemmapNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "in=vmemmap pfn={:#x} section={}", self.pfn, self.section)
    }
}

/// The [`VmemmapNote`] for `va` under `arch`'s layout, or `None` outside the vmemmap.
pub fn vmemmap_note(arch: &MmArch, va: u64) -> Option<VmemmapNote> {
    if !(arch.vmemmap_base..arch.vmemmap_end()).contains(&va) {
        return None;
    }
    let pfn = arch.page_to_pfn(VirtAddr(va));
    Some(VmemmapNote {
        pfn: pfn.0,
        section: arch.section_nr(pfn),
    })
}

/// For the ports' fatal exception reports: when `addr` is in `arch`'s vmemmap, prints
/// one more line naming the frame whose struct page is not mapped there.
pub fn report_vmemmap_fault(arch: &MmArch, exception: &str, addr: u64) {
    if let Some(note) = vmemmap_note(arch, addr) {
        crate::kprintln!(
            "exception: {exception} at {addr:#x} {note} (no struct page mapped there)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mm::addr::Pfn;

    #[test]
    fn vmemmap_addresses_name_their_frame_and_section() {
        for arch in &crate::mm::sim::models::ALL {
            let pfn = Pfn(arch.pages_per_section() * 5 + 7);
            let va = arch.pfn_to_page(pfn).0 + 8;
            let note = vmemmap_note(arch, va).expect("inside");
            assert_eq!((note.pfn, note.section), (pfn.0, 5));
            assert_eq!(vmemmap_note(arch, arch.vmemmap_base - 1), None);
            assert_eq!(vmemmap_note(arch, arch.vmemmap_end()), None);
        }
    }
}
