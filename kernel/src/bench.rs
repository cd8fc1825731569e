//! The in-kernel benchmark (`bench [quick|full]`, or `bench=quick|full` on the command
//! line to run it at boot and exit): for region sizes from 128 MiB up to what the RAM
//! hidden by `mem=` allows, a device region is added with its nvdimm-layout altmap and
//! each phase is timed separately — sections activation, vmemmap populate (tables and
//! leaves), struct-page initialisation, verification — plus a plain `memset` of the same
//! memmap bytes as the roofline, the first (cold) `memset` of them — what a hot-add's
//! init pass pays on memory the host has not backed yet — and the same bytes zeroed by
//! the init pass's own streaming store (its write floor). Each size is measured
//! [`RUNS`] times and every figure is the median (the cold memset: the first run's).
//! One `bench.result` record per size.

use crate::hotplug::{device, verify};
use crate::mm::addr::PAGE_SIZE;
use crate::mm::nvdimm::nvdimm_setup;
use crate::{Arch, Kernel, kprintln};

/// Largest size measured: 16 GiB (x86_64 and aarch64 configurations go that far; s390x
/// is limited by its RAM).
const MAX_SIZE: u64 = 16 << 30;
/// Sizes of a quick run stop here.
const QUICK_MAX: u64 = 1 << 30;
/// The smallest size: one x86_64/aarch64 section.
const MIN_SIZE: u64 = 128 << 20;
/// Measurements per size (medians are recorded).
pub const RUNS: usize = 3;

/// One size's figures, in nanoseconds.
#[derive(Clone, Copy, Debug, Default)]
pub struct BenchResult {
    /// Region size in bytes.
    pub size: u64,
    /// Span checks and subsection activation.
    pub activate_ns: u64,
    /// vmemmap populate: tables and leaves.
    pub populate_ns: u64,
    /// Struct-page initialisation (memmap storage and ZONE_DEVICE data pages).
    pub init_ns: u64,
    /// Verification through the MMU.
    pub verify_ns: u64,
    /// `memset` of the memmap bytes (the roofline), on memory already written once.
    pub memset_ns: u64,
    /// The first `memset` of the memmap bytes: memory the guest has never written, as a
    /// hot-add's init pass finds it (the host backs each page on first touch).
    pub memset_cold_ns: u64,
    /// The memmap bytes zeroed by the init pass's streaming store (the arch fill hook),
    /// warm: the write floor the init pass can reach.
    pub zero_ns: u64,
    /// Memmap bytes of the region.
    pub memmap_bytes: u64,
    /// Page-table pages the populate added.
    pub tables: u64,
    /// Leaves the populate mapped.
    pub leaves: u64,
}

/// Runs the benchmark; returns false (after one error line) when it cannot run.
pub fn run<A: Arch>(kernel: &mut Kernel<A>, quick: bool) -> bool {
    let Some(window) = kernel
        .hidden
        .iter()
        .max_by_key(|r| r.end - r.start)
        .cloned()
    else {
        kprintln!(
            "error: bench: needs RAM hidden by mem= to use as regions (e.g. -m 17G with mem=512M)"
        );
        return false;
    };
    let Some(mm) = kernel.mm.as_mut() else {
        kprintln!("error: bench: memory manager is down");
        return false;
    };
    let arch = mm.arch();
    let start = window.start.next_multiple_of(arch.section_bytes());
    let room = window.end.saturating_sub(start);
    let limit = if quick { QUICK_MAX } else { MAX_SIZE };
    kprintln!(
        "bench.start arch={} clock={} window={:#x}-{:#x} max_size={}",
        A::NAME,
        A::clock_name(),
        window.start,
        window.end,
        limit.min(room)
    );
    let mut size = MIN_SIZE;
    while size <= room && size <= limit {
        let mut runs = alloc::vec::Vec::with_capacity(RUNS);
        for _ in 0..RUNS {
            match measure::<A>(mm, start, size) {
                Some(r) => runs.push(r),
                None => return false,
            }
        }
        print(&median(&runs));
        size *= 2;
    }
    kprintln!("bench.done");
    true
}

/// Populates, memsets, initialises, verifies and removes one region of `size` bytes at `start`.
fn measure<A: Arch>(
    mm: &mut crate::mm::live::LiveMm<A::PageTable>,
    start: u64,
    size: u64,
) -> Option<BenchResult> {
    let arch = mm.arch();
    let (_, altmap) = match nvdimm_setup(arch, start, size, 2 << 20) {
        Ok(setup) => setup,
        Err(e) => {
            kprintln!("error: bench: size {size:#x}: {e:?}");
            return None;
        }
    };
    let before = *mm.sparse().vmemmap().stats();
    let tables_before = mm.table_pages();
    let added = device::populate(mm, u32::MAX - 1, start, size, altmap);
    let mut memory = match added {
        Ok(memory) => memory,
        Err(e) => {
            kprintln!("error: bench: add of {size:#x} at {start:#x} failed: {e:?}");
            return None;
        }
    };
    let phases = mm.sparse().last_add_times();
    let after = *mm.sparse().vmemmap().stats();
    let tables_after = mm.table_pages();
    // The first memset is the cold one (first touch of the memory, host-side backing
    // included); the roofline and the initialisation then both run on memory the host
    // has already backed.
    let memmap_bytes = size / PAGE_SIZE * crate::mm::page::STRUCT_PAGE_SIZE;
    let memmap_va = arch.pfn_to_page(memory.range.start).0;
    let memset_cold_ns = memset_memmap::<A>(memmap_va, memmap_bytes);
    let memset_ns = memset_memmap::<A>(memmap_va, memmap_bytes);
    // The same bytes zeroed through the init pass's own streaming store (the arch's fill
    // hook with an all-zero struct page): the write floor of the init path.
    let t0 = A::timestamp_ns();
    crate::mm::memmap::init_with(mm.memmap_mut(), arch, memory.range.clone(), |_| {
        crate::mm::page::Page::ZEROED
    });
    let zero_ns = A::timestamp_ns().saturating_sub(t0);
    let t0 = A::timestamp_ns();
    device::init_pages(mm, &memory);
    let init_ns = A::timestamp_ns().saturating_sub(t0);
    let t1 = A::timestamp_ns();
    let report = verify::verify(mm, &memory);
    let verify_ns = A::timestamp_ns().saturating_sub(t1);
    if !report.passed() {
        kprintln!("error: bench: verification failed at size {size:#x}: {report:?}");
    }
    if let Err(e) = device::remove(mm, &mut memory) {
        kprintln!("error: bench: remove of {size:#x} failed: {e:?}");
        return None;
    }
    Some(BenchResult {
        size,
        activate_ns: phases.activate_ns,
        populate_ns: phases.populate_ns,
        init_ns,
        verify_ns,
        memset_ns,
        memset_cold_ns,
        zero_ns,
        memmap_bytes,
        tables: tables_after.saturating_sub(tables_before),
        leaves: after.leaves().saturating_sub(before.leaves()),
    })
}

/// Writes `bytes` zero bytes at the memmap address `va` and returns the time taken.
fn memset_memmap<A: Arch>(va: u64, bytes: u64) -> u64 {
    let t0 = A::timestamp_ns();
    // SAFETY: `[va, va + bytes)` is the memmap of a region that is populated right now
    // (mapped, writable, owned by the benchmark until its removal right after); every
    // struct page is written again by the init pass before anything reads it.
    unsafe { core::ptr::write_bytes(va as *mut u8, 0, bytes as usize) };
    core::hint::black_box(va);
    A::timestamp_ns().saturating_sub(t0)
}

/// Each figure's median over `runs`; the cold memset is the first run's (the later runs
/// find the memory backed).
fn median(runs: &[BenchResult]) -> BenchResult {
    let pick = |f: fn(&BenchResult) -> u64| {
        let mut values: alloc::vec::Vec<u64> = runs.iter().map(f).collect();
        values.sort_unstable();
        values[values.len() / 2]
    };
    BenchResult {
        activate_ns: pick(|r| r.activate_ns),
        populate_ns: pick(|r| r.populate_ns),
        init_ns: pick(|r| r.init_ns),
        verify_ns: pick(|r| r.verify_ns),
        memset_ns: pick(|r| r.memset_ns),
        zero_ns: pick(|r| r.zero_ns),
        memset_cold_ns: runs[0].memset_cold_ns,
        ..runs[0]
    }
}

fn print(r: &BenchResult) {
    let work = r.populate_ns + r.init_ns;
    let mib_s = (r.memmap_bytes * 1_000_000_000)
        .checked_div(work)
        .map_or(0, |v| v >> 20);
    let roofline_permille = (r.memset_ns * 1000).checked_div(work).unwrap_or(0);
    kprintln!(
        "bench.result size={} activate_ns={} populate_ns={} init_ns={} verify_ns={} memset_ns={} memset_cold_ns={} zero_ns={} memmap_bytes={} memmap_mib_s={mib_s} roofline_permille={roofline_permille} tables={} leaves={} runs={RUNS}",
        r.size,
        r.activate_ns,
        r.populate_ns,
        r.init_ns,
        r.verify_ns,
        r.memset_ns,
        r.memset_cold_ns,
        r.zero_ns,
        r.memmap_bytes,
        r.tables,
        r.leaves
    );
}
