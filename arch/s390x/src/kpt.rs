//! The kernel's own tables, and turning DAT on: an identity map of all RAM, built with
//! the generic range mapper over this port's DAT format (the image's W^X spans from
//! [`kernel::kpt`]), with tables taken from the RAM just after the kernel image — region
//! and segment tables are 16 KiB, beyond the 4 KiB frames of the shared arena.
//!
//! The map is W^X: kernel text is read-only and executable, read-only data is neither
//! writable nor executable, and everything else (lowcore, data, stacks, free RAM) is
//! writable and — when the CPU has instruction-execution protection (facility 130,
//! enabled by CR0 bit 43) — not executable.
//!
//! Under TCG there is no EDAT-1, so RAM is mapped with 4 KiB pages (512 MiB take 1.1 MiB
//! of tables); with EDAT-1 the mapper uses 1 MiB segment frames instead.

use core::arch::asm;

use kernel::kpt::{self, ImageLayout};
use kernel::mm::addr::PhysAddr;
use kernel::mm::map::{self, MapError, MapStats};
use kernel::mm::pgtable::{EntryAttrs, Features, PageTableFormat};
use kernel::mm::phys::{FramePurpose, FrameSource, PhysMem};

use crate::paging::S390xPaging;

/// CR0 bit 40 (value 0x80_0000): enhanced-DAT-1 control.
const CR0_EDAT: u64 = 0x0080_0000;
/// CR0 bit 43 (value 0x10_0000): instruction-execution-protection control.
const CR0_IEP: u64 = 0x0010_0000;

/// What [`enable_identity_map`] built.
#[derive(Clone, Copy, Debug)]
pub struct DatInfo {
    /// The primary ASCE loaded into CR1.
    pub asce: u64,
    /// Tables and leaves written.
    pub stats: MapStats,
    /// The boot tables occupy `[tables_start, tables_end)`.
    pub tables_start: u64,
    /// One past the last table byte.
    pub tables_end: u64,
}

/// Identity-maps `[0, ram)` W^X and switches DAT on. Tables are bump-allocated from
/// `free_start` upwards (the caller keeps that memory out of the allocator).
pub fn enable_identity_map(
    ram: u64,
    free_start: u64,
    features: Features,
) -> Result<DatInfo, MapError> {
    let mut frames = BootFrames {
        next: free_start,
        limit: ram,
    };
    let root = map::new_table::<S390xPaging, _>(&mut frames, 0).ok_or(MapError::NoMemory)?;
    let data = EntryAttrs::kernel_data(features);
    let image = ImageLayout {
        // Identity: everything after read-only data (data, bss, free RAM) is data.
        end: ram,
        ..ImageLayout::of_this_kernel()
    };
    let [text, rodata, rest] = image.spans(data);
    let spans = [(0, image.start, data), text, rodata, rest];
    let mut stats = MapStats::default();
    for (start, end, attrs) in spans {
        let s = map::map_range::<S390xPaging, _>(
            &mut frames,
            root,
            start,
            start,
            end - start,
            attrs,
            features,
        )?;
        kpt::add_stats(&mut stats, s);
    }
    let asce = S390xPaging::root_register(root);
    let mut cr0 = 0;
    if features.contains(Features::EDAT1) {
        cr0 |= CR0_EDAT;
    }
    if features.contains(Features::NO_EXECUTE) {
        cr0 |= CR0_IEP;
    }
    // SAFETY: the ASCE designates a complete identity map of all RAM, which holds every
    // byte the kernel touches (image, stack, lowcore, SCCBs), so translation changes
    // nothing the running code sees: text stays executable, and nothing writes to text
    // or read-only data. CR0.EDAT and CR0.IEP are set only when facilities 8 and 130
    // are present.
    unsafe { load_asce_and_enable(asce, cr0) };
    Ok(DatInfo {
        asce,
        stats,
        tables_start: free_start,
        tables_end: frames.next,
    })
}

/// Loads CR1 (primary ASCE), ORs `cr0_bits` into CR0, then sets the PSW's DAT bit.
///
/// # Safety
/// `asce` must designate tables that map everything the kernel uses at its current
/// addresses, with text executable; `cr0_bits` may hold only controls of installed
/// facilities.
unsafe fn load_asce_and_enable(asce: u64, cr0_bits: u64) {
    let mut cr = [asce, 0u64];
    // SAFETY: the caller guarantees the tables and the CR0 bits; CR0/CR1 are stored and
    // loaded through `cr`, and STOSM only sets the DAT bit (0x04) of the PSW mask.
    unsafe {
        asm!(
            "lctlg %c1, %c1, 0({cr})",
            "stctg %c0, %c0, 8({cr})",
            "lg {tmp}, 8({cr})",
            "ogr {tmp}, {bits}",
            "stg {tmp}, 8({cr})",
            "lctlg %c0, %c0, 8({cr})",
            "stosm 0({cr}), 0x04",
            cr = in(reg_addr) cr.as_mut_ptr(),
            bits = in(reg) cr0_bits,
            tmp = out(reg) _,
            options(nostack),
        );
    }
}

/// Translates `va` with LRAG: the real address, or `None` when DAT has no mapping.
pub fn translate(va: u64) -> Option<u64> {
    let real: u64;
    let cc: u64;
    // SAFETY: LRAG only reads translation tables and sets a register and the cc.
    unsafe {
        asm!(
            "lrag {real}, 0({va})",
            "ipm {cc}",
            "srl {cc}, 28",
            va = in(reg_addr) va,
            real = out(reg) real,
            cc = out(reg) cc,
            options(nostack, readonly),
        );
    }
    (cc == 0).then_some(real)
}

/// Early frames: a bump allocator over RAM after the kernel image, accessed through the
/// identity (DAT is still off while tables are built).
struct BootFrames {
    next: u64,
    limit: u64,
}

impl PhysMem for BootFrames {
    fn read_u64(&self, addr: PhysAddr) -> u64 {
        // SAFETY: only table addresses this allocator handed out are accessed; they are
        // in RAM, 8-byte aligned, and DAT is off or identity-mapped.
        unsafe { core::ptr::read_volatile(addr.0 as *const u64) }
    }

    fn write_u64(&mut self, addr: PhysAddr, value: u64) {
        // SAFETY: as for `read_u64`; nothing else uses these frames yet.
        unsafe { core::ptr::write_volatile(addr.0 as *mut u64, value) }
    }
}

impl FrameSource for BootFrames {
    fn alloc_frames(&mut self, size: u64, align: u64, _purpose: FramePurpose) -> Option<PhysAddr> {
        let start = self.next.next_multiple_of(align);
        let end = start.checked_add(size).filter(|&end| end <= self.limit)?;
        self.next = end;
        Some(PhysAddr(start))
    }

    fn free_frames(&mut self, _addr: PhysAddr, _size: u64, _purpose: FramePurpose) {
        // Boot tables live for the whole run; the mapper frees nothing on success.
    }
}
