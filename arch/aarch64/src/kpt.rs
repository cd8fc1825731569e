//! The kernel's own TTBR1 tables, built with the generic range mapper over the 4K-granule
//! format of [`crate::paging`]: the HHDM at the loader's offset (so every pointer the
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

use core::sync::atomic::{AtomicUsize, Ordering};

use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{self, Readable, TCR_EL1, TTBR1_EL1, Writeable};
use kernel::mm::addr::PhysAddr;
use kernel::mm::map::{self, MapError, MapStats};
use kernel::mm::pgtable::{EntryAttrs, Features, PageTableFormat};
use kernel::mm::phys::{FramePurpose, FrameSource, PhysMem};

use crate::paging::{Aarch64Paging as F, MAIR_EL1};

const FRAMES: usize = 512;
const MAX_RANGES: usize = 256;
/// TCR_EL1.EPD0: no walks through TTBR0.
const TCR_EPD0: u64 = 1 << 7;

#[repr(C, align(4096))]
struct Arena([[u64; 512]; FRAMES]);

static mut ARENA: Arena = Arena([[0; 512]; FRAMES]);
static USED: AtomicUsize = AtomicUsize::new(0);
/// What [`map_device`] needs of the tables [`build_and_switch`] loaded.
static LIVE: spin::Mutex<Option<(u64, u64, u64, PhysAddr)>> = spin::Mutex::new(None);

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

/// Table frames used so far.
pub fn frames_used() -> usize {
    USED.load(Ordering::Relaxed)
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
pub fn build_and_switch(h: Placement<'_>, devices: &[(u64, u64)]) -> Result<Switched, MapError> {
    let mut t = Tables {
        kphys: h.exec.0,
        kvirt: h.exec.1,
        hhdm: h.hhdm,
        root: PhysAddr(0),
        stats: MapStats::default(),
    };
    t.root = map::new_table::<F, _>(&mut t, 0).ok_or(MapError::NoMemory)?;
    let data = EntryAttrs::kernel_data(Features::NO_EXECUTE);
    let mut ranges = [(0u64, 0u64); MAX_RANGES];
    let n = hhdm_ranges(h.ranges, &mut ranges);
    for &(s, e) in &ranges[..n] {
        t.map(h.hhdm + s, s, e - s, data)?;
    }
    for &(pa, len) in devices {
        t.map_device(pa, len)?;
    }
    let (start, end) = image_span();
    let text = &raw const __text_end as u64;
    let rodata = &raw const __rodata_end as u64;
    t.map(start, t.pa(start), text - start, EntryAttrs::GLOBAL)?;
    t.map(
        text,
        t.pa(text),
        rodata - text,
        EntryAttrs::GLOBAL | EntryAttrs::NO_EXECUTE,
    )?;
    t.map(rodata, t.pa(rodata), end - rodata, data)?;
    let root = F::root_register(t.root);
    *LIVE.lock() = Some((t.kphys, t.kvirt, t.hhdm, t.root));
    // SAFETY: the new tables map the kernel image at its link address (code, stack and
    // vectors in .bss/.text), and every RAM range the loader's HHDM covered at the same
    // offset, so everything the kernel and the loader's responses point to stays
    // mapped; MAIR keeps Attr0 = normal write-back, the only index the loader used.
    unsafe { load_ttbr1(root) };
    let switched = Switched {
        root,
        ranges: n,
        stats: t.stats,
    };
    Ok(switched)
}

/// Maps `[pa, pa + len)` (rounded out to pages) as device-nGnRnE memory at HHDM + `pa`
/// in the live tables; pages mapped before keep their mapping.
pub fn map_device(pa: u64, len: u64) -> Result<(), MapError> {
    let live = LIVE.lock();
    let (kphys, kvirt, hhdm, root) = (*live).ok_or(MapError::NoMemory)?;
    let mut t = Tables {
        kphys,
        kvirt,
        hhdm,
        root,
        stats: MapStats::default(),
    };
    let start = pa & !0xfff;
    let end = (pa + len).next_multiple_of(0x1000);
    for page in (start..end).step_by(0x1000) {
        t.map_device(page, 0x1000)?;
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

/// Page-rounded, sorted, merged physical ranges the HHDM maps.
fn hhdm_ranges(
    raw: &mut dyn Iterator<Item = (u64, u64)>,
    out: &mut [(u64, u64); MAX_RANGES],
) -> usize {
    let mut n = 0;
    for (start, end) in raw.filter(|(s, e)| e > s).take(MAX_RANGES) {
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

struct Tables {
    kphys: u64,
    kvirt: u64,
    hhdm: u64,
    root: PhysAddr,
    stats: MapStats,
}

impl Tables {
    /// Physical address of a kernel-image virtual address.
    fn pa(&self, va: u64) -> u64 {
        va - self.kvirt + self.kphys
    }

    fn map(&mut self, va: u64, pa: u64, len: u64, attrs: EntryAttrs) -> Result<(), MapError> {
        let s = map::map_range::<F, _>(self, self.root, va, pa, len, attrs, Features::NO_EXECUTE)?;
        self.stats.tables += s.tables;
        for (a, b) in self.stats.leaves.iter_mut().zip(s.leaves) {
            *a += b;
        }
        Ok(())
    }

    fn map_device(&mut self, pa: u64, len: u64) -> Result<(), MapError> {
        let start = pa & !0xfff;
        let end = (pa + len).next_multiple_of(0x1000);
        let attrs = EntryAttrs::DEVICE | EntryAttrs::WRITABLE | EntryAttrs::GLOBAL;
        match self.map(
            self.hhdm + start,
            start,
            end - start,
            attrs | EntryAttrs::NO_EXECUTE,
        ) {
            // Mapped before (e.g. the console UART): keep the existing mapping.
            Err(MapError::AlreadyMapped(_)) => Ok(()),
            other => other,
        }
    }

    /// Virtual address of a table frame: arena frames through the image mapping, any
    /// other table (one the memory manager allocated from RAM) through the HHDM.
    fn va(&self, pa: PhysAddr) -> u64 {
        let arena = self.pa(&raw const ARENA as u64);
        let arena_end = arena + (FRAMES * 4096) as u64;
        if (arena..arena_end).contains(&pa.0) {
            pa.0 - self.kphys + self.kvirt
        } else {
            self.hhdm + pa.0
        }
    }
}

impl PhysMem for Tables {
    fn read_u64(&self, addr: PhysAddr) -> u64 {
        // SAFETY: the mapper only reads table frames: arena frames in the kernel image
        // or RAM the HHDM maps; `va` is their address there, 8-byte aligned.
        unsafe { (self.va(addr) as *const u64).read_volatile() }
    }

    fn write_u64(&mut self, addr: PhysAddr, value: u64) {
        // SAFETY: as for `read_u64`; the tables are changed single-threaded (at boot,
        // then under the `LIVE` lock), never from an exception handler.
        unsafe { (self.va(addr) as *mut u64).write_volatile(value) }
    }
}

impl FrameSource for Tables {
    fn alloc_frames(&mut self, size: u64, align: u64, _purpose: FramePurpose) -> Option<PhysAddr> {
        if size != 4096 || align > 4096 {
            return None;
        }
        let i = USED.fetch_add(1, Ordering::Relaxed);
        if i >= FRAMES {
            USED.store(FRAMES, Ordering::Relaxed);
            return None;
        }
        // SAFETY: only the address of frame `i` is taken; frames are handed out once.
        let va = unsafe { &raw mut ARENA.0[i] } as u64;
        Some(PhysAddr(self.pa(va)))
    }

    fn free_frames(&mut self, _addr: PhysAddr, _size: u64, _purpose: FramePurpose) {}
}
