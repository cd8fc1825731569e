//! The aarch64 side of the loader (BOOTAA64.EFI on QEMU `virt` under AAVMF): console,
//! firmware tables (ACPI RSDP, DTB), the DTB response, and the hand-off at EL1 with
//! TTBR1 tables (HHDM + kernel) and a TTBR0 identity page for the trampoline.
//!
//! [`run`] follows the x86_64 flow step for step over the same shared steps; only the
//! DTB, the tables, the cache maintenance and the entry state differ.

mod fwcfg;
mod handoff;
mod io;

pub use fwcfg::cmdline_override;
pub use io::Serial;

use alloc::string::String;
use core::convert::Infallible;

use boot::elf::EM_AARCH64;
use boot::paging::Perm;
use boot::paging::aarch64::{Arm64Format, HHDM_4LEVEL as HHDM, tcr};
use boot::protocol::{self as p, MemmapEntry, REQ_RESPONSE};
use boot::revision::Revision;
use uefi::boot::{self as bs, AllocateType, MemoryType};
use uefi::system;

use self::handoff::Handoff;
use super::arena::{Arena, Frames};
use super::load::Kernel;
use super::steps::{self, Buffers, read_phys};
use super::{err, responses, say};

/// `e_machine` of the kernels this loader boots.
pub const ELF_MACHINE: u16 = EM_AARCH64;

/// Device Tree request ID (last two words).
const DTB_REQUEST: [u64; 2] = [0xb40ddb48fb54bac7, 0x545081493f81ffb7];

/// EFI configuration-table GUID of a flattened device tree.
const DTB_GUID: uefi::Guid = uefi::guid!("b1b621d5-f19c-41a5-830b-d9152c69aae0");

/// The DTB from the UEFI configuration table (present with `-M virt,acpi=off`).
fn dtb() -> Option<u64> {
    system::with_config_table(|t| {
        t.iter()
            .find(|e| e.guid == DTB_GUID)
            .map(|e| e.address as u64)
    })
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
    let acpi = steps::acpi_tables();
    if let Some(t) = &acpi {
        say!("hotmem-boot: acpi tables={}", t.len);
    }
    let dtb = dtb().map(copy_dtb).transpose()?;
    let mut buf = Buffers::new(&kernel)?;
    let plan = responses::fill(&mut kernel, &mut buf.arena, HHDM)?;
    serve_dtb(&mut kernel, &mut buf.arena, dtb);
    steps::say_entering(&kernel, ", EL1");
    let (map, ptrs) = steps::exit_boot_services(&buf.memmap, rev, acpi.as_ref());
    responses::memmap(&plan, &mut buf.arena, map, ptrs, HHDM);
    let (ttbr0, ttbr1) = build_tables(&mut buf.frames, &kernel, map, rev);
    say!(
        "hotmem-boot: memmap entries={} page-table frames={}",
        map.len(),
        buf.frames.used()
    );
    handoff::sync_icache(kernel.phys, kernel.len);
    handoff::enter(&Handoff {
        ttbr0,
        ttbr1,
        tcr: tcr(io::sysreg!("id_aa64mmfr0_el1") & 0xf),
        mair: handoff::MAIR,
        sctlr: handoff::SCTLR,
        entry: kernel.entry,
        stack_top: HHDM + buf.stack.end(),
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
    let mut high = steps::new_mapper(frames, Arm64Format);
    steps::map_hhdm_and_kernel(&mut high, HHDM, k, map, rev);
    let ttbr1 = high.root();
    let mut low = steps::new_mapper(frames, Arm64Format);
    let tramp = handoff::trampoline_page();
    steps::check(low.map(tramp, tramp, 2 * 4096, Perm::RWX), "trampoline");
    (low.root(), ttbr1)
}
