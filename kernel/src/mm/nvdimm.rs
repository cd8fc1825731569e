//! The nvdimm pfn-device layout (`nd_pfn_init`) and the altmap built from it
//! (`__nvdimm_setup_pfn`), as pure functions (linux-mm.md §1.4).
//!
//! On-media: `[0, 4K)` unused, `[4K, 8K)` the info block, `[8K, dataoff)` memmap storage,
//! `[dataoff, size - end_trunc)` data.

use core::fmt;

use super::addr::{PAGE_SHIFT, align_down, align_up};
use super::altmap::VmemAltmap;
use super::arch::{MmArch, SUBSECTION_SHIFT};
use super::page::STRUCT_PAGE_SIZE;

/// `nd_info_block_reserve()`: the first 8 KiB (unused page + info block).
pub const INFO_BLOCK_RESERVE: u64 = 8192;
/// `memremap_compat_align()`: the subsection size.
pub const COMPAT_ALIGN: u64 = 1 << SUBSECTION_SHIFT;

/// What `nd_pfn_init` records in the info block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NdPfnLayout {
    /// Namespace start (physical).
    pub start: u64,
    /// Namespace size in bytes.
    pub size: u64,
    /// Effective alignment: `max(requested, COMPAT_ALIGN)`.
    pub align: u64,
    /// Offset of the first data byte (`dataoff`).
    pub dataoff: u64,
    /// Bytes cut from the end to keep it aligned.
    pub end_trunc: u64,
    /// Data pages recorded in the info block.
    pub npfns: u64,
}

/// Why a namespace cannot be set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NvdimmError {
    /// The start is not `COMPAT_ALIGN`-aligned (`-EINVAL`).
    StartMisaligned {
        /// The start.
        start: u64,
        /// The alignment required.
        align: u64,
    },
    /// The requested alignment is not a power of two of at least a page (`-EINVAL`).
    BadAlign(u64),
    /// The region is too small for its own memmap: data would start at or past its
    /// usable end (`-ENXIO`).
    TooSmall {
        /// Where data would start.
        dataoff: u64,
        /// Size minus `end_trunc` (0 when `end_trunc` exceeds the size).
        usable: u64,
    },
}

impl fmt::Display for NvdimmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NvdimmError::StartMisaligned { start, align } => {
                write!(f, "namespace start {start:#x} is not {align:#x}-aligned")
            }
            NvdimmError::BadAlign(align) => write!(f, "unsupported alignment {align:#x}"),
            NvdimmError::TooSmall { dataoff, usable } => write!(
                f,
                "region too small for its own memmap: dataoff {dataoff:#x} >= usable {usable:#x}"
            ),
        }
    }
}

/// `nd_pfn_init` in PMEM (`map=dev`) mode.
pub fn nd_pfn_init(
    start: u64,
    size: u64,
    requested_align: u64,
) -> Result<NdPfnLayout, NvdimmError> {
    if !requested_align.is_power_of_two() || requested_align < 1 << PAGE_SHIFT {
        return Err(NvdimmError::BadAlign(requested_align));
    }
    let align = requested_align.max(COMPAT_ALIGN);
    if !start.is_multiple_of(COMPAT_ALIGN) {
        return Err(NvdimmError::StartMisaligned {
            start,
            align: COMPAT_ALIGN,
        });
    }
    let end_trunc = start + size - align_down(start + size, align);
    let described = size.saturating_sub(INFO_BLOCK_RESERVE) >> PAGE_SHIFT;
    let dataoff = align_up(
        start + INFO_BLOCK_RESERVE + STRUCT_PAGE_SIZE * described,
        align,
    ) - start;
    // With `align` above the subsection size the aligned end may fall before the start
    // (a small range near an alignment boundary): nothing is usable then.
    let usable = size.saturating_sub(end_trunc);
    if dataoff >= usable {
        return Err(NvdimmError::TooSmall { dataoff, usable });
    }
    Ok(NdPfnLayout {
        start,
        size,
        align,
        dataoff,
        end_trunc,
        npfns: (size - dataoff - end_trunc) >> PAGE_SHIFT,
    })
}

/// `__nvdimm_setup_pfn`: the altmap for a layout. `offset()` equals `dataoff` in pages.
pub fn nvdimm_altmap(arch: &MmArch, layout: &NdPfnLayout) -> VmemAltmap {
    let first_pfn = layout.start >> PAGE_SHIFT;
    let base_pfn = align_down(first_pfn, arch.pages_per_subsection());
    let reserve = (INFO_BLOCK_RESERVE >> PAGE_SHIFT) + (first_pfn - base_pfn);
    let end_pfn = (layout.start + layout.size - 1 - layout.end_trunc) >> PAGE_SHIFT;
    let free = (layout.dataoff - INFO_BLOCK_RESERVE) >> PAGE_SHIFT;
    VmemAltmap::new(base_pfn, end_pfn, reserve, free)
}

/// Both steps: the layout and its altmap.
pub fn nvdimm_setup(
    arch: &MmArch,
    start: u64,
    size: u64,
    align: u64,
) -> Result<(NdPfnLayout, VmemAltmap), NvdimmError> {
    let layout = nd_pfn_init(start, size, align)?;
    let altmap = nvdimm_altmap(arch, &layout);
    log::debug!(
        "nvdimm: {start:#x}+{size:#x} dataoff={:#x} free={} reserve={}",
        layout.dataoff,
        altmap.free,
        altmap.reserve
    );
    Ok((layout, altmap))
}
