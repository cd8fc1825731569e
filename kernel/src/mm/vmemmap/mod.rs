//! The vmemmap: struct-page addresses mapped over any [`PageTableFormat`], with each arch
//! deciding how, as in Linux (linux-mm.md §2–§3).
//!
//! - **Who decides.** An arch implements [`VmemmapArch`] in its own crate
//!   (`arch/<arch>/src/vmemmap.rs`): Linux's `vmemmap_populate` and `vmemmap_free` for
//!   that arch. It composes the primitives of a [`Populate`] call — Linux's
//!   `vmemmap_{pgd,p4d,pud,pmd}_populate` ([`Populate::table`]),
//!   `vmemmap_alloc_block_buf(size, altmap)` ([`Populate::alloc_block_buf`]), the shared
//!   `vmemmap_populate_basepages` and `vmemmap_populate_hugepages` with the arch's
//!   `vmemmap_set_pmd`/`vmemmap_check_pmd` hooks ([`HugePmd`]) — or walks its own tables
//!   with them (Linux's s390 `modify_pagetable`).
//! - **What the kernel guarantees.** Page-table pages always come from RAM; a failed
//!   populate is rolled back exactly, by freeing the range it was mapping (which was
//!   unmapped before); a free first validates the whole range, then changes it, so it
//!   fails without side effects.
//! - **No state per leaf** beside the page tables: the walker keeps no vector that grows
//!   with the leaves (s390x under TCG maps 4096 4 KiB leaves per GiB).
//! - **Partly used huge leaves.** A huge leaf serves every section whose struct pages
//!   it holds; the next section reuses it instead of paying twice, and `free` releases it
//!   only when no other frame it describes is in use, which the caller says ([`InUse`]:
//!   the sparse model's present subsections). Unlike Linux's 0xFD fill this never writes
//!   to (possibly inaccessible) device memory, costs no 1 MiB `memchr_inv` on removal,
//!   and cannot be fooled by memmap contents.
//! - **Altmap ownership.** A leaf taken from an altmap carries the `ALTMAP` software bit
//!   in its entry ([`EntryAttrs::ALTMAP`]); only the altmap whose storage holds the frame
//!   takes it back, so freeing it through another altmap (or none) is refused instead of
//!   returning device memory to the wrong allocator (§6.3 bugs 3 and 8).
//! - **Semantics** ([`Semantics`]): `hotmem`, `linux` or `rfc-2017` decide the altmap
//!   arithmetic on free and the choices Linux made that hotmem hardens; Linux's hazards
//!   are named when they bite and kept in [`Vmemmap::hazards`].
//! - **Trace** ([`trace`]): with a tracer installed, one line per table and per leaf and a
//!   summary per call. Without one the walk is compiled with [`trace::NoTrace`], so the
//!   trace costs nothing when off.
//!
//! Files: this one holds the trait and the walker's state; `entry_points.rs` the public
//! populate/free calls; `stats.rs` the counters; `call.rs`, `helpers.rs`, `free.rs`,
//! `leaves.rs` and `trace.rs` the walk itself.

mod call;
mod entry_points;
mod free;
mod helpers;
mod leaves;
mod stats;
pub mod trace;

use alloc::vec::Vec;
use core::marker::PhantomData;
use core::ops::Range;

pub use call::{Populate, conflict};
pub use free::Remove;
pub use helpers::HugePmd;
pub use leaves::{Block, Source};
pub use stats::{Tally, VmemmapStats};
pub use trace::{Trace, TraceEvent, Tracer};

use super::addr::{Pfn, PhysAddr, VirtAddr};
use super::altmap::Hazard;
use super::arch::MmArch;
use super::error::{AllocKind, MmError};
use super::inject::FaultInjector;
use super::pgtable::{EntryAttrs, Features, PageTableFormat};
use super::phys::{FramePurpose, FrameSource, PhysMem};
use super::semantics::Semantics;

/// How many frames of a range have their memmap in use (their subsections present),
/// besides those a populate or free call works on: the sparse model answers it, and the
/// walker asks it before releasing a huge leaf the call covers only in part.
pub type InUse<'a> = &'a dyn Fn(Range<Pfn>) -> u64;

/// [`InUse`] for a caller with nothing else mapped (whole sections, no neighbours).
pub const NOTHING_ELSE_IN_USE: InUse<'static> = &|_| 0;

/// Deepest supported table hierarchy (5 levels).
pub const MAX_LEVELS: usize = 5;

/// An arch's vmemmap: its memory-model constants and Linux's `vmemmap_populate` /
/// `vmemmap_free` for it. Implemented beside the format, in the arch crate.
pub trait VmemmapArch: PageTableFormat + Sized + 'static {
    /// The memory-model constants (section size, vmemmap window, huge leaf size).
    const MM: &'static MmArch;

    /// Maps struct pages `[start, end)` (page-aligned, inside the vmemmap window, at most
    /// one section's memmap) with the primitives of `call`. An error is rolled back by the
    /// caller: the arch does not undo anything itself.
    fn vmemmap_populate<M: PhysMem + FrameSource, T: Trace>(
        call: &mut Populate<'_, Self, M, T>,
        start: u64,
        end: u64,
    ) -> Result<(), MmError>;

    /// Unmaps struct pages `[start, end)`: runs once to validate (changing nothing) and
    /// once to apply, as `call` says.
    fn vmemmap_free<M: PhysMem + FrameSource, T: Trace>(
        call: &mut Remove<'_, Self, M, T>,
        start: u64,
        end: u64,
    ) -> Result<(), MmError>;

    /// Whether [`VmemmapArch::vmemmap_populate`] of `[start, end)` with an altmap takes its
    /// leaves from that altmap (what `verify` expects of each span). Most arches do.
    fn altmap_backs(start: u64, end: u64) -> bool {
        let _ = (start, end);
        true
    }
}

/// The vmemmap mapping state over one page-table hierarchy.
pub struct Vmemmap<F: VmemmapArch> {
    features: Features,
    attrs: EntryAttrs,
    root: PhysAddr,
    owns_root: bool,
    huge_level: usize,
    huge_available: bool,
    semantics: Semantics,
    stats: VmemmapStats,
    tally: Tally,
    hazards: Vec<Hazard>,
    faults: FaultInjector,
    tracer: Option<Tracer>,
    format: PhantomData<F>,
}

impl<F: VmemmapArch> Vmemmap<F> {
    /// Allocates an empty root table from RAM.
    ///
    /// # Panics
    /// If the arch's huge vmemmap leaf is not the level just above the format's last
    /// level (a mismatch between the constants and the format, i.e. a programming error).
    pub fn new<M: PhysMem + FrameSource>(features: Features, mem: &mut M) -> Result<Self, MmError> {
        let mut vmemmap = Self::with_root(features, PhysAddr(0));
        vmemmap.root = vmemmap.new_table(mem, 0)?;
        vmemmap.owns_root = true;
        Ok(vmemmap)
    }

    /// Uses an existing root table (e.g. the live kernel one); it is never freed here.
    ///
    /// # Panics
    /// As [`Vmemmap::new`].
    pub fn with_root(features: Features, root: PhysAddr) -> Self {
        let huge_level = F::level_for_span(F::MM.vmemmap_leaf_bytes())
            .expect("vmemmap leaf size matches no level of the format");
        assert_eq!(
            huge_level + 1,
            F::last_level(),
            "huge leaf must sit above the PTE level"
        );
        assert!(F::LEVELS.len() <= MAX_LEVELS);
        Vmemmap {
            features,
            attrs: EntryAttrs::kernel_data(features),
            root,
            owns_root: false,
            huge_level,
            huge_available: F::leaf_allowed(huge_level, features),
            semantics: Semantics::default(),
            stats: VmemmapStats::default(),
            tally: Tally::default(),
            hazards: Vec::new(),
            faults: FaultInjector::new(),
            tracer: None,
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
        F::MM
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

    /// The counters that only grow.
    pub fn tally(&self) -> Tally {
        self.tally
    }

    /// Every hazard the checker named, oldest first.
    pub fn hazards(&self) -> &[Hazard] {
        &self.hazards
    }

    /// The rules in force.
    pub fn semantics(&self) -> Semantics {
        self.semantics
    }

    /// Changes the rules for every later populate and free.
    pub fn set_semantics(&mut self, semantics: Semantics) {
        self.semantics = semantics;
    }

    /// Installs (or with `None` removes) the tracer that receives every trace event.
    pub fn set_tracer(&mut self, tracer: Option<Tracer>) {
        self.tracer = tracer;
    }

    /// Whether a tracer is installed.
    pub fn tracing(&self) -> bool {
        self.tracer.is_some()
    }

    /// The fault injector consulted by every allocation.
    pub fn faults(&mut self) -> &mut FaultInjector {
        &mut self.faults
    }

    /// Whether `populate(start, end, Some(altmap))` takes its leaves from the altmap under
    /// this arch's policy ([`VmemmapArch::altmap_backs`]; x86_64 ignores the altmap for a
    /// span under one section's memmap and maps it with base pages from RAM, as Linux's
    /// `vmemmap_populate` does). The semantics switch is not consulted: a leaf taken from
    /// RAM because of `rfc-2017` is a leaf from the wrong source.
    pub fn takes_altmap_leaves(&self, start: VirtAddr, end: VirtAddr) -> bool {
        F::altmap_backs(start.0, end.0)
    }

    /// A new table for `level`, filled with that level's empty entries (always RAM).
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
