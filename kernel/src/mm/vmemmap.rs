//! The generic vmemmap walker: `populate` maps struct-page addresses, `free` unmaps them,
//! over any [`PageTableFormat`], following each arch's policy (linux-mm.md §2.3).
//!
//! - Huge leaves (x86 PMD 2 MiB, arm64 L2 block 2 MiB, s390x 1 MiB segment) when the
//!   policy and features allow, base pages otherwise; every leaf comes from the altmap
//!   when one is given (at every level), page-table pages always from RAM.
//! - Partly used huge leaves are tracked out of band: each huge leaf has a bitmap of the
//!   4 KiB memmap pages in use ([`leaves`]). The next section reuses the leaf instead of
//!   paying twice, and `free` releases a leaf only when its bitmap is empty. Unlike
//!   Linux's 0xFD fill this never writes to (possibly inaccessible) device memory, costs
//!   no 1 MiB `memchr_inv` on removal, and cannot be fooled by memmap contents.
//! - Each leaf taken from an altmap is recorded against that altmap's storage range, so
//!   freeing it through another altmap (or none) is refused instead of returning device
//!   memory to the wrong allocator (linux-mm.md §6.3 bugs 3 and 8).
//! - `populate` keeps an undo log and rolls back exactly on any failure; `free` first
//!   validates the whole range and then changes it, so it fails without side effects.
//! - The walk descends once per table, so each leaf costs O(1) table accesses.

mod free;
mod leaves;
mod populate;

use core::marker::PhantomData;

use super::addr::{PAGE_SIZE, Pfn, PhysAddr, VirtAddr};
use super::altmap::VmemAltmap;
use super::arch::{MmArch, VmemmapPolicy};
use super::error::{AllocKind, MmError};
use super::inject::FaultInjector;
use super::pgtable::{EntryAttrs, Features, PageTableFormat};
use super::phys::{FramePurpose, FrameSource, PhysMem};

pub use leaves::PageBits;

/// Deepest supported table hierarchy (s390x region-first rooted: 5 levels).
pub const MAX_LEVELS: usize = 5;

/// Live counters, cheap to read at any time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmemmapStats {
    /// Live tables per level (index = the table's level; the root is level 0).
    pub tables: [u64; MAX_LEVELS],
    /// Bytes of all live tables.
    pub table_bytes: u64,
    /// Huge leaves backed by an altmap.
    pub huge_leaves_altmap: u64,
    /// Huge leaves backed by RAM.
    pub huge_leaves_ram: u64,
    /// Base-page leaves backed by an altmap.
    pub base_leaves_altmap: u64,
    /// Base-page leaves backed by RAM.
    pub base_leaves_ram: u64,
    /// Pages of live leaves taken from altmaps.
    pub altmap_pages: u64,
    /// Bytes of live leaves taken from RAM.
    pub ram_leaf_bytes: u64,
}

impl VmemmapStats {
    /// Total live table pages, counting a table smaller than a page as a fraction.
    pub fn table_pages(&self) -> u64 {
        self.table_bytes.div_ceil(PAGE_SIZE)
    }

    /// Total live leaves.
    pub fn leaves(&self) -> u64 {
        self.huge_leaves_altmap
            + self.huge_leaves_ram
            + self.base_leaves_altmap
            + self.base_leaves_ram
    }
}

/// How one `populate` call chooses its leaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LeafPlan {
    /// A huge leaf per huge-level slot; if that fails, base pages or an error.
    Huge {
        /// Fall back to a page table plus base pages when the huge allocation fails.
        fallback_to_base: bool,
    },
    /// Base pages only.
    Base,
}

/// Where a leaf came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LeafSource {
    Ram,
    Altmap,
}

/// The vmemmap mapping state over one page-table hierarchy.
pub struct Vmemmap<F: PageTableFormat> {
    arch: &'static MmArch,
    features: Features,
    attrs: EntryAttrs,
    root: PhysAddr,
    owns_root: bool,
    huge_level: usize,
    huge_available: bool,
    book: leaves::LeafBook,
    stats: VmemmapStats,
    faults: FaultInjector,
    format: PhantomData<F>,
}

impl<F: PageTableFormat> Vmemmap<F> {
    /// Allocates an empty root table from RAM.
    ///
    /// # Panics
    /// If `arch`'s huge vmemmap leaf is not the level just above the format's last level
    /// (a mismatch between the constants and the format, i.e. a programming error).
    pub fn new<M: PhysMem + FrameSource>(
        arch: &'static MmArch,
        features: Features,
        mem: &mut M,
    ) -> Result<Self, MmError> {
        let mut vmemmap = Self::with_root(arch, features, PhysAddr(0));
        vmemmap.root = vmemmap.new_table(mem, 0)?;
        vmemmap.owns_root = true;
        Ok(vmemmap)
    }

    /// Uses an existing root table (e.g. the live kernel one); it is never freed here.
    ///
    /// # Panics
    /// As [`Vmemmap::new`].
    pub fn with_root(arch: &'static MmArch, features: Features, root: PhysAddr) -> Self {
        let huge_level = F::level_for_span(arch.vmemmap_leaf_bytes())
            .expect("vmemmap leaf size matches no level of the format");
        assert_eq!(
            huge_level + 1,
            F::last_level(),
            "huge leaf must sit above the PTE level"
        );
        assert!(F::LEVELS.len() <= MAX_LEVELS);
        Vmemmap {
            arch,
            features,
            attrs: EntryAttrs::kernel_data(features),
            root,
            owns_root: false,
            huge_level,
            huge_available: F::leaf_allowed(huge_level, features),
            book: leaves::LeafBook::default(),
            stats: VmemmapStats::default(),
            faults: FaultInjector::new(),
            format: PhantomData,
        }
    }

    /// The root table.
    pub fn root(&self) -> PhysAddr {
        self.root
    }

    /// The root-register value for [`Vmemmap::root`] (CR3 / TTBR1 / ASCE).
    pub fn root_register(&self) -> u64 {
        F::root_register(self.root)
    }

    /// The memory-model constants.
    pub fn arch(&self) -> &'static MmArch {
        self.arch
    }

    /// The CPU features the walker honours.
    pub fn features(&self) -> Features {
        self.features
    }

    /// Level of the huge vmemmap leaves.
    pub fn huge_level(&self) -> usize {
        self.huge_level
    }

    /// The live counters.
    pub fn stats(&self) -> &VmemmapStats {
        &self.stats
    }

    /// The fault injector consulted by every allocation.
    pub fn faults(&mut self) -> &mut FaultInjector {
        &mut self.faults
    }

    /// Pages of the huge leaf at `leaf_va` that are in use, if it is mapped.
    pub fn huge_leaf_users(&self, leaf_va: VirtAddr) -> Option<u32> {
        self.book.users(leaf_va.0).map(PageBits::count)
    }

    /// Whether `populate(start, end, Some(altmap))` takes its leaves from the altmap under
    /// this arch's policy (x86_64 ignores the altmap for a span under one section's memmap
    /// and maps it with base pages from RAM, as Linux's `vmemmap_populate` does).
    pub fn takes_altmap_leaves(&self, start: VirtAddr, end: VirtAddr) -> bool {
        matches!(self.plan(start, end, true), Ok((_, true)))
    }

    /// Maps struct pages `[start, end)` (page-aligned, inside the vmemmap window).
    /// Already mapped parts are left alone. On failure nothing has changed.
    pub fn populate<M: PhysMem + FrameSource>(
        &mut self,
        mem: &mut M,
        start: VirtAddr,
        end: VirtAddr,
        altmap: Option<&mut VmemAltmap>,
    ) -> Result<(), MmError> {
        self.check_range(start, end)?;
        let (plan, use_altmap) = self.plan(start, end, altmap.is_some())?;
        let altmap = if use_altmap { altmap } else { None };
        self.populate_range(mem, start.0, end.0, plan, altmap)
    }

    /// Maps the struct pages of frames `[first, first + nr_pages)`.
    pub fn populate_pfns<M: PhysMem + FrameSource>(
        &mut self,
        mem: &mut M,
        first: Pfn,
        nr_pages: u64,
        altmap: Option<&mut VmemAltmap>,
    ) -> Result<(), MmError> {
        let (start, end) = self.memmap_range(first, nr_pages);
        self.populate(mem, start, end, altmap)
    }

    /// Unmaps struct pages `[start, end)`: base leaves in the range, huge leaves whose last
    /// user goes, and tables left empty. Leaves from an altmap go back to it (`altmap`
    /// must be the one they came from). Validates first: on error nothing has changed.
    pub fn free<M: PhysMem + FrameSource>(
        &mut self,
        mem: &mut M,
        start: VirtAddr,
        end: VirtAddr,
        mut altmap: Option<&mut VmemAltmap>,
    ) -> Result<(), MmError> {
        self.check_free(mem, start, end, altmap.as_deref_mut())?;
        self.free_range(mem, start.0, end.0, altmap, free::Pass::Apply)
    }

    /// Unmaps the struct pages of frames `[first, first + nr_pages)`.
    pub fn free_pfns<M: PhysMem + FrameSource>(
        &mut self,
        mem: &mut M,
        first: Pfn,
        nr_pages: u64,
        altmap: Option<&mut VmemAltmap>,
    ) -> Result<(), MmError> {
        let (start, end) = self.memmap_range(first, nr_pages);
        self.free(mem, start, end, altmap)
    }

    /// Checks that [`Vmemmap::free`] would succeed, changing nothing.
    pub fn check_free<M: PhysMem + FrameSource>(
        &mut self,
        mem: &mut M,
        start: VirtAddr,
        end: VirtAddr,
        altmap: Option<&mut VmemAltmap>,
    ) -> Result<(), MmError> {
        self.check_range(start, end)?;
        self.free_range(mem, start.0, end.0, altmap, free::Pass::Check)
    }

    /// Frees the root table if this walker allocated it. Everything must be unmapped.
    pub fn release_root<M: PhysMem + FrameSource>(self, mem: &mut M) -> Result<(), MmError> {
        if !self.table_is_empty(mem, 0, self.root) {
            return Err(MmError::PageTableConflict {
                va: VirtAddr(self.arch.vmemmap_base),
                level: 0,
            });
        }
        if self.owns_root {
            let geometry = &F::LEVELS[0];
            mem.free_frames(self.root, geometry.table_bytes, FramePurpose::PageTable);
        }
        Ok(())
    }

    /// The memmap addresses of frames `[first, first + nr_pages)`.
    pub fn memmap_range(&self, first: Pfn, nr_pages: u64) -> (VirtAddr, VirtAddr) {
        (
            self.arch.pfn_to_page(first),
            self.arch.pfn_to_page(first.add(nr_pages)),
        )
    }

    fn check_range(&self, start: VirtAddr, end: VirtAddr) -> Result<(), MmError> {
        if start >= end {
            return Err(MmError::Empty);
        }
        for va in [start, end] {
            if !va.is_aligned(PAGE_SIZE) {
                return Err(MmError::Misaligned {
                    what: "vmemmap address",
                    value: va.0,
                    align: PAGE_SIZE,
                });
            }
        }
        if start.0 < self.arch.vmemmap_base || end.0 > self.arch.vmemmap_end() {
            return Err(MmError::OutOfRange {
                what: "vmemmap address",
                value: if start.0 < self.arch.vmemmap_base {
                    start.0
                } else {
                    end.0
                },
                limit: self.arch.vmemmap_end(),
            });
        }
        Ok(())
    }

    /// The arch policy of linux-mm.md §2.3: which leaves, and whether the altmap is used.
    fn plan(
        &self,
        start: VirtAddr,
        end: VirtAddr,
        has_altmap: bool,
    ) -> Result<(LeafPlan, bool), MmError> {
        let sub_section = end.0 - start.0 < self.arch.section_memmap_bytes();
        let huge = LeafPlan::Huge {
            fallback_to_base: !has_altmap,
        };
        Ok(match self.arch.policy {
            VmemmapPolicy::X86 if sub_section => (LeafPlan::Base, false),
            VmemmapPolicy::X86 if self.huge_available => (huge, true),
            VmemmapPolicy::X86 if has_altmap => {
                log::error!("vmemmap: no cpu support for altmap allocations");
                return Err(MmError::NoHugeSupportForAltmap);
            }
            VmemmapPolicy::X86 => (LeafPlan::Base, false),
            VmemmapPolicy::Arm64 if sub_section || !self.huge_available => (LeafPlan::Base, true),
            VmemmapPolicy::Arm64 => (huge, true),
            VmemmapPolicy::S390 if self.huge_available => (
                LeafPlan::Huge {
                    fallback_to_base: true,
                },
                true,
            ),
            VmemmapPolicy::S390 => (LeafPlan::Base, true),
        })
    }

    /// A new table for `level`, filled with that level's empty entries.
    fn new_table<M: PhysMem + FrameSource>(
        &mut self,
        mem: &mut M,
        level: usize,
    ) -> Result<PhysAddr, MmError> {
        let geometry = &F::LEVELS[level];
        self.faults.check(AllocKind::PageTable)?;
        let table = mem
            .alloc_frames(
                geometry.table_bytes,
                geometry.table_align,
                FramePurpose::PageTable,
            )
            .ok_or(MmError::NoMemory(AllocKind::PageTable))?;
        mem.fill_u64(table, geometry.entries(), F::empty_entry(level));
        self.stats.tables[level] += 1;
        self.stats.table_bytes += geometry.table_bytes;
        Ok(table)
    }

    fn drop_table<M: PhysMem + FrameSource>(&mut self, mem: &mut M, level: usize, table: PhysAddr) {
        let geometry = &F::LEVELS[level];
        mem.free_frames(table, geometry.table_bytes, FramePurpose::PageTable);
        self.stats.tables[level] -= 1;
        self.stats.table_bytes -= geometry.table_bytes;
    }

    fn table_is_empty<M: PhysMem>(&self, mem: &M, level: usize, table: PhysAddr) -> bool {
        let empty = F::empty_entry(level);
        (0..F::LEVELS[level].entries() as u64).all(|i| mem.read_u64(table.add(i * 8)) == empty)
    }

    fn entry_addr(table: PhysAddr, level: usize, va: u64) -> PhysAddr {
        table.add(F::index(level, va) as u64 * 8)
    }
}
