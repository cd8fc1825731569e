//! The 64-byte `Page` (Linux's `struct page`), one per physical frame, in the memmap.
//!
//! `flags` packs the page-state bits (low 29 bits) with the zone, node and section
//! numbers in the high bits, as Linux does. Free buddy blocks are linked through
//! `buddy_next` / `buddy_prev` (frame numbers, [`NO_PFN`] for none).

use bitflags::bitflags;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `sizeof(struct page)`: 64 bytes, so a 128 MiB section's memmap is one 2 MiB leaf.
pub const STRUCT_PAGE_SIZE: u64 = 64;

/// "No frame" in a buddy link.
pub const NO_PFN: u64 = u64::MAX;

bitflags! {
    /// Page-state bits (the low part of [`Page::flags`]).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct PageFlags: u64 {
        /// Not managed by the buddy allocator (firmware, kernel image, holes).
        const RESERVED = 1 << 0;
        /// Head of a free buddy block; `order` holds its order.
        const BUDDY = 1 << 1;
        /// Onlined: managed by the buddy allocator (free or allocated).
        const ONLINE = 1 << 2;
        /// A ZONE_DEVICE page; `pgmap` names its device.
        const DEVICE = 1 << 3;
        /// Backs memmap of its own memory block (memmap_on_memory).
        const VMEMMAP_SELF_HOSTED = 1 << 4;
        /// The struct page has been initialised by `memmap::init_range`.
        const INITIALIZED = 1 << 5;
        /// Kept offline inside an online memory block, out of the allocator (Linux's
        /// `PageOffline`: virtio-mem sub-blocks that are not plugged).
        const OFFLINE = 1 << 6;
    }
}

/// Memory zones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Zone {
    /// Low 16 MiB (x86) / 2 GiB (s390x) DMA memory.
    Dma = 0,
    /// Below 4 GiB.
    Dma32 = 1,
    /// Ordinary kernel memory.
    Normal = 2,
    /// Only movable allocations (hot-removable).
    Movable = 3,
    /// Device memory (pmem, dax) described by a pgmap.
    Device = 4,
}

impl Zone {
    const fn from_bits(bits: u64) -> Zone {
        match bits {
            0 => Zone::Dma,
            1 => Zone::Dma32,
            3 => Zone::Movable,
            4 => Zone::Device,
            _ => Zone::Normal,
        }
    }
}

const STATE_BITS: u64 = (1 << 29) - 1;
const ZONE_SHIFT: u32 = 29;
const ZONE_MASK: u64 = 0x7;
const NODE_SHIFT: u32 = 32;
const NODE_MASK: u64 = 0xff;
const SECTION_SHIFT: u32 = 40;
const SECTION_MASK: u64 = 0xff_ffff;

/// Linux's `struct page`, reduced to what this kernel uses, padded to 64 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct Page {
    /// State bits, zone (bits 29–31), node (32–39) and section number (40–63).
    pub flags: u64,
    /// Reference count: 1 for an allocated buddy head, 0 when free.
    pub refcount: u32,
    /// Buddy order of a free block head (valid with [`PageFlags::BUDDY`]).
    pub order: u8,
    reserved: [u8; 3],
    /// Next free block of the same order, as a frame number.
    pub buddy_next: u64,
    /// Previous free block of the same order, as a frame number.
    pub buddy_prev: u64,
    /// ZONE_DEVICE: identifier of the owning `dev_pagemap` (0 for none).
    pub pgmap: u64,
    /// Owner-private word.
    pub private: u64,
    /// Owner (address space, slab, ...) word.
    pub mapping: u64,
    /// Offset within the owner.
    pub index: u64,
}

const _: () = assert!(core::mem::size_of::<Page>() == STRUCT_PAGE_SIZE as usize);

impl Page {
    /// An all-zero page: no flags, zone DMA, node 0, section 0.
    pub const ZEROED: Page = Page {
        flags: 0,
        refcount: 0,
        order: 0,
        reserved: [0; 3],
        buddy_next: 0,
        buddy_prev: 0,
        pgmap: 0,
        private: 0,
        mapping: 0,
        index: 0,
    };

    /// A freshly initialised page: zone, node and section set, state `INITIALIZED`,
    /// unlinked, refcount 0.
    pub const fn new(zone: Zone, node: u8, section: u64) -> Page {
        let mut page = Page::ZEROED;
        page.flags = PageFlags::INITIALIZED.bits()
            | ((zone as u64) << ZONE_SHIFT)
            | ((node as u64) << NODE_SHIFT)
            | ((section & SECTION_MASK) << SECTION_SHIFT);
        page.buddy_next = NO_PFN;
        page.buddy_prev = NO_PFN;
        page
    }

    /// Sets every page of `pages` to `template` with stores only: the template's eight
    /// words are taken into locals once (registers), then each page gets its eight
    /// doubleword stores, front to back, nothing read — the stores a `memset` of the
    /// slice would make.
    pub fn fill(pages: &mut [Page], template: &Page) {
        let [w0, w1, w2, w3, w4, w5, w6, w7]: [u64; 8] = zerocopy::transmute!(*template);
        let words = <[[u64; 8]]>::mut_from_bytes(pages.as_mut_bytes())
            .expect("struct pages are 8-byte aligned, 8 words each");
        for page in words {
            page[0] = w0;
            page[1] = w1;
            page[2] = w2;
            page[3] = w3;
            page[4] = w4;
            page[5] = w5;
            page[6] = w6;
            page[7] = w7;
        }
    }

    /// The state bits.
    pub const fn state(&self) -> PageFlags {
        PageFlags::from_bits_retain(self.flags & STATE_BITS)
    }

    /// Whether all of `flags` are set.
    pub const fn has(&self, flags: PageFlags) -> bool {
        self.flags & flags.bits() == flags.bits()
    }

    /// Sets state bits.
    pub fn set(&mut self, flags: PageFlags) {
        self.flags |= flags.bits();
    }

    /// Clears state bits.
    pub fn clear(&mut self, flags: PageFlags) {
        self.flags &= !flags.bits();
    }

    /// The zone recorded in `flags`.
    pub const fn zone(&self) -> Zone {
        Zone::from_bits((self.flags >> ZONE_SHIFT) & ZONE_MASK)
    }

    /// The NUMA node recorded in `flags`.
    pub const fn node(&self) -> u8 {
        ((self.flags >> NODE_SHIFT) & NODE_MASK) as u8
    }

    /// The section number recorded in `flags`.
    pub const fn section(&self) -> u64 {
        (self.flags >> SECTION_SHIFT) & SECTION_MASK
    }
}
