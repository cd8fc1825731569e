//! The kernel's own page tables, built with the 4-level format of [`crate::paging`]
//! and switched to with CR3: the HHDM at the loader's offset (so every pointer the
//! loader handed over stays valid) over RAM and firmware data, and the kernel image at
//! -2 GiB with W^X (text RX, rodata R, data and bss RW, both NX).
//!
//! Table frames come from a 2 MiB arena in `.bss`, so building the tables allocates
//! no RAM the kernel's memory manager will later manage. Device registers (local and
//! I/O APIC, PCI BARs) are mapped later, uncached, in the same HHDM ([`map_device`]).

use core::sync::atomic::{AtomicUsize, Ordering};

use kernel::kprintln;
use kernel::mm::PhysAddr;
use kernel::mm::map::{self, MapError};
use kernel::mm::pgtable::{EntryAttrs, Features, PageTableFormat};
use kernel::mm::phys::{FramePurpose, FrameSource, PhysMem};
use kernel::mm::walk;
use x86_64::registers::control::{Cr0, Cr0Flags, Cr3, Cr3Flags, Cr4, Cr4Flags};
use x86_64::registers::model_specific::{Efer, EferFlags};
use x86_64::structures::paging::PhysFrame;

use crate::paging::X86_64Paging as F;

const FRAMES: usize = 512;
const MAX_RANGES: usize = 256;

#[repr(C, align(4096))]
struct Arena([[u64; 512]; FRAMES]);

static mut ARENA: Arena = Arena([[0; 512]; FRAMES]);
static USED: AtomicUsize = AtomicUsize::new(0);

/// What [`map_device`] needs after the switch: `(kphys, kvirt, root, hhdm, features)`.
static LIVE: spin::Once<(u64, u64, u64, u64, Features)> = spin::Once::new();

unsafe extern "C" {
    static __kernel_start: u8;
    static __text_end: u8;
    static __rodata_end: u8;
    static __kernel_end: u8;
}

/// Virtual `[start, end)` of the kernel image.
pub fn image_span() -> (u64, u64) {
    (
        &raw const __kernel_start as u64,
        &raw const __kernel_end as u64,
    )
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
    let mut b = Builder {
        kphys,
        kvirt,
        features: features.page_table(),
        root: 0,
    };
    b.root = b.alloc();
    let data = EntryAttrs::kernel_data(b.features);
    let mut ranges = [(0u64, 0u64); MAX_RANGES];
    let n = hhdm_ranges(h.ranges, &mut ranges);
    for &(s, e) in &ranges[..n] {
        b.map(h.hhdm + s, s, e - s, data);
    }
    let (start, end) = image_span();
    let text = &raw const __text_end as u64;
    let rodata = &raw const __rodata_end as u64;
    let nx = data & EntryAttrs::NO_EXECUTE;
    b.map(start, b.pa(start), text - start, EntryAttrs::GLOBAL);
    b.map(text, b.pa(text), rodata - text, EntryAttrs::GLOBAL | nx);
    b.map(rodata, b.pa(rodata), end - rodata, data);
    let frame =
        PhysFrame::containing_address(x86_64::PhysAddr::new(F::root_register(PhysAddr(b.root))));
    LIVE.call_once(|| (kphys, kvirt, b.root, h.hhdm, b.features));
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
        "paging: cr3={:#x} format={} hhdm_ranges={n} table_frames={} text=rx rodata=r data=rw nx={} gib_pages={} pge={}",
        b.root,
        F::NAME,
        USED.load(Ordering::Relaxed),
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
    let mut b = Builder {
        kphys,
        kvirt,
        features,
        root,
    };
    let attrs = EntryAttrs::kernel_data(features) | EntryAttrs::DEVICE;
    let first = pa & !0xfff;
    let end = (pa + len.max(1)).next_multiple_of(0x1000);
    for page in (first..end).step_by(0x1000) {
        let va = hhdm + page;
        if !b.mapped(va) {
            b.map(va, page, 0x1000, attrs);
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

/// Page-rounded, sorted, merged physical ranges the HHDM maps.
fn hhdm_ranges(
    raw: &mut dyn Iterator<Item = (u64, u64)>,
    out: &mut [(u64, u64); MAX_RANGES],
) -> usize {
    let mut n = 0;
    for (start, end) in raw.filter(|(s, e)| e > s) {
        if n == MAX_RANGES {
            kprintln!("paging: warning: more than {MAX_RANGES} HHDM ranges, rest unmapped");
            break;
        }
        out[n] = (start & !0xfff, end.next_multiple_of(0x1000));
        n += 1;
    }
    let r = &mut out[..n];
    r.sort_unstable();
    let mut m = 0;
    for i in 0..n {
        if m > 0 && r[i].0 <= r[m - 1].1 {
            r[m - 1].1 = r[m - 1].1.max(r[i].1);
        } else {
            r[m] = r[i];
            m += 1;
        }
    }
    m
}

struct Builder {
    kphys: u64,
    kvirt: u64,
    features: Features,
    root: u64,
}

impl Builder {
    /// Physical address of a kernel-image virtual address.
    fn pa(&self, va: u64) -> u64 {
        va - self.kvirt + self.kphys
    }

    /// A zeroed frame from the arena, by physical address.
    fn alloc(&mut self) -> u64 {
        let i = USED.fetch_add(1, Ordering::Relaxed);
        if i >= FRAMES {
            kprintln!("paging: fatal: page-table arena exhausted");
            kernel::console::exit(1);
        }
        // SAFETY: only the address of frame `i` is taken; frames are handed out once.
        let va = unsafe { &raw mut ARENA.0[i] } as u64;
        self.pa(va)
    }

    /// The table in frame `pa`: an arena frame through its kernel-image address, or
    /// (after the switch) a frame the memory manager added, through the HHDM.
    fn table(&self, pa: u64) -> &'static mut [u64; 512] {
        let arena = self.pa(&raw const ARENA as u64);
        let in_arena = (arena..arena + (FRAMES as u64) * 4096).contains(&pa);
        let va = match LIVE.get() {
            Some(&(.., hhdm, _)) if !in_arena => hhdm + pa,
            _ => pa - self.kphys + self.kvirt,
        };
        // SAFETY: `pa` is a page-table frame of the live tables: an arena frame in
        // `.bss`, or a RAM frame the HHDM maps. The builder runs single-threaded and
        // holds no other reference to it.
        unsafe { &mut *(va as *mut [u64; 512]) }
    }

    /// Maps `[va, va+len)` to `pa` with the largest leaves the format, CPU and
    /// alignment allow (the kernel's generic range mapper over this builder's frames).
    fn map(&mut self, va: u64, pa: u64, len: u64, attrs: EntryAttrs) {
        let (root, features) = (PhysAddr(self.root), self.features);
        match map::map_range::<F, _>(self, root, va, pa, len, attrs, features) {
            Ok(_) => {}
            Err(MapError::AlreadyMapped(at)) => {
                kprintln!(
                    "paging: warning: {at:#x} already mapped, rest of {va:#x}+{len:#x} skipped"
                );
            }
            Err(e) => {
                kprintln!("paging: fatal: mapping {va:#x}+{len:#x}: {e:?}");
                kernel::console::exit(1);
            }
        }
    }

    /// Whether anything (a leaf at any level, or a malformed entry) maps `va`.
    fn mapped(&self, va: u64) -> bool {
        let fault = walk::translate::<F, _>(self, PhysAddr(self.root), self.features, va);
        !matches!(fault, Err(walk::WalkFault::NotMapped { .. }))
    }
}

impl PhysMem for Builder {
    fn read_u64(&self, addr: PhysAddr) -> u64 {
        self.table(addr.0 & !0xfff)[(addr.0 & 0xfff) as usize / 8]
    }

    fn write_u64(&mut self, addr: PhysAddr, value: u64) {
        self.table(addr.0 & !0xfff)[(addr.0 & 0xfff) as usize / 8] = value;
    }
}

impl FrameSource for Builder {
    fn alloc_frames(&mut self, size: u64, align: u64, _purpose: FramePurpose) -> Option<PhysAddr> {
        // x86 tables are one page; the arena hands out page-aligned pages only.
        (size <= 4096 && align <= 4096).then(|| PhysAddr(self.alloc()))
    }

    fn free_frames(&mut self, _addr: PhysAddr, _size: u64, _purpose: FramePurpose) {
        // Boot tables live for the whole run; the mapper frees nothing on success.
    }
}
