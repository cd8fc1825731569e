//! A memory model's constants, as data.
//!
//! The generic code never branches on the target: it reads an [`MmArch`]. Each arch crate
//! supplies its own value beside its vmemmap walker (`arch/<arch>/src/vmemmap.rs`, through
//! [`super::vmemmap::VmemmapArch::MM`]), mirroring Linux's constants (linux-mm.md §0).

use super::addr::{PAGE_SHIFT, PAGE_SIZE, Pfn, VirtAddr};
use super::page::STRUCT_PAGE_SIZE;

/// Subsections are 2 MiB on every arch (Linux hard-codes `SUBSECTION_SHIFT = 21`).
pub const SUBSECTION_SHIFT: u32 = 21;

/// One architecture's memory-model constants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmArch {
    /// Short name for messages.
    pub name: &'static str,
    /// log2 of the section size (`SECTION_SIZE_BITS`).
    pub section_shift: u32,
    /// Physical address bits the memory model covers (sizes the vmemmap window).
    pub max_phys_bits: u32,
    /// Virtual address of `pfn_to_page(0)`.
    pub vmemmap_base: u64,
    /// log2 of the huge vmemmap leaf (the level just above the last).
    pub vmemmap_leaf_shift: u32,
    /// Size of a last-level (PTE) table in bytes.
    pub pte_table_bytes: u64,
    /// Size of the table that holds huge vmemmap leaves (PMD / L2 / segment table).
    pub leaf_table_bytes: u64,
    /// log2 of the address span one such table covers.
    pub leaf_table_span_shift: u32,
    /// `pageblock_order` (log2 of the pages a pageblock holds).
    pub pageblock_order: u32,
}

impl MmArch {
    /// Base page size in bytes (4 KiB everywhere).
    pub const fn page_size(&self) -> u64 {
        PAGE_SIZE
    }

    /// Section size in bytes.
    pub const fn section_bytes(&self) -> u64 {
        1 << self.section_shift
    }

    /// `PAGES_PER_SECTION`.
    pub const fn pages_per_section(&self) -> u64 {
        1 << (self.section_shift - PAGE_SHIFT)
    }

    /// `PAGES_PER_SUBSECTION` (512 everywhere with 4 KiB pages).
    pub const fn pages_per_subsection(&self) -> u64 {
        1 << (SUBSECTION_SHIFT - PAGE_SHIFT)
    }

    /// `SUBSECTIONS_PER_SECTION`: 64 for 128 MiB sections, 128 for 256 MiB.
    pub const fn subsections_per_section(&self) -> u64 {
        1 << (self.section_shift - SUBSECTION_SHIFT)
    }

    /// Pages in one pageblock.
    pub const fn pageblock_pages(&self) -> u64 {
        1 << self.pageblock_order
    }

    /// Size of the huge vmemmap leaf in bytes.
    pub const fn vmemmap_leaf_bytes(&self) -> u64 {
        1 << self.vmemmap_leaf_shift
    }

    /// Bytes of memmap for `pages` struct pages.
    pub const fn memmap_bytes(&self, pages: u64) -> u64 {
        pages * STRUCT_PAGE_SIZE
    }

    /// Bytes of memmap per section: 2 MiB for 128 MiB sections, 4 MiB for 256 MiB.
    pub const fn section_memmap_bytes(&self) -> u64 {
        self.memmap_bytes(self.pages_per_section())
    }

    /// Number of frames the memory model covers.
    pub const fn max_pfn(&self) -> u64 {
        1 << (self.max_phys_bits - PAGE_SHIFT)
    }

    /// First address past the vmemmap window.
    pub const fn vmemmap_end(&self) -> u64 {
        self.vmemmap_base
            .wrapping_add(self.memmap_bytes(self.max_pfn()))
    }

    /// Section number of a frame.
    pub const fn section_nr(&self, pfn: Pfn) -> u64 {
        pfn.0 >> (self.section_shift - PAGE_SHIFT)
    }

    /// First frame of a section.
    pub const fn section_start(&self, section: u64) -> Pfn {
        Pfn(section << (self.section_shift - PAGE_SHIFT))
    }

    /// `pfn_to_page`: the virtual address of a frame's struct page.
    pub const fn pfn_to_page(&self, pfn: Pfn) -> VirtAddr {
        VirtAddr(self.vmemmap_base + pfn.0 * STRUCT_PAGE_SIZE)
    }

    /// `page_to_pfn`: the frame a struct-page address describes.
    pub const fn page_to_pfn(&self, page: VirtAddr) -> Pfn {
        Pfn((page.0 - self.vmemmap_base) / STRUCT_PAGE_SIZE)
    }
}
