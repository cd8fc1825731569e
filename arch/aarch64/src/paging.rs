//! The aarch64 stage-1 format for the 4 KiB granule and 48-bit VAs (L0 → L1 → L2 → L3,
//! 4 KiB tables of 512 entries), as used through TTBR1_EL1 for the kernel half.
//! Blocks are allowed at L1 (1 GiB) and L2 (2 MiB). Leaves carry AF, SH = inner
//! shareable, AttrIndx (0 = normal write-back, 1 = device, see [`MAIR_EL1`]), AP[2] for
//! read-only, nG for non-global, PXN for non-executable and always UXN.

use kernel::mm::addr::PhysAddr;
use kernel::mm::pgtable::{Entry, EntryAttrs, Features, LevelGeometry, PageTableFormat};

/// MAIR_EL1 matching the AttrIndx values used here: attr0 = 0xff (normal, inner/outer
/// write-back), attr1 = 0x00 (device-nGnRnE).
pub const MAIR_EL1: u64 = 0x00ff;

const VALID: u64 = 1 << 0;
const TABLE_OR_PAGE: u64 = 1 << 1;
const ATTR_INDEX_SHIFT: u32 = 2;
const ATTR_NORMAL: u64 = 0;
const ATTR_DEVICE: u64 = 1;
const AP_READ_ONLY: u64 = 1 << 7;
const SH_INNER: u64 = 3 << 8;
const ACCESS_FLAG: u64 = 1 << 10;
const NOT_GLOBAL: u64 = 1 << 11;
const PXN: u64 = 1 << 53;
const UXN: u64 = 1 << 54;
/// Bit 55, reserved for software in block and page descriptors: [`EntryAttrs::ALTMAP`].
const SOFTWARE_ALTMAP: u64 = 1 << 55;
const ADDRESS: u64 = 0x0000_ffff_ffff_f000;

const L3: usize = 3;

const fn level(name: &'static str, shift: u32) -> LevelGeometry {
    LevelGeometry {
        name,
        shift,
        index_bits: 9,
        table_bytes: 4096,
        table_align: 4096,
    }
}

/// The 4K-granule, 48-bit format.
pub struct Aarch64Paging;

impl PageTableFormat for Aarch64Paging {
    const NAME: &'static str = "aarch64-4k-48bit";
    const LEVELS: &'static [LevelGeometry] = &[
        level("L0", 39),
        level("L1", 30),
        level("L2", 21),
        level("L3", 12),
    ];
    const VA_BITS: u32 = 48;

    fn leaf_allowed(level: usize, _features: Features) -> bool {
        level != 0
    }

    fn empty_entry(_level: usize) -> u64 {
        0
    }

    fn table_entry(_level: usize, table: PhysAddr) -> u64 {
        (table.0 & ADDRESS) | VALID | TABLE_OR_PAGE
    }

    fn leaf_entry(level: usize, frame: PhysAddr, attrs: EntryAttrs) -> u64 {
        let kind = if level == L3 {
            VALID | TABLE_OR_PAGE
        } else {
            VALID
        };
        let mut entry = (frame.0 & ADDRESS) | kind | ACCESS_FLAG | UXN;
        if attrs.contains(EntryAttrs::DEVICE) {
            entry |= ATTR_DEVICE << ATTR_INDEX_SHIFT;
        } else {
            entry |= (ATTR_NORMAL << ATTR_INDEX_SHIFT) | SH_INNER;
        }
        if !attrs.contains(EntryAttrs::WRITABLE) {
            entry |= AP_READ_ONLY;
        }
        if !attrs.contains(EntryAttrs::GLOBAL) {
            entry |= NOT_GLOBAL;
        }
        if attrs.contains(EntryAttrs::NO_EXECUTE) {
            entry |= PXN;
        }
        if attrs.contains(EntryAttrs::ALTMAP) {
            entry |= SOFTWARE_ALTMAP;
        }
        entry
    }

    fn decode(level: usize, entry: u64) -> Entry {
        if entry & VALID == 0 {
            return Entry::Empty;
        }
        let span = Self::LEVELS[level].entry_span();
        match (level, entry & TABLE_OR_PAGE != 0) {
            (L3, true) => Entry::Leaf {
                frame: PhysAddr(entry & ADDRESS),
                attrs: attrs_of(entry),
            },
            (L3, false) | (0, false) => Entry::Malformed,
            (_, true) => Entry::Table(PhysAddr(entry & ADDRESS)),
            (_, false) if entry & ADDRESS & (span - 1) != 0 => Entry::Malformed,
            (_, false) => Entry::Leaf {
                frame: PhysAddr(entry & ADDRESS),
                attrs: attrs_of(entry),
            },
        }
    }

    fn root_register(root: PhysAddr) -> u64 {
        root.0 & ADDRESS
    }
}

fn attrs_of(entry: u64) -> EntryAttrs {
    let mut attrs = EntryAttrs::empty();
    attrs.set(EntryAttrs::WRITABLE, entry & AP_READ_ONLY == 0);
    attrs.set(EntryAttrs::GLOBAL, entry & NOT_GLOBAL == 0);
    attrs.set(EntryAttrs::NO_EXECUTE, entry & PXN != 0);
    attrs.set(
        EntryAttrs::DEVICE,
        (entry >> ATTR_INDEX_SHIFT) & 0x7 == ATTR_DEVICE,
    );
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
    fn l2_block_has_af_inner_shareable_normal_memory_and_xn() {
        let entry = Aarch64Paging::leaf_entry(2, PhysAddr(0x4020_0000), KERNEL_DATA);
        assert_eq!(entry, 0x0060_0000_4020_0701);
        assert_eq!(
            Aarch64Paging::decode(2, entry),
            Entry::Leaf {
                frame: PhysAddr(0x4020_0000),
                attrs: KERNEL_DATA
            }
        );
    }

    #[test]
    fn l3_page_and_table_descriptors_use_type_bits_11() {
        assert_eq!(
            Aarch64Paging::leaf_entry(3, PhysAddr(0x1000), KERNEL_DATA) & 0x3,
            0x3
        );
        assert_eq!(Aarch64Paging::table_entry(1, PhysAddr(0x8000)), 0x8003);
        assert_eq!(
            Aarch64Paging::decode(1, 0x8003),
            Entry::Table(PhysAddr(0x8000))
        );
    }

    #[test]
    fn blocks_only_at_l1_and_l2() {
        assert!(!Aarch64Paging::leaf_allowed(0, Features::all()));
        assert!(Aarch64Paging::leaf_allowed(1, Features::empty()));
        assert!(Aarch64Paging::leaf_allowed(2, Features::empty()));
        assert_eq!(Aarch64Paging::decode(0, 0x4000_0001), Entry::Malformed);
        assert_eq!(Aarch64Paging::decode(3, 0x1001), Entry::Malformed);
        assert_eq!(Aarch64Paging::decode(2, 0x20_1001), Entry::Malformed);
    }

    #[test]
    fn device_and_read_only_attributes() {
        let entry = Aarch64Paging::leaf_entry(
            3,
            PhysAddr(0x900_0000),
            EntryAttrs::DEVICE | EntryAttrs::GLOBAL,
        );
        assert_eq!((entry >> 2) & 7, 1);
        assert_eq!(entry & SH_INNER, 0);
        assert_ne!(entry & AP_READ_ONLY, 0);
    }

    #[test]
    fn vmemmap_base_is_in_ttbr1_half() {
        let base = crate::vmemmap::MM.vmemmap_base;
        assert_eq!(Aarch64Paging::index(0, base), 504);
        assert_eq!(Aarch64Paging::canonical(base & 0xffff_ffff_ffff), base);
        assert_eq!(
            Aarch64Paging::root_register(PhysAddr(0x4008_0000)),
            0x4008_0000
        );
    }

    #[test]
    fn the_kernel_tables_build_on_this_format() {
        kernel::kpt::check_builder::<Aarch64Paging>(Features::NO_EXECUTE);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn leaf_round_trips(level in 1usize..4, frame in 0u64..(1 << 36), bits in 0u32..32) {
            let span = Aarch64Paging::LEVELS[level].entry_span();
            let frame = PhysAddr((frame * 4096) & !(span - 1) & ADDRESS);
            let attrs = EntryAttrs::from_bits_truncate(bits);
            let entry = Aarch64Paging::leaf_entry(level, frame, attrs);
            prop_assert_eq!(Aarch64Paging::decode(level, entry), Entry::Leaf { frame, attrs });
        }
    }
}
