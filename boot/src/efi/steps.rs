//! The steps both arches' flows share, in the order they run: the firmware's ACPI tables,
//! the buffers the hand-off needs, the `entering` line, ExitBootServices with the Limine
//! memory map built from UEFI's, and the HHDM and kernel mappings of the hand-off tables.

use alloc::format;
use alloc::string::String;

use boot::acpi::Tables as AcpiTables;
use boot::memmap::Builder;
use boot::paging::{self, Format, MapError, Mapper, Perm};
use boot::protocol::MemmapEntry;
use boot::revision::Revision;
use uefi::boot as bs;
use uefi::mem::memory_map::MemoryMap;
use uefi::system;
use uefi::table::cfg::ConfigTableEntry;

use super::arena::{Arena, Frames};
use super::load::Kernel;
use super::{fatal, say};

/// Capacity of the Limine memory map (Limine uses the same).
pub const MAX_MEMMAP: usize = 1024;
/// Frames reserved for the page tables of the hand-off (8 MiB).
const TABLE_FRAMES: usize = 2048;

/// The RSDP from the UEFI configuration table (ACPI 2.0 preferred), physical.
pub fn rsdp() -> Option<u64> {
    system::with_config_table(|t| {
        let find = |g| t.iter().find(|e| e.guid == g).map(|e| e.address as u64);
        find(ConfigTableEntry::ACPI2_GUID).or_else(|| find(ConfigTableEntry::ACPI_GUID))
    })
}

/// Copies physical memory at `pa` into `buf` (identity-mapped under UEFI).
pub fn read_phys(pa: u64, buf: &mut [u8]) {
    // SAFETY: firmware tables (ACPI, DTB) are in memory the firmware identity-maps;
    // reads have no side effects there.
    unsafe { core::ptr::copy_nonoverlapping(pa as *const u8, buf.as_mut_ptr(), buf.len()) };
}

/// The ACPI tables the firmware published, walked from the RSDP (`None`: no RSDP).
pub fn acpi_tables() -> Option<AcpiTables> {
    rsdp().map(|rsdp| boot::acpi::walk(rsdp, &mut |pa, buf| read_phys(pa, buf)))
}

/// What the hand-off is built in: response arena, kernel stack, page-table frames and
/// the memory-map buffer, all allocated before ExitBootServices.
pub struct Buffers {
    pub arena: Arena,
    pub stack: Arena,
    pub frames: Frames,
    pub memmap: Arena,
}

impl Buffers {
    /// Allocates them for `kernel` (its requested stack size).
    pub fn new(kernel: &Kernel) -> Result<Buffers, String> {
        Ok(Buffers {
            arena: Arena::new(16)?,
            stack: Arena::new(kernel.stack_size.div_ceil(4096) as usize)?,
            frames: Frames::new(TABLE_FRAMES)?,
            memmap: Arena::new((MAX_MEMMAP * (24 + 8)).div_ceil(4096))?,
        })
    }
}

/// `hotmem-boot: entering PATH at ENTRY (base revision N...), stack N KiB{suffix}`.
pub fn say_entering(kernel: &Kernel, suffix: &str) {
    say!(
        "hotmem-boot: entering {} at {:#x} (base revision {}{}), stack {} KiB{suffix}",
        kernel.path,
        kernel.entry,
        kernel.revision.used.0,
        if kernel.revision.supported {
            ""
        } else {
            ", requested revision unsupported"
        },
        kernel.stack_size / 1024
    );
}

/// Leaves boot services and builds the Limine memory map in `buffer` from UEFI's
/// (under `rev`'s rules, the ACPI tables kept mapped where `rev` promises it); returns
/// the entries and the pointer array the response will hold.
pub fn exit_boot_services(
    buffer: &Arena,
    rev: Revision,
    acpi: Option<&AcpiTables>,
) -> (&'static [MemmapEntry], &'static mut [u64]) {
    // SAFETY: nothing borrowed from boot services is used after this point: the
    // arenas, the kernel block, the DTB copy and the file buffer are LoaderData/kernel
    // pages that stay valid, and no protocol handles are held.
    let efi_map = unsafe { bs::exit_boot_services(None) };
    let (entries, ptrs) = buffer.split_memmap(MAX_MEMMAP);
    let mut b = Builder::new(entries);
    for d in efi_map.entries() {
        if b.push_efi(d.ty.0, d.phys_start, d.page_count, rev).is_err() {
            fatal("memory map overflow");
        }
    }
    b.normalize();
    if let Some(t) = acpi.filter(|_| rev.acpi_tables_mapped()) {
        for &(s, e) in t.ranges() {
            if b.ensure_mapped(s, e, rev).is_err() {
                fatal("memory map overflow");
            }
        }
    }
    (b.into_entries(), ptrs)
}

/// Maps the HHDM at `hhdm` (the ranges `rev` covers, large leaves where aligned) and
/// the kernel's segments with W^X into `m`.
pub fn map_hhdm_and_kernel<A: Format>(
    m: &mut Mapper<'_, Frames, A>,
    hhdm: u64,
    kernel: &Kernel,
    map: &[MemmapEntry],
    rev: Revision,
) {
    let mut ranges = [(0u64, 0u64); MAX_MEMMAP + 1];
    let n =
        paging::hhdm_ranges(map, rev, &mut ranges).unwrap_or_else(|| fatal("too many HHDM ranges"));
    for &(s, e) in &ranges[..n] {
        check(m.map(hhdm + s, s, e - s, Perm::RWX), "HHDM");
    }
    for seg in &kernel.image.segments {
        let v = seg.vaddr & !0xfff;
        let end = (seg.vaddr + seg.memsz).next_multiple_of(4096);
        let perm = Perm {
            write: seg.flags & boot::elf::PF_W != 0,
            exec: seg.flags & boot::elf::PF_X != 0,
        };
        check(
            m.map(v, kernel.phys + (v - kernel.vbase), end - v, perm),
            "kernel",
        );
    }
}

/// A new, empty address space of `format` from `frames`.
pub fn new_mapper<A: Format>(frames: &mut Frames, format: A) -> Mapper<'_, Frames, A> {
    Mapper::new(frames, format).unwrap_or_else(|_| fatal("no page-table frames"))
}

/// A mapping that failed is fatal (boot services are gone).
pub fn check(r: Result<(), MapError>, what: &str) {
    if let Err(e) = r {
        fatal(&format!("mapping {what}: {e:?}"));
    }
}
