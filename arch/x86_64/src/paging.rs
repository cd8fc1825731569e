//! The x86_64 4-level page-table format (PML4 → PDPT → PD → PT, 4 KiB tables of 512
//! entries). 2 MiB PD leaves need PSE, 1 GiB PDPT leaves need PDPE1GB; NX (bit 63) is
//! set for non-executable leaves and must only be used with EFER.NXE.

use kernel::mm::addr::PhysAddr;
use kernel::mm::pgtable::{Entry, EntryAttrs, Features, LevelGeometry, PageTableFormat};

const PRESENT: u64 = 1 << 0;
const WRITABLE: u64 = 1 << 1;
const WRITE_THROUGH: u64 = 1 << 3;
const CACHE_DISABLE: u64 = 1 << 4;
const ACCESSED: u64 = 1 << 5;
const DIRTY: u64 = 1 << 6;
const HUGE: u64 = 1 << 7;
const GLOBAL: u64 = 1 << 8;
/// Bit 9, ignored by the CPU (AVL): [`EntryAttrs::ALTMAP`].
const SOFTWARE_ALTMAP: u64 = 1 << 9;
const NO_EXECUTE: u64 = 1 << 63;
const ADDRESS: u64 = 0x000f_ffff_ffff_f000;

const PT: usize = 3;

const fn level(name: &'static str, shift: u32) -> LevelGeometry {
    LevelGeometry {
        name,
        shift,
        index_bits: 9,
        table_bytes: 4096,
        table_align: 4096,
    }
}

/// The 4-level format.
pub struct X86_64Paging;

impl PageTableFormat for X86_64Paging {
    const NAME: &'static str = "x86_64-4level";
    const LEVELS: &'static [LevelGeometry] = &[
        level("PML4", 39),
        level("PDPT", 30),
        level("PD", 21),
        level("PT", 12),
    ];
    const VA_BITS: u32 = 48;

    fn leaf_allowed(level: usize, features: Features) -> bool {
        match level {
            1 => features.contains(Features::PDPE1GB),
            2 => features.contains(Features::PSE),
            PT => true,
            _ => false,
        }
    }

    fn empty_entry(_level: usize) -> u64 {
        0
    }

    fn table_entry(_level: usize, table: PhysAddr) -> u64 {
        (table.0 & ADDRESS) | PRESENT | WRITABLE
    }

    fn leaf_entry(level: usize, frame: PhysAddr, attrs: EntryAttrs) -> u64 {
        let mut entry = (frame.0 & ADDRESS) | PRESENT | ACCESSED | DIRTY;
        if level != PT {
            entry |= HUGE;
        }
        if attrs.contains(EntryAttrs::WRITABLE) {
            entry |= WRITABLE;
        }
        if attrs.contains(EntryAttrs::GLOBAL) {
            entry |= GLOBAL;
        }
        if attrs.contains(EntryAttrs::NO_EXECUTE) {
            entry |= NO_EXECUTE;
        }
        if attrs.contains(EntryAttrs::DEVICE) {
            entry |= CACHE_DISABLE | WRITE_THROUGH;
        }
        if attrs.contains(EntryAttrs::ALTMAP) {
            entry |= SOFTWARE_ALTMAP;
        }
        entry
    }

    fn decode(level: usize, entry: u64) -> Entry {
        if entry & PRESENT == 0 {
            return Entry::Empty;
        }
        let span = Self::LEVELS[level].entry_span();
        match (level, entry & HUGE != 0) {
            (PT, _) => Entry::Leaf {
                frame: PhysAddr(entry & ADDRESS),
                attrs: attrs_of(entry),
            },
            (0, true) => Entry::Malformed,
            (_, true) => {
                // Bit 12 is PAT; bits 13 up to the span are reserved.
                let reserved = entry & ADDRESS & (span - 1) & !(1 << 12);
                if reserved != 0 {
                    return Entry::Malformed;
                }
                Entry::Leaf {
                    frame: PhysAddr(entry & ADDRESS & !(span - 1)),
                    attrs: attrs_of(entry),
                }
            }
            (_, false) => Entry::Table(PhysAddr(entry & ADDRESS)),
        }
    }

    fn root_register(root: PhysAddr) -> u64 {
        root.0 & ADDRESS
    }
}

fn attrs_of(entry: u64) -> EntryAttrs {
    let mut attrs = EntryAttrs::empty();
    attrs.set(EntryAttrs::WRITABLE, entry & WRITABLE != 0);
    attrs.set(EntryAttrs::GLOBAL, entry & GLOBAL != 0);
    attrs.set(EntryAttrs::NO_EXECUTE, entry & NO_EXECUTE != 0);
    attrs.set(EntryAttrs::DEVICE, entry & CACHE_DISABLE != 0);
    attrs.set(EntryAttrs::ALTMAP, entry & SOFTWARE_ALTMAP != 0);
    attrs
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KERNEL_DATA: EntryAttrs = EntryAttrs::WRITABLE
        .union(EntryAttrs::GLOBAL)
        .union(EntryAttrs::NO_EXECUTE);

    #[test]
    fn pmd_leaf_encoding_matches_page_kernel_large() {
        let entry = X86_64Paging::leaf_entry(2, PhysAddr(0x4020_0000), KERNEL_DATA);
        assert_eq!(entry, 0x8000_0000_4020_01e3);
        assert_eq!(
            X86_64Paging::decode(2, entry),
            Entry::Leaf {
                frame: PhysAddr(0x4020_0000),
                attrs: KERNEL_DATA
            }
        );
    }

    #[test]
    fn pte_has_no_ps_bit_and_tables_are_present_writable() {
        assert_eq!(
            X86_64Paging::leaf_entry(3, PhysAddr(0x1000), KERNEL_DATA),
            0x8000_0000_0000_1163
        );
        assert_eq!(X86_64Paging::table_entry(0, PhysAddr(0x5000)), 0x5003);
        assert_eq!(
            X86_64Paging::decode(1, 0x5003),
            Entry::Table(PhysAddr(0x5000))
        );
        assert_eq!(X86_64Paging::decode(2, 0x5002), Entry::Empty);
    }

    #[test]
    fn leaf_levels_follow_pse_and_pdpe1gb() {
        let none = Features::empty();
        assert!(!X86_64Paging::leaf_allowed(2, none));
        assert!(X86_64Paging::leaf_allowed(2, Features::PSE));
        assert!(!X86_64Paging::leaf_allowed(1, Features::PSE));
        assert!(X86_64Paging::leaf_allowed(1, Features::PDPE1GB));
        assert!(!X86_64Paging::leaf_allowed(0, Features::all()));
        assert!(X86_64Paging::leaf_allowed(3, none));
    }

    #[test]
    fn ps_in_pml4_and_reserved_bits_in_huge_leaves_are_malformed() {
        assert_eq!(
            X86_64Paging::decode(0, 0x1000 | PRESENT | HUGE),
            Entry::Malformed
        );
        assert_eq!(
            X86_64Paging::decode(2, 0x20_2000 | PRESENT | HUGE),
            Entry::Malformed
        );
        assert!(matches!(
            X86_64Paging::decode(2, 0x20_1000 | PRESENT | HUGE),
            Entry::Leaf { .. }
        ));
    }

    #[test]
    fn vmemmap_base_indices_and_cr3() {
        let base = crate::vmemmap::MM.vmemmap_base;
        assert_eq!(X86_64Paging::index(0, base), 468);
        assert_eq!(X86_64Paging::canonical(base & 0xffff_ffff_ffff), base);
        assert_eq!(X86_64Paging::root_register(PhysAddr(0x12_3000)), 0x12_3000);
    }

    #[test]
    fn the_kernel_tables_build_on_this_format() {
        let large = Features::PSE | Features::PDPE1GB | Features::NO_EXECUTE;
        kernel::kpt::check_builder::<X86_64Paging>(large);
        kernel::kpt::check_builder::<X86_64Paging>(Features::PSE);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn leaf_round_trips(level in 1usize..4, frame in 0u64..(1 << 40), bits in 0u32..32) {
            let span = X86_64Paging::LEVELS[level].entry_span();
            let frame = PhysAddr((frame * 4096) & !(span - 1) & ADDRESS);
            let attrs = EntryAttrs::from_bits_truncate(bits);
            let entry = X86_64Paging::leaf_entry(level, frame, attrs);
            prop_assert_eq!(X86_64Paging::decode(level, entry), Entry::Leaf { frame, attrs });
        }

        #[test]
        fn table_round_trips(level in 0usize..3, table in 0u64..(1 << 40)) {
            let table = PhysAddr((table * 4096) & ADDRESS);
            prop_assert_eq!(X86_64Paging::decode(level, X86_64Paging::table_entry(level, table)), Entry::Table(table));
        }
    }
}
