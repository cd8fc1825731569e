//! The kernel's own TTBR1 tables, built with the shared builder of [`kernel::kpt`] over
//! the 4K-granule format of [`crate::paging`]: the HHDM at the loader's offset (so every pointer the
//! loader handed over stays valid) over RAM and firmware data, device mappings of the
//! MMIO the kernel uses (attribute index 1, device-nGnRnE) in the same HHDM, and the
//! kernel image at -2 GiB with W^X (text RX, rodata R, data and bss RW, both PXN).
//!
//! Table frames come from a 2 MiB arena in `.bss`, reached through the image mapping,
//! so building the tables allocates no RAM the memory manager will later manage.
//! The lower half is switched off (TCR_EL1.EPD0), so a null pointer faults.
//!
//! Devices found later (the GIC, the GED, PCI ECAM and BARs) are mapped with
//! [`map_device`] into the same tables, from the same arena.

use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{self, Readable, TCR_EL1, TTBR1_EL1, Writeable};
use kernel::kpt::{self, FrameArena, ImageLayout, KernelTables};
use kernel::mm::addr::PhysAddr;
use kernel::mm::map::{MapError, MapStats};
use kernel::mm::pgtable::{EntryAttrs, Features, PageTableFormat};

use crate::paging::{Aarch64Paging as F, MAIR_EL1};

const FRAMES: usize = 512;
const MAX_RANGES: usize = 256;
/// TCR_EL1.EPD0: no walks through TTBR0.
const TCR_EPD0: u64 = 1 << 7;

/// The table frames (2 MiB of `.bss`).
static ARENA: FrameArena<FRAMES> = FrameArena::new();
/// What [`map_device`] needs of the tables [`build_and_switch`] loaded:
/// `(kphys, kvirt, hhdm, root)`.
static LIVE: spin::Mutex<Option<(u64, u64, u64, PhysAddr)>> = spin::Mutex::new(None);

type Tables = KernelTables<'static, F, FRAMES>;

/// Virtual `[start, end)` of the kernel image.
pub fn image_span() -> (u64, u64) {
    let image = ImageLayout::of_this_kernel();
    (image.start, image.end)
}

/// Table frames used so far.
pub fn frames_used() -> usize {
    ARENA.used()
}

/// What [`build_and_switch`] did, for the `paging:` record printed once the console
/// exists.
#[derive(Clone, Copy, Debug)]
pub struct Switched {
    /// TTBR1_EL1 value.
    pub root: u64,
    /// HHDM ranges mapped.
    pub ranges: usize,
    /// Mapper statistics over all ranges.
    pub stats: MapStats,
}

/// What every entry path knows when the kernel builds its own tables.
pub struct Placement<'a> {
    /// Offset of the HHDM (the Limine loader's, or the direct entry's own choice).
    pub hhdm: u64,
    /// `(physical, virtual)` base of the kernel image.
    pub exec: (u64, u64),
    /// Physical `[start, end)` ranges the HHDM must map (any order, may overlap).
    pub ranges: &'a mut dyn Iterator<Item = (u64, u64)>,
}

/// Builds the tables (HHDM, `devices` as device memory, the image) and loads TTBR1.
/// HHDM ranges past the first 256 (after merging) are left out: there is no console yet
/// to say so, and QEMU `virt` never has that many.
pub fn build_and_switch(h: Placement<'_>, devices: &[(u64, u64)]) -> Result<Switched, MapError> {
    // SAFETY: the arena is a static of this image, which the entry path placed at
    // `h.exec`; the new tables hold only arena frames, and nothing else builds tables
    // while the kernel boots on one CPU.
    let mut t = unsafe { Tables::new(&ARENA, h.exec, h.hhdm, Features::NO_EXECUTE, None)? };
    let data = EntryAttrs::kernel_data(Features::NO_EXECUTE);
    let mut ranges = [(0u64, 0u64); MAX_RANGES];
    let (n, _) = kpt::merge_ranges(h.ranges, &mut ranges);
    for &(s, e) in &ranges[..n] {
        t.map(h.hhdm + s, s, e - s, data)?;
    }
    for &(pa, len) in devices {
        map_device_range(&mut t, h.hhdm, pa, len)?;
    }
    for (start, end, attrs) in ImageLayout::of_this_kernel().spans(data) {
        t.map(start, t.image_pa(start), end - start, attrs)?;
    }
    let root = F::root_register(t.root);
    *LIVE.lock() = Some((h.exec.0, h.exec.1, h.hhdm, t.root));
    // SAFETY: the new tables map the kernel image at its link address (code, stack and
    // vectors in .bss/.text), and every RAM range the loader's HHDM covered at the same
    // offset, so everything the kernel and the loader's responses point to stays
    // mapped; MAIR keeps Attr0 = normal write-back, the only index the loader used.
    unsafe { load_ttbr1(root) };
    Ok(Switched {
        root,
        ranges: n,
        stats: t.stats,
    })
}

/// Maps `[pa, pa + len)` (rounded out to pages) as device-nGnRnE memory at HHDM + `pa`
/// in the live tables; pages mapped before keep their mapping.
pub fn map_device(pa: u64, len: u64) -> Result<(), MapError> {
    let live = LIVE.lock();
    let (kphys, kvirt, hhdm, root) = (*live).ok_or(MapError::NoMemory)?;
    // SAFETY: the live tables `build_and_switch` loaded: arena frames in the image, any
    // table the memory manager added since in RAM the HHDM maps; the `LIVE` lock keeps
    // other mappers out, and no exception handler maps.
    let mut t = unsafe {
        Tables::new(
            &ARENA,
            (kphys, kvirt),
            hhdm,
            Features::NO_EXECUTE,
            Some(root),
        )?
    };
    let start = pa & !0xfff;
    let end = (pa + len).next_multiple_of(0x1000);
    for page in (start..end).step_by(0x1000) {
        map_device_range(&mut t, hhdm, page, 0x1000)?;
    }
    // The new entries were invalid before: nothing stale is cached, but the flush
    // orders the table writes before the first access through them.
    crate::cpu::flush_tlb_all();
    Ok(())
}

/// The physical address of `va` inside the kernel image, once the tables are live.
pub fn image_pa(va: u64) -> Option<u64> {
    let (kphys, kvirt, _, _) = (*LIVE.lock())?;
    let (start, end) = image_span();
    (start..end).contains(&va).then(|| va - kvirt + kphys)
}

/// Loads MAIR, TTBR1 and TCR (EPD0 set) and invalidates the TLB.
///
/// # Safety
/// `root` must designate complete tables that map everything the kernel touches next.
unsafe fn load_ttbr1(root: u64) {
    let tcr = TCR_EL1.get() | TCR_EPD0;
    registers::MAIR_EL1.set(MAIR_EL1);
    // The table writes reach the walker before it may use the new root.
    barrier::dsb(barrier::ISHST);
    TTBR1_EL1.set(root);
    TCR_EL1.set(tcr);
    barrier::isb(barrier::SY);
    // No translation cached from the loader's tables survives the switch.
    crate::cpu::flush_tlb_all();
}

/// `[pa, pa + len)` rounded out to pages, as device memory at HHDM + `pa`; a range
/// mapped before (e.g. the console UART) keeps its mapping.
fn map_device_range(t: &mut Tables, hhdm: u64, pa: u64, len: u64) -> Result<(), MapError> {
    let start = pa & !0xfff;
    let end = (pa + len).next_multiple_of(0x1000);
    let attrs = EntryAttrs::DEVICE | EntryAttrs::WRITABLE | EntryAttrs::GLOBAL;
    match t.map(
        hhdm + start,
        start,
        end - start,
        attrs | EntryAttrs::NO_EXECUTE,
    ) {
        Err(MapError::AlreadyMapped(_)) => Ok(()),
        other => other,
    }
}
