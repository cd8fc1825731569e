//! The aarch64 side of the loader (BOOTAA64.EFI on QEMU `virt` under AAVMF): console,
//! firmware tables (ACPI RSDP, DTB), the DTB response, and the hand-off at EL1 with
//! TTBR1 tables (HHDM + kernel) and a TTBR0 identity page for the trampoline.
//!
//! The flow matches the x86_64 one in `efi/mod.rs` step for step; only the tables, the
//! cache maintenance and the entry state differ.

mod fwcfg;
mod handoff;
mod io;

pub use fwcfg::cmdline_override;
pub use io::Serial;

use alloc::string::String;
use core::convert::Infallible;

use boot::elf::{EM_AARCH64, PF_W, PF_X};
use boot::memmap::Builder;
use boot::paging::aarch64::{Arm64Format, HHDM_4LEVEL as HHDM, Mapper, tcr};
use boot::paging::{self, MapError, Perm};
use boot::protocol::{self as p, MemmapEntry, REQ_RESPONSE};
use boot::revision::Revision;
use uefi::boot::{self as bs, AllocateType, MemoryType};
use uefi::mem::memory_map::MemoryMap;
use uefi::system;
use uefi::table::cfg::ConfigTableEntry;

use self::handoff::Handoff;
use super::arena::{Arena, Frames};
use super::load::Kernel;
use super::{err, fatal, responses, say};

/// `e_machine` of the kernels this loader boots.
pub const ELF_MACHINE: u16 = EM_AARCH64;

/// Device Tree request ID (last two words).
const DTB_REQUEST: [u64; 2] = [0xb40ddb48fb54bac7, 0x545081493f81ffb7];

/// EFI configuration-table GUID of a flattened device tree.
const DTB_GUID: uefi::Guid = uefi::guid!("b1b621d5-f19c-41a5-830b-d9152c69aae0");

/// Capacity of the Limine memory map (Limine uses the same).
const MAX_MEMMAP: usize = 1024;
/// Frames reserved for the page tables of the hand-off (8 MiB).
const TABLE_FRAMES: usize = 2048;

/// The RSDP from the UEFI configuration table (ACPI 2.0 preferred), physical.
pub fn rsdp() -> Option<u64> {
    system::with_config_table(|t| {
        let find = |g| t.iter().find(|e| e.guid == g).map(|e| e.address as u64);
        find(ConfigTableEntry::ACPI2_GUID).or_else(|| find(ConfigTableEntry::ACPI_GUID))
    })
}

/// The DTB from the UEFI configuration table (present with `-M virt,acpi=off`).
fn dtb() -> Option<u64> {
    system::with_config_table(|t| {
        t.iter()
            .find(|e| e.guid == DTB_GUID)
            .map(|e| e.address as u64)
    })
}

/// Copies physical memory at `pa` into `buf` (identity-mapped under UEFI).
pub fn read_phys(pa: u64, buf: &mut [u8]) {
    // SAFETY: firmware tables (ACPI, DTB) are in memory the firmware identity-maps;
    // reads have no side effects there.
    unsafe { core::ptr::copy_nonoverlapping(pa as *const u8, buf.as_mut_ptr(), buf.len()) };
}

/// Ends the machine after a failed boot (PSCI `SYSTEM_OFF`; the `@@EXIT` line carries
/// the status).
pub fn fail_exit() {
    io::system_off();
}

/// Stops this CPU.
pub fn halt() -> ! {
    loop {
        io::wfe();
    }
}

/// Loads and enters the kernel; returns only with an error.
pub fn run() -> Result<Infallible, String> {
    let el = (io::sysreg!("currentel") >> 2) & 3;
    if el != 1 {
        return Err(alloc::format!(
            "loader runs at EL{el}; only the EL1 hand-off is implemented"
        ));
    }
    let mut kernel = super::load::load()?;
    let rev = kernel.revision.used;
    let acpi = rsdp().map(|rsdp| boot::acpi::walk(rsdp, &mut |pa, buf| read_phys(pa, buf)));
    if let Some(t) = &acpi {
        say!("hotmem-boot: acpi tables={}", t.len);
    }
    let dtb = dtb().map(copy_dtb).transpose()?;
    let mut arena = Arena::new(16)?;
    let stack = Arena::new(kernel.stack_size.div_ceil(4096) as usize)?;
    let mut frames = Frames::new(TABLE_FRAMES)?;
    let memmap_buf = Arena::new((MAX_MEMMAP * (24 + 8)).div_ceil(4096))?;
    let plan = responses::fill(&mut kernel, &mut arena, HHDM)?;
    serve_dtb(&mut kernel, &mut arena, dtb);
    say!(
        "hotmem-boot: entering {} at {:#x} (base revision {}{}), stack {} KiB, EL1",
        kernel.path,
        kernel.entry,
        rev.0,
        if kernel.revision.supported {
            ""
        } else {
            ", requested revision unsupported"
        },
        kernel.stack_size / 1024
    );
    // SAFETY: nothing borrowed from boot services is used after this point: the
    // arenas, the kernel block, the DTB copy and the file buffer are LoaderData/kernel
    // pages that stay valid, and no protocol handles are held.
    let efi_map = unsafe { bs::exit_boot_services(None) };
    let (entries, ptrs) = memmap_buf.split_memmap(MAX_MEMMAP);
    let mut b = Builder::new(entries);
    for d in efi_map.entries() {
        if b.push_efi(d.ty.0, d.phys_start, d.page_count, rev).is_err() {
            fatal("memory map overflow");
        }
    }
    b.normalize();
    if let Some(t) = acpi.as_ref().filter(|_| rev.acpi_tables_mapped()) {
        for &(s, e) in t.ranges() {
            if b.ensure_mapped(s, e, rev).is_err() {
                fatal("memory map overflow");
            }
        }
    }
    let map = b.entries();
    responses::memmap(&plan, &mut arena, map, ptrs, HHDM);
    let (ttbr0, ttbr1) = build_tables(&mut frames, &kernel, map, rev);
    say!(
        "hotmem-boot: memmap entries={} page-table frames={}",
        map.len(),
        frames.used()
    );
    handoff::sync_icache(kernel.phys, kernel.len);
    handoff::enter(&Handoff {
        ttbr0,
        ttbr1,
        tcr: tcr(io::sysreg!("id_aa64mmfr0_el1") & 0xf),
        mair: handoff::MAIR,
        sctlr: handoff::SCTLR,
        entry: kernel.entry,
        stack_top: HHDM + stack.end(),
        cpacr: if rev.0 >= 6 { 0 } else { 3 << 20 },
    })
}

/// Copies the firmware's DTB (its header's `totalsize`) into LoaderData pages, as
/// the protocol hands over a reclaimable copy; returns the copy's physical address.
fn copy_dtb(pa: u64) -> Result<u64, String> {
    let mut header = [0u8; 8];
    read_phys(pa, &mut header);
    let size = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
    if header[..4] != [0xd0, 0x0d, 0xfe, 0xed] || size > 16 << 20 {
        return Err(alloc::format!("DTB at {pa:#x}: bad header"));
    }
    let pages = size.div_ceil(4096);
    let copy = bs::allocate_pages(AllocateType::AnyPages, MemoryType::LOADER_DATA, pages)
        .map_err(|e| err("allocating the DTB copy", e))?;
    // SAFETY: `copy` is `pages` fresh identity-mapped pages, at least `size` bytes,
    // and the source is the firmware's DTB of `size` bytes.
    unsafe { core::ptr::copy_nonoverlapping(pa as *const u8, copy.as_ptr(), size) };
    say!(
        "hotmem-boot: dtb {pa:#x} size={size} copied to {:#x}",
        copy.as_ptr() as u64
    );
    Ok(copy.as_ptr() as u64)
}

/// Fills the Device Tree response when the kernel asked and firmware carried a DTB.
fn serve_dtb(k: &mut Kernel, a: &mut Arena, dtb: Option<u64>) {
    let Some(r) = k.scan.find(DTB_REQUEST).map(|r| r.offset) else {
        return;
    };
    let Some(copy) = dtb else {
        say!("hotmem-boot: dtb request left NULL (firmware has no device tree; ACPI only)");
        return;
    };
    let resp = a.put(p::OneWord {
        revision: 0,
        value: HHDM + copy,
    });
    boot::scan::set_word(k.bytes(), r + REQ_RESPONSE, HHDM + resp);
    say!("hotmem-boot: served [dtb]");
}

/// Builds TTBR1 (HHDM with blocks where aligned, the kernel with W^X pages) and a
/// TTBR0 identity map of the trampoline; returns `(ttbr0, ttbr1)`.
fn build_tables(frames: &mut Frames, k: &Kernel, map: &[MemmapEntry], rev: Revision) -> (u64, u64) {
    let mut high =
        Mapper::new(frames, Arm64Format).unwrap_or_else(|_| fatal("no page-table frames"));
    let mut ranges = [(0u64, 0u64); MAX_MEMMAP + 1];
    let n =
        paging::hhdm_ranges(map, rev, &mut ranges).unwrap_or_else(|| fatal("too many HHDM ranges"));
    for &(s, e) in &ranges[..n] {
        check(high.map(HHDM + s, s, e - s, Perm::RWX), "HHDM");
    }
    for seg in &k.image.segments {
        let v = seg.vaddr & !0xfff;
        let end = (seg.vaddr + seg.memsz).next_multiple_of(4096);
        let perm = Perm {
            write: seg.flags & PF_W != 0,
            exec: seg.flags & PF_X != 0,
        };
        check(high.map(v, k.phys + (v - k.vbase), end - v, perm), "kernel");
    }
    let ttbr1 = high.root();
    let mut low =
        Mapper::new(frames, Arm64Format).unwrap_or_else(|_| fatal("no page-table frames"));
    let tramp = handoff::trampoline_page();
    check(low.map(tramp, tramp, 2 * 4096, Perm::RWX), "trampoline");
    (low.root(), ttbr1)
}

fn check(r: Result<(), MapError>, what: &str) {
    if let Err(e) = r {
        fatal(&alloc::format!("mapping {what}: {e:?}"));
    }
}
