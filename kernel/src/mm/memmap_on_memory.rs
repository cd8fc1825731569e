//! memmap_on_memory: sizing and gates for a memmap carved from the hot-added block
//! itself (linux-mm.md §1.5), and the per-block altmap it uses.

use super::addr::{PAGE_SHIFT, PAGE_SIZE, Pfn, align_up};
use super::altmap::VmemAltmap;
use super::arch::MmArch;
use super::page::STRUCT_PAGE_SIZE;

/// The `memory_hotplug.memmap_on_memory` setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemmapOnMemoryMode {
    /// Off.
    Disabled,
    /// On; the memmap must be pageblock-aligned by itself.
    Enabled,
    /// On; the memmap is padded to a pageblock multiple (wasting pages).
    Force,
}

/// Why a block cannot host its own memmap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemmapOnMemoryRefusal {
    /// The mode is off.
    Disabled,
    /// The memmap is not a whole number of pages.
    NotPageAligned {
        /// Memmap bytes.
        vmemmap_bytes: u64,
    },
    /// The memmap pages are not a pageblock multiple.
    NotPageblockAligned {
        /// Memmap pages.
        pages: u64,
        /// Pages per pageblock.
        pageblock: u64,
    },
    /// The memmap would take the whole block.
    WholeBlock {
        /// Memmap pages.
        pages: u64,
    },
    /// The memmap does not span whole huge vmemmap leaves.
    NotLeafAligned {
        /// Memmap bytes.
        vmemmap_bytes: u64,
        /// Leaf size.
        leaf_bytes: u64,
    },
}

/// `memory_block_memmap_on_memory_pages` for a struct page of `struct_page_bytes`.
pub fn memmap_pages_for(
    arch: &MmArch,
    block_bytes: u64,
    struct_page_bytes: u64,
    mode: MemmapOnMemoryMode,
) -> u64 {
    let pages = ((block_bytes >> PAGE_SHIFT) * struct_page_bytes).div_ceil(PAGE_SIZE);
    match mode {
        MemmapOnMemoryMode::Force => align_up(pages, arch.pageblock_pages()),
        _ => pages,
    }
}

/// Memmap pages a block of `block_bytes` needs with 64-byte struct pages.
pub fn memmap_on_memory_pages(arch: &MmArch, block_bytes: u64, mode: MemmapOnMemoryMode) -> u64 {
    memmap_pages_for(arch, block_bytes, STRUCT_PAGE_SIZE, mode)
}

/// `mhp_supports_memmap_on_memory` for a struct page of `struct_page_bytes`: the memmap
/// pages, or the first gate that fails.
pub fn supports_for(
    arch: &MmArch,
    block_bytes: u64,
    struct_page_bytes: u64,
    mode: MemmapOnMemoryMode,
) -> Result<u64, MemmapOnMemoryRefusal> {
    if mode == MemmapOnMemoryMode::Disabled {
        return Err(MemmapOnMemoryRefusal::Disabled);
    }
    let vmemmap_bytes = (block_bytes >> PAGE_SHIFT) * struct_page_bytes;
    if !vmemmap_bytes.is_multiple_of(PAGE_SIZE) {
        return Err(MemmapOnMemoryRefusal::NotPageAligned { vmemmap_bytes });
    }
    let pages = memmap_pages_for(arch, block_bytes, struct_page_bytes, mode);
    if !pages.is_multiple_of(arch.pageblock_pages()) {
        return Err(MemmapOnMemoryRefusal::NotPageblockAligned {
            pages,
            pageblock: arch.pageblock_pages(),
        });
    }
    if pages == block_bytes >> PAGE_SHIFT {
        return Err(MemmapOnMemoryRefusal::WholeBlock { pages });
    }
    let leaf_bytes = arch.vmemmap_leaf_bytes();
    if !vmemmap_bytes.is_multiple_of(leaf_bytes) {
        return Err(MemmapOnMemoryRefusal::NotLeafAligned {
            vmemmap_bytes,
            leaf_bytes,
        });
    }
    Ok(pages)
}

/// [`supports_for`] with 64-byte struct pages.
pub fn supports_memmap_on_memory(
    arch: &MmArch,
    block_bytes: u64,
    mode: MemmapOnMemoryMode,
) -> Result<u64, MemmapOnMemoryRefusal> {
    supports_for(arch, block_bytes, STRUCT_PAGE_SIZE, mode)
}

/// The altmap of one block (`create_altmaps_and_memory_blocks`): base at the block start,
/// inclusive end, no reserve, `free` = the memmap pages.
pub fn memmap_on_memory_altmap(
    arch: &MmArch,
    block_start: Pfn,
    block_bytes: u64,
    mode: MemmapOnMemoryMode,
) -> Result<VmemAltmap, MemmapOnMemoryRefusal> {
    let pages = supports_memmap_on_memory(arch, block_bytes, mode)?;
    let end_pfn = block_start.0 + (block_bytes >> PAGE_SHIFT) - 1;
    Ok(VmemAltmap::new(block_start.0, end_pfn, 0, pages))
}
