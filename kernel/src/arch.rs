//! The interface every architecture port implements.
//!
//! The kernel never names an architecture: each arch crate implements [`Arch`] and
//! calls [`crate::main`] with itself as the type parameter. A method missing from one
//! port fails that port's build. All methods are associated functions: there is one
//! CPU and one console, so there is no `self` to carry.

use core::fmt;

use alloc::boxed::Box;
use alloc::vec::Vec;

use crate::BootInfo;
use crate::hotplug::event::EventSource;
use crate::mm::live::LiveConfig;
use crate::mm::memory_block::MemoryBlock;
use crate::mm::vmemmap::VmemmapArch;
use crate::probe::{Access, ProbeFault};

/// One architecture port.
pub trait Arch: 'static {
    /// Short architecture name printed in records, e.g. `"s390x"`.
    const NAME: &'static str;

    /// The translation-table format this CPU walks, with its vmemmap walker and
    /// memory-model constants (`arch/<arch>/src/vmemmap.rs`).
    type PageTable: VmemmapArch;

    /// Writes raw bytes to the boot console (blocking, no buffering).
    fn console_write(bytes: &[u8]);

    /// Returns the next byte typed at the console, or `None` when nothing is waiting.
    fn console_read() -> Option<u8>;

    /// Stops the machine with `status` after the kernel printed `@@EXIT status=N`.
    fn exit(status: u32) -> !;

    /// Stops this CPU for good without ending the machine (used by `selftest=hang`).
    fn halt() -> !;

    /// Waits a little for something to happen (console input); may return at once.
    fn relax();

    /// Nanoseconds since an arbitrary point early in boot, monotonic.
    fn timestamp_ns() -> u64;

    /// The name of the clock behind [`Arch::timestamp_ns`], e.g. `"stckf"`.
    fn clock_name() -> &'static str;

    /// Returns a pointer through which the kernel may access physical address `pa`.
    fn phys_to_virt(pa: u64) -> *mut u8;

    /// What the live memory manager needs: the memory-model constants, the CPU features
    /// the vmemmap walker may use, the root of the tables the CPU is using, the direct map
    /// and the TLB flush.
    fn mm_config() -> LiveConfig;

    /// The memory-block size, computed as Linux's `memory_block_size_bytes()` computes it
    /// on this arch from what the machine reported at boot: the unit `add_memory` takes.
    fn memory_block(boot: &BootInfo) -> MemoryBlock;

    /// The hotplug event sources this machine has (memory-hotplug controllers,
    /// virtio-mem devices), probed once after the memory manager is up.
    fn hotplug_sources(boot: &BootInfo) -> Vec<Box<dyn EventSource>>;

    /// Translates `va` with the CPU's own translation instruction (s390x LRAG, aarch64
    /// AT S1E1R), for comparison with the software walk; `None` when it faults, and when
    /// the CPU has no such instruction (x86_64).
    fn hw_translate(va: u64) -> Option<u64>;

    /// Makes the CPU take an exception on purpose (`selftest=fault`), to prove the
    /// exception path reports and fails the run.
    fn provoke_fault();

    /// Performs `access` at virtual address `va` with the CPU's fault caught: the value
    /// read (or written), or the exception taken, after which the kernel carries on
    /// (`peek`, `poke`, `jump`, `protect`). An `Execute` that does not fault runs
    /// whatever is at `va`: use it only where a fault is expected.
    fn probe(va: u64, access: Access) -> Result<u64, ProbeFault>;

    /// Writes the `cpu` report (one or more `key=value` lines) for the shell.
    fn cpu_report(out: &mut dyn fmt::Write) -> fmt::Result;
}
