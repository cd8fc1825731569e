//! Scenarios of the altmaps the kernel builds: the exact altmap of a range, an nvdimm
//! namespace's figures, a memmap_on_memory block hosting its own memmap, and removal
//! through the wrong altmap refused.

use crate::mm::addr::{PAGE_SIZE, Pfn};
use crate::mm::altmap::VmemAltmap;
use crate::mm::arch::MmArch;
use crate::mm::error::MmError;
use crate::mm::memmap_on_memory::{MemmapOnMemoryMode, memmap_on_memory_altmap};
use crate::mm::nvdimm::{NdPfnLayout, nvdimm_setup};
use crate::mm::pgtable::Features;
use crate::mm::sim::World;
use crate::mm::vmemmap::VmemmapArch;

/// An altmap covering exactly the memmap of `range` (no reserve).
pub fn exact_altmap(arch: &MmArch, range: &core::ops::Range<Pfn>) -> VmemAltmap {
    let pages = range.end.0 - range.start.0;
    VmemAltmap::new(
        range.start.0,
        range.end.0 - 1,
        0,
        arch.memmap_bytes(pages) / PAGE_SIZE,
    )
}

/// An nvdimm namespace of `sections` sections at a section-aligned start: returns the
/// layout and the altmap after populating (the caller checks the arch's numbers), after
/// checking that removal ends at `alloc == 0`.
pub fn nvdimm_namespace<F: VmemmapArch>(
    features: Features,
    sections: u64,
) -> Result<(NdPfnLayout, VmemAltmap), MmError> {
    let arch = F::MM;
    let mut world = World::<F>::new(features);
    let range = world.sections(0, sections);
    let (layout, mut altmap) = nvdimm_setup(
        arch,
        range.start.addr().0,
        sections * arch.section_bytes(),
        2 << 20,
    )
    .expect("layout");
    world.add(range.clone(), Some(&mut altmap))?;
    world.check_invariants(&[&altmap]);
    let populated = altmap.clone();
    world.remove(range, Some(&mut altmap)).expect("remove");
    assert_eq!((altmap.alloc, altmap.align), (0, 0));
    Ok((layout, populated))
}

/// memmap_on_memory for a block of `sections` sections: the memmap lives in the block's
/// first pages (self-hosted: the struct page of the block's first pfn is inside the
/// block); removing without the altmap is refused (Linux's NULL-altmap error path,
/// §6.4 item 14) and removing with it ends at `alloc == 0`.
pub fn memmap_on_memory_block<F: VmemmapArch>(features: Features, sections: u64) {
    let arch = F::MM;
    let mut world = World::<F>::new(features);
    let start = world.snapshot();
    let range = world.sections(0, sections);
    let mut altmap = memmap_on_memory_altmap(
        arch,
        range.start,
        sections * arch.section_bytes(),
        MemmapOnMemoryMode::Enabled,
    )
    .expect("supported");
    world.add(range.clone(), Some(&mut altmap)).expect("add");
    assert_eq!(altmap.nr_free(), 0, "the altmap is consumed exactly");
    let first = world.struct_page_phys(range.start).expect("mapped");
    assert_eq!(
        first.phys.pfn(),
        range.start,
        "self-hosted: struct page of the first pfn in the first page"
    );
    let before = world.snapshot();
    let refused = world.remove(range.clone(), None).expect_err("no altmap");
    assert!(
        matches!(refused, MmError::AltmapMismatch { .. }),
        "{refused}"
    );
    assert_eq!(world.snapshot(), before);
    world
        .remove(range, Some(&mut altmap))
        .expect("remove with the altmap");
    assert_eq!((altmap.alloc, altmap.align), (0, 0));
    assert_eq!(world.snapshot(), start);
}

/// Removing through another altmap, or none, is refused and changes nothing.
pub fn wrong_altmap_is_refused<F: VmemmapArch>(features: Features) {
    let arch = F::MM;
    let mut world = World::<F>::new(features);
    let range = world.sections(0, 1);
    let mut right = exact_altmap(arch, &range);
    let mut other = VmemAltmap::new(range.end.0, range.end.0 + 4096, 0, 4096);
    world.add(range.clone(), Some(&mut right)).expect("add");
    let before = world.snapshot();
    for wrong in [Some(&mut other), None] {
        let error = world
            .remove(range.clone(), wrong)
            .expect_err("wrong altmap");
        assert!(matches!(error, MmError::AltmapMismatch { .. }), "{error}");
        assert_eq!(world.snapshot(), before);
    }
    world.remove(range, Some(&mut right)).expect("right altmap");
}
