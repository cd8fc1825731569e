//! Guarded accesses: read, write or jump to an address with the CPU's fault caught, so
//! the shell can touch memory that may be unmapped or protected and keep running.
//!
//! Each port arms a recovery address before the one access and disarms it after; its
//! exception handler, finding it armed, records what the CPU reported and resumes there
//! (Linux's exception-table fixups, reduced to a single slot: one CPU, no nesting).

use core::fmt;

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
