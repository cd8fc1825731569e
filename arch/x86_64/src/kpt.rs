//! The kernel's own page tables, built with the shared builder of [`kernel::kpt`] over
//! the 4-level format of [`crate::paging`] and switched to with CR3: the HHDM at the
//! loader's offset (so every pointer the loader handed over stays valid) over RAM and
//! firmware data, and the kernel image at -2 GiB with W^X (text RX, rodata R, data and
//! bss RW, both NX).
//!
//! Table frames come from a 2 MiB arena in `.bss`, so building the tables allocates
//! no RAM the kernel's memory manager will later manage. Device registers (local and
//! I/O APIC, PCI BARs) are mapped later, uncached, in the same HHDM ([`map_device`]).

use kernel::kprintln;
use kernel::kpt::{self, FrameArena, ImageLayout, KernelTables};
use kernel::mm::PhysAddr;
use kernel::mm::map::MapError;
use kernel::mm::pgtable::{EntryAttrs, Features, PageTableFormat};
use x86_64::registers::control::{Cr0, Cr0Flags, Cr3, Cr3Flags, Cr4, Cr4Flags};
use x86_64::registers::model_specific::{Efer, EferFlags};
use x86_64::structures::paging::PhysFrame;

use crate::paging::X86_64Paging as F;

const FRAMES: usize = 512;
const MAX_RANGES: usize = 256;

/// The table frames (2 MiB of `.bss`).
static ARENA: FrameArena<FRAMES> = FrameArena::new();

/// What [`map_device`] needs after the switch: `(kphys, kvirt, root, hhdm, features)`.
static LIVE: spin::Once<(u64, u64, u64, u64, Features)> = spin::Once::new();

type Tables = KernelTables<'static, F, FRAMES>;

/// Virtual `[start, end)` of the kernel image.
pub fn image_span() -> (u64, u64) {
    let image = ImageLayout::of_this_kernel();
    (image.start, image.end)
}

/// What every entry path knows when the kernel builds its own tables.
pub struct Placement<'a> {
    /// Offset of the HHDM (the Limine loader's, or the direct entry's own choice).
    pub hhdm: u64,
    /// `(physical, virtual)` base of the kernel image, if known.
    pub exec: Option<(u64, u64)>,
    /// Physical `[start, end)` ranges the HHDM must map (any order, may overlap).
    pub ranges: &'a mut dyn Iterator<Item = (u64, u64)>,
}

/// Builds the tables and loads CR3. Without the kernel's physical placement (no
/// executable-address response) the kernel stays on the loader's tables.
pub fn switch(h: Placement<'_>, features: crate::cpu::Features) {
    let Some((kphys, kvirt)) = h.exec else {
        kprintln!("paging: no executable-address response: staying on the loader's tables");
        return;
    };
    if features.nx {
        // SAFETY: setting NXE only enables the NX bit; the protocol sets it already.
        unsafe { Efer::update(|f| *f |= EferFlags::NO_EXECUTE_ENABLE) };
    }
    let table_features = features.page_table();
    // SAFETY: the arena is a static of this image, which the entry path placed at
    // `kphys`/`kvirt`; the new tables hold only arena frames, and nothing else builds
    // tables while the kernel boots on one CPU.
    let new = unsafe { Tables::new(&ARENA, (kphys, kvirt), h.hhdm, table_features, None) };
    let Ok(mut t) = new else { arena_exhausted() };
    let data = EntryAttrs::kernel_data(table_features);
    let mut ranges = [(0u64, 0u64); MAX_RANGES];
    let (n, truncated) = kpt::merge_ranges(h.ranges, &mut ranges);
    if truncated {
        kprintln!("paging: warning: more than {MAX_RANGES} HHDM ranges, rest unmapped");
    }
    for &(s, e) in &ranges[..n] {
        map(&mut t, h.hhdm + s, s, e - s, data);
    }
    for (start, end, attrs) in ImageLayout::of_this_kernel().spans(data) {
        let pa = t.image_pa(start);
        map(&mut t, start, pa, end - start, attrs);
    }
    let root = t.root.0;
    let frame = PhysFrame::containing_address(x86_64::PhysAddr::new(F::root_register(t.root)));
    LIVE.call_once(|| (kphys, kvirt, root, h.hhdm, table_features));
    // SAFETY: the new tables map the kernel image (code, data, this stack's HHDM alias
    // included: the stack is BOOTLOADER_RECLAIMABLE), the IST stacks and descriptor
    // tables (in .bss), and every RAM range the loader's HHDM covered.
    unsafe { Cr3::write(frame, Cr3Flags::empty()) };
    // SAFETY: CR0.WP makes read-only pages read-only for the kernel too. Nothing writes
    // to text or rodata, and the page tables and every other write target are mapped
    // writable.
    unsafe { Cr0::update(|f| *f |= Cr0Flags::WRITE_PROTECT) };
    if features.pge {
        // SAFETY: global entries now survive CR3 reloads, as in Linux; every flush of
        // the kernel's own mappings covers them (INVLPG here, the CR4.PGE toggle of
        // `port::flush_tlb_global` for the vmemmap), and the loader's tables are gone.
        unsafe { Cr4::update(|f| *f |= Cr4Flags::PAGE_GLOBAL) };
    }
    kprintln!(
        "paging: cr3={root:#x} format={} hhdm_ranges={n} table_frames={} text=rx rodata=r data=rw nx={} gib_pages={} pge={}",
        F::NAME,
        ARENA.used(),
        u8::from(features.nx),
        u8::from(features.pdpe1gb),
        u8::from(features.pge)
    );
}

/// Maps the device registers `[pa, pa + len)` uncached at their HHDM address (pages
/// already mapped are left as they are) and returns that address; `None` before the
/// kernel runs on its own tables. Single CPU, not called from interrupt context.
pub fn map_device(pa: u64, len: u64) -> Option<u64> {
    let &(kphys, kvirt, root, hhdm, features) = LIVE.get()?;
    // SAFETY: the live tables `switch` loaded: arena frames in the image, any table the
    // memory manager added since in RAM the HHDM maps; single CPU, and the caller is not
    // in interrupt context, so nothing else changes them meanwhile.
    let new = unsafe { Tables::new(&ARENA, (kphys, kvirt), hhdm, features, Some(PhysAddr(root))) };
    let mut t = new.ok()?;
    let attrs = EntryAttrs::kernel_data(features) | EntryAttrs::DEVICE;
    let first = pa & !0xfff;
    let end = (pa + len.max(1)).next_multiple_of(0x1000);
    for page in (first..end).step_by(0x1000) {
        let va = hhdm + page;
        if !t.mapped(va) {
            map(&mut t, va, page, 0x1000, attrs);
            x86_64::instructions::tlb::flush(x86_64::VirtAddr::new(va));
        }
    }
    Some(hhdm + pa)
}

/// Physical address of a kernel-image (`.data`/`.bss`) virtual address.
pub fn image_pa(va: u64) -> Option<u64> {
    let &(kphys, kvirt, ..) = LIVE.get()?;
    Some(va - kvirt + kphys)
}

/// Maps with the largest leaves allowed; an overlap is a warning (the rest of that
/// range stays unmapped), any other failure ends the run.
fn map(t: &mut Tables, va: u64, pa: u64, len: u64, attrs: EntryAttrs) {
    match t.map(va, pa, len, attrs) {
        Ok(()) => {}
        Err(MapError::AlreadyMapped(at)) => {
            kprintln!("paging: warning: {at:#x} already mapped, rest of {va:#x}+{len:#x} skipped");
        }
        Err(MapError::NoMemory) => arena_exhausted(),
        Err(e) => {
            kprintln!("paging: fatal: mapping {va:#x}+{len:#x}: {e:?}");
            kernel::console::exit(1);
        }
    }
}

fn arena_exhausted() -> ! {
    kprintln!("paging: fatal: page-table arena exhausted");
    kernel::console::exit(1)
}
