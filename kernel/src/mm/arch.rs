//! Per-architecture memory-model constants, as data.
//!
//! The generic code never branches on the target; it reads one of these structs. The
//! three values below mirror Linux (linux-mm.md §0) except the vmemmap bases of aarch64
//! and s390x, which are our own choice and documented on each constant.

use super::addr::{PAGE_SHIFT, PAGE_SIZE, Pfn, VirtAddr};
use super::page::STRUCT_PAGE_SIZE;

/// Subsections are 2 MiB on every arch (Linux hard-codes `SUBSECTION_SHIFT = 21`).
pub const SUBSECTION_SHIFT: u32 = 21;

/// How an arch populates the vmemmap (linux-mm.md §2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmemmapPolicy {
    /// x86_64: sub-section ranges use RAM base pages and ignore the altmap; full sections
    /// use PMD leaves when PSE is present; no PSE plus an altmap is `ENOMEM`.
    X86,
    /// arm64 (4K granule): sub-section ranges use base pages *with* the altmap (the 2025
    /// fix); full sections use 2 MiB L2 blocks, with no RAM fallback when an altmap is given.
    Arm64,
    /// s390x: with EDAT-1 every segment gets a whole 1 MiB frame (altmap, else RAM);
    /// when that fails, or without EDAT-1, a page table plus 4 KiB pages (altmap, else RAM).
    S390,
}

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
    /// log2 of the huge vmemmap leaf: x86 PMD and arm64 L2 block 2 MiB, s390x segment 1 MiB.
    pub vmemmap_leaf_shift: u32,
    /// Size of a last-level (PTE) table in bytes.
    pub pte_table_bytes: u64,
    /// Size of the table that holds huge vmemmap leaves (PMD / L2 / segment table).
    pub leaf_table_bytes: u64,
    /// log2 of the address span one such table covers.
    pub leaf_table_span_shift: u32,
    /// `pageblock_order`: 9 (2 MiB) on x86_64 and arm64, 8 (1 MiB) on s390x.
    pub pageblock_order: u32,
    /// How the vmemmap is populated.
    pub policy: VmemmapPolicy,
}

impl MmArch {
    /// x86_64 with 4-level paging: Linux's fixed `__VMEMMAP_BASE_L4`.
    pub const X86_64: MmArch = MmArch {
        name: "x86_64",
        section_shift: 27,
        max_phys_bits: 46,
        vmemmap_base: 0xffff_ea00_0000_0000,
        vmemmap_leaf_shift: 21,
        pte_table_bytes: 4096,
        leaf_table_bytes: 4096,
        leaf_table_span_shift: 30,
        pageblock_order: 9,
        policy: VmemmapPolicy::X86,
    };

    /// aarch64, 4K granule, 48-bit VA. The vmemmap sits in the TTBR1 half at
    /// 0xffff_fc00_0000_0000 (L0 index 504), a 2 TiB window: 47 physical bits × 64 B per
    /// 4 KiB page. Unlike Linux it is not biased by the start of DRAM, so
    /// `pfn_to_page(pfn) = base + 64·pfn` holds on every arch.
    pub const AARCH64: MmArch = MmArch {
        name: "aarch64",
        section_shift: 27,
        max_phys_bits: 47,
        vmemmap_base: 0xffff_fc00_0000_0000,
        vmemmap_leaf_shift: 21,
        pte_table_bytes: 4096,
        leaf_table_bytes: 4096,
        leaf_table_span_shift: 30,
        pageblock_order: 9,
        policy: VmemmapPolicy::Arm64,
    };

    /// s390x with a region-first rooted ASCE. The vmemmap starts at 4 TiB
    /// (0x400_0000_0000, proven on QEMU per s390x.md §4), above any identity map we build,
    /// with a 1 TiB window (46 physical bits).
    pub const S390X: MmArch = MmArch {
        name: "s390x",
        section_shift: 28,
        max_phys_bits: 46,
        vmemmap_base: 0x400_0000_0000,
        vmemmap_leaf_shift: 20,
        pte_table_bytes: 2048,
        leaf_table_bytes: 16384,
        leaf_table_span_shift: 31,
        pageblock_order: 8,
        policy: VmemmapPolicy::S390,
    };

    /// All three, for tables and tests.
    pub const ALL: [MmArch; 3] = [Self::X86_64, Self::AARCH64, Self::S390X];

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

    /// Bytes of memmap per section: 2 MiB (x86_64, aarch64) or 4 MiB (s390x).
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
