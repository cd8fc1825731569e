//! The kernel's own page tables, the part every port shares: the image's W^X spans, the
//! HHDM's ranges page-rounded and merged, and a builder ([`KernelTables`]) that maps with
//! the generic range mapper over any [`PageTableFormat`], its table frames taken from a
//! [`FrameArena`] in the kernel image's `.bss` — so building the tables takes no RAM the
//! memory manager will later manage.
//!
//! Arena frames are reached through the image mapping (they are part of the image); any
//! other table frame (one the memory manager added to the live tables later) through the
//! HHDM. Loading the root into the MMU, the registers around it and what a port maps
//! beyond the HHDM and the image stay in the port's `kpt.rs`.

use core::cell::UnsafeCell;
use core::marker::PhantomData;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::mm::addr::PhysAddr;
use crate::mm::map::{self, MapError, MapStats};
use crate::mm::pgtable::{EntryAttrs, Features, PageTableFormat};
use crate::mm::phys::{FramePurpose, FrameSource, PhysMem};
use crate::mm::walk::{self, WalkFault};

/// Bytes of one arena frame (every table of the x86_64 and aarch64 formats).
pub const FRAME_BYTES: u64 = 4096;

/// Where the linker put the kernel image's parts (virtual addresses, from the port's
/// linker-script symbols).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageLayout {
    /// First byte of the image (text starts here).
    pub start: u64,
    /// End of text, start of read-only data.
    pub text_end: u64,
    /// End of read-only data, start of data and bss.
    pub rodata_end: u64,
    /// One past the last byte of the image.
    pub end: u64,
}

#[cfg(target_os = "none")]
unsafe extern "C" {
    static __kernel_start: u8;
    static __text_end: u8;
    static __rodata_end: u8;
    static __kernel_end: u8;
}

impl ImageLayout {
    /// The running kernel's layout, from the symbols every port's linker script defines
    /// (`__kernel_start`, `__text_end`, `__rodata_end`, `__kernel_end`).
    #[cfg(target_os = "none")]
    pub fn of_this_kernel() -> ImageLayout {
        ImageLayout {
            start: &raw const __kernel_start as u64,
            text_end: &raw const __text_end as u64,
            rodata_end: &raw const __rodata_end as u64,
            end: &raw const __kernel_end as u64,
        }
    }

    /// The image's W^X spans `(start, end, attributes)` for `data`, the attributes of
    /// kernel data: text read and execute, read-only data read only, data and bss as
    /// `data` (the last two not executable where `data` says so).
    pub fn spans(&self, data: EntryAttrs) -> [(u64, u64, EntryAttrs); 3] {
        let no_exec = data & EntryAttrs::NO_EXECUTE;
        [
            (self.start, self.text_end, EntryAttrs::GLOBAL),
            (self.text_end, self.rodata_end, EntryAttrs::GLOBAL | no_exec),
            (self.rodata_end, self.end, data),
        ]
    }
}

/// Page-rounds the non-empty `[start, end)` ranges of `raw` outwards into `out`, sorted,
/// overlapping or touching ones merged. Returns how many `out` holds and whether ranges
/// were left out because `out` was full before merging.
pub fn merge_ranges(
    raw: impl IntoIterator<Item = (u64, u64)>,
    out: &mut [(u64, u64)],
) -> (usize, bool) {
    let mut n = 0;
    let mut truncated = false;
    for (start, end) in raw.into_iter().filter(|(s, e)| e > s) {
        if n == out.len() {
            truncated = true;
            break;
        }
        out[n] = (
            start & !(FRAME_BYTES - 1),
            end.next_multiple_of(FRAME_BYTES),
        );
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
    (m, truncated)
}

/// Adds one mapping's counts (tables, leaves per level) to `total`.
pub fn add_stats(total: &mut MapStats, s: MapStats) {
    total.tables += s.tables;
    for (sum, n) in total.leaves.iter_mut().zip(s.leaves) {
        *sum += n;
    }
}

/// `N` page-table frames inside the kernel image (a `static` lands in `.bss`), handed
/// out once each and never freed.
#[repr(C, align(4096))]
pub struct FrameArena<const N: usize> {
    frames: UnsafeCell<[[u64; 512]; N]>,
    used: AtomicUsize,
}

// SAFETY: a frame is handed out at most once (the atomic counter), and only its address
// leaves the arena; its contents are then accessed by the one table builder that owns it.
unsafe impl<const N: usize> Sync for FrameArena<N> {}

impl<const N: usize> FrameArena<N> {
    /// An arena of zeroed frames, none handed out.
    pub const fn new() -> Self {
        FrameArena {
            frames: UnsafeCell::new([[0; 512]; N]),
            used: AtomicUsize::new(0),
        }
    }

    /// Frames handed out so far.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// The virtual address of the next zeroed frame, or `None` when all are taken.
    fn take(&self) -> Option<u64> {
        let i = self.used.fetch_add(1, Ordering::Relaxed);
        if i >= N {
            self.used.store(N, Ordering::Relaxed);
            return None;
        }
        Some(self.start() + i as u64 * FRAME_BYTES)
    }

    /// Virtual `[start, end)` of the frames.
    fn start(&self) -> u64 {
        self.frames.get() as u64
    }

    fn end(&self) -> u64 {
        self.start() + N as u64 * FRAME_BYTES
    }
}

impl<const N: usize> Default for FrameArena<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// The kernel's tables of format `F` under construction or live: maps through the
/// generic range mapper, takes table frames from an arena, keeps the mapper's counts.
pub struct KernelTables<'a, F: PageTableFormat, const N: usize> {
    arena: &'a FrameArena<N>,
    kphys: u64,
    kvirt: u64,
    hhdm: u64,
    /// The root table.
    pub root: PhysAddr,
    /// What the CPU offers (large leaves, no-execute).
    pub features: Features,
    /// Tables and leaves written by [`KernelTables::map`] so far.
    pub stats: MapStats,
    format: PhantomData<F>,
}

impl<'a, F: PageTableFormat, const N: usize> KernelTables<'a, F, N> {
    /// Tables under `root` (`None`: a new, empty root from the arena). The image is
    /// loaded at physical `kphys` and linked at virtual `kvirt`; `hhdm` is the offset at
    /// which every non-arena table frame is mapped.
    ///
    /// # Safety
    /// `arena` must be a `static` of the running kernel image (so it is mapped at
    /// `kvirt + (pa - kphys)`); `kphys`/`kvirt` must be the image's real placement; every
    /// table frame reachable from `root` outside the arena must be mapped at `hhdm + pa`;
    /// nothing else may change these tables while this value lives.
    pub unsafe fn new(
        arena: &'a FrameArena<N>,
        (kphys, kvirt): (u64, u64),
        hhdm: u64,
        features: Features,
        root: Option<PhysAddr>,
    ) -> Result<Self, MapError> {
        let mut t = KernelTables {
            arena,
            kphys,
            kvirt,
            hhdm,
            root: PhysAddr(0),
            features,
            stats: MapStats::default(),
            format: PhantomData,
        };
        t.root = match root {
            Some(root) => root,
            None => map::new_table::<F, _>(&mut t, 0).ok_or(MapError::NoMemory)?,
        };
        Ok(t)
    }

    /// The physical address of `va` inside the kernel image.
    pub fn image_pa(&self, va: u64) -> u64 {
        va - self.kvirt + self.kphys
    }

    /// Maps `[va, va + len)` to `pa` with the largest leaves the format, the CPU and the
    /// alignment allow; adds the mapper's counts to [`KernelTables::stats`].
    pub fn map(&mut self, va: u64, pa: u64, len: u64, attrs: EntryAttrs) -> Result<(), MapError> {
        let (root, features) = (self.root, self.features);
        let s = map::map_range::<F, _>(self, root, va, pa, len, attrs, features)?;
        add_stats(&mut self.stats, s);
        Ok(())
    }

    /// Whether anything (a leaf at any level, or a malformed entry) maps `va`.
    pub fn mapped(&self, va: u64) -> bool {
        let walked = walk::translate::<F, _>(self, self.root, self.features, va);
        !matches!(walked, Err(WalkFault::NotMapped { .. }))
    }

    /// Where a table frame is readable: arena frames through the image mapping, any
    /// other through the HHDM.
    fn va(&self, pa: PhysAddr) -> u64 {
        let arena = self.image_pa(self.arena.start())..self.image_pa(self.arena.end());
        if arena.contains(&pa.0) {
            pa.0 - self.kphys + self.kvirt
        } else {
            self.hhdm + pa.0
        }
    }
}

impl<F: PageTableFormat, const N: usize> PhysMem for KernelTables<'_, F, N> {
    fn read_u64(&self, addr: PhysAddr) -> u64 {
        // SAFETY: the mapper and the walker only read entries of table frames reachable
        // from the root, which `new`'s contract maps at `va`; entries are 8-byte aligned.
        unsafe { (self.va(addr) as *const u64).read_volatile() }
    }

    fn write_u64(&mut self, addr: PhysAddr, value: u64) {
        // SAFETY: as for `read_u64`; nothing else changes the tables meanwhile (`new`).
        unsafe { (self.va(addr) as *mut u64).write_volatile(value) }
    }
}

impl<F: PageTableFormat, const N: usize> FrameSource for KernelTables<'_, F, N> {
    fn alloc_frames(&mut self, size: u64, align: u64, _purpose: FramePurpose) -> Option<PhysAddr> {
        if size > FRAME_BYTES || align > FRAME_BYTES {
            return None;
        }
        let va = self.arena.take()?;
        Some(PhysAddr(self.image_pa(va)))
    }

    fn free_frames(&mut self, _addr: PhysAddr, _size: u64, _purpose: FramePurpose) {
        // Arena frames live for the whole run; the mapper frees nothing on success.
    }
}

/// The builder on format `F` with `features`, checked on the host (each port's tests
/// call it): an HHDM over two ranges with large leaves where aligned, the image W^X at
/// -2 GiB, each translation read back through the software walker; a page mapped twice
/// is refused; an exhausted arena is `NoMemory`.
#[cfg(not(target_os = "none"))]
pub fn check_builder<F: PageTableFormat>(features: Features) {
    use alloc::boxed::Box;

    const HHDM: u64 = 0xffff_8000_0000_0000;
    const GIB: u64 = 1 << 30;
    let arena: &'static FrameArena<16> = Box::leak(Box::new(FrameArena::new()));
    // SAFETY: host memory is its own image mapping (offset 0) and every table frame
    // comes from the arena, which lives for the rest of the test process.
    let mut t = unsafe { KernelTables::<F, 16>::new(arena, (0, 0), HHDM, features, None) }
        .expect("a root from the arena");
    let data = EntryAttrs::kernel_data(features);
    let mut ranges = [(0, 0); 4];
    let (n, _) = merge_ranges([(0x1000, 0x9_f000), (GIB, 3 * GIB)], &mut ranges);
    for &(s, e) in &ranges[..n] {
        t.map(HHDM + s, s, e - s, data).expect("HHDM");
    }
    let layout = ImageLayout {
        start: 0xffff_ffff_8000_0000,
        text_end: 0xffff_ffff_8000_4000,
        rodata_end: 0xffff_ffff_8000_6000,
        end: 0xffff_ffff_8020_0000,
    };
    let kphys = 0x20_0000;
    for (start, end, attrs) in layout.spans(data) {
        let pa = kphys + (start - layout.start);
        t.map(start, pa, end - start, attrs).expect("image");
    }
    let walk = |t: &KernelTables<'_, F, 16>, va: u64| {
        walk::translate::<F, _>(t, t.root, features, va).expect("mapped")
    };
    let low = walk(&t, HHDM + 0x5008);
    assert_eq!((low.phys.0, low.leaf_bytes), (0x5008, FRAME_BYTES));
    let big = walk(&t, HHDM + 2 * GIB + 0x1234);
    assert_eq!(big.phys.0, 2 * GIB + 0x1234);
    assert!(big.leaf_bytes > FRAME_BYTES, "a large leaf where aligned");
    let text = walk(&t, layout.start + 0x10);
    assert_eq!(text.phys.0, kphys + 0x10);
    assert!(!text.attrs.contains(EntryAttrs::WRITABLE));
    assert!(!text.attrs.contains(EntryAttrs::NO_EXECUTE));
    let rodata = walk(&t, layout.text_end);
    assert!(!rodata.attrs.contains(EntryAttrs::WRITABLE));
    let rw = walk(&t, layout.rodata_end);
    assert!(rw.attrs.contains(EntryAttrs::WRITABLE));
    if features.contains(Features::NO_EXECUTE) {
        assert!(rodata.attrs.contains(EntryAttrs::NO_EXECUTE));
        assert!(rw.attrs.contains(EntryAttrs::NO_EXECUTE));
    }
    assert!(t.mapped(HHDM + 0x1000) && !t.mapped(HHDM + 0xa_0000));
    assert_eq!(
        t.map(HHDM + 0x1000, 0x1000, FRAME_BYTES, data),
        Err(MapError::AlreadyMapped(HHDM + 0x1000))
    );
    assert!(t.stats.tables > 0 && t.stats.leaves.iter().sum::<u64>() > 0);
    let mut far = 0x7f00_0000_0000;
    let exhausted = loop {
        match t.map(far, 0, FRAME_BYTES, data) {
            Ok(()) => far += 1 << 39,
            Err(e) => break e,
        }
    };
    assert_eq!(exhausted, MapError::NoMemory);
    assert_eq!(arena.used(), 16);
}

#[cfg(test)]
#[path = "kpt_tests.rs"]
mod tests;
