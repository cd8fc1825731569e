//! The s390x DAT format with a region-first rooted ASCE (s390x.md §4): region-first →
//! region-second → region-third → segment → page table. Region and segment tables are
//! 16 KiB (2048 entries, TL = 3), page tables 2 KiB (256 entries, 2 KiB-aligned).
//!
//! - Region entries carry their own table type (TT: R1 0xc, R2 0x8, R3 0x4) and TL = 3;
//!   an empty one is `TT | I`. A TT that does not match the level is malformed.
//! - Segment entries: empty is `I` (0x20); FC (0x400) makes a 1 MiB leaf, allowed only
//!   with EDAT-1 (facility 8); otherwise they point to a page table.
//! - Page-table entries: empty is `I` (0x400); bit 0x800 must be zero.
//! - P (0x200) marks read-only, IEP (0x100) non-executable (facility 130).

use kernel::mm::addr::PhysAddr;
use kernel::mm::pgtable::{Entry, EntryAttrs, Features, LevelGeometry, PageTableFormat};

const REGION_TYPES: [u64; 3] = [0xc, 0x8, 0x4];
const TYPE_BITS: u64 = 0xc;
const TABLE_LENGTH: u64 = 0x3;
const REGION_INVALID: u64 = 0x20;
const REGION_ORIGIN: u64 = !0xfff;
const REGION_THIRD_FC: u64 = 0x400;
const SEGMENT_INVALID: u64 = 0x20;
const SEGMENT_FC: u64 = 0x400;
const SEGMENT_TABLE_ORIGIN: u64 = !0x7ff;
const SEGMENT_FRAME: u64 = !0xf_ffff;
const PTE_INVALID: u64 = 0x400;
const PTE_MUST_BE_ZERO: u64 = 0x800;
const PTE_FRAME: u64 = !0xfff;
const PROTECT: u64 = 0x200;
const NO_EXECUTE: u64 = 0x100;
/// A low bit that page-table and (large) segment-table entries leave to software (Linux
/// keeps `_PAGE_PRESENT` and `_SEGMENT_ENTRY_WRITE` there): [`EntryAttrs::ALTMAP`].
/// Region-third leaves do not carry it.
const SOFTWARE_ALTMAP: u64 = 0x001;
/// ASCE designation type for a region-first table.
pub const ASCE_DT_REGION_FIRST: u64 = 0xc;

const REGION_THIRD: usize = 2;
const SEGMENT: usize = 3;
const PAGE: usize = 4;

const fn crst(name: &'static str, shift: u32) -> LevelGeometry {
    LevelGeometry {
        name,
        shift,
        index_bits: 11,
        table_bytes: 16384,
        table_align: 4096,
    }
}

/// The region-first rooted DAT format.
pub struct S390xPaging;

impl PageTableFormat for S390xPaging {
    const NAME: &'static str = "s390x-dat-region1";
    const LEVELS: &'static [LevelGeometry] = &[
        crst("region-first", 53),
        crst("region-second", 42),
        crst("region-third", 31),
        crst("segment", 20),
        LevelGeometry {
            name: "page",
            shift: 12,
            index_bits: 8,
            table_bytes: 2048,
            table_align: 2048,
        },
    ];
    const VA_BITS: u32 = 64;

    fn leaf_allowed(level: usize, features: Features) -> bool {
        match level {
            REGION_THIRD => features.contains(Features::EDAT2),
            SEGMENT => features.contains(Features::EDAT1),
            PAGE => true,
            _ => false,
        }
    }

    fn empty_entry(level: usize) -> u64 {
        match level {
            SEGMENT => SEGMENT_INVALID,
            PAGE => PTE_INVALID,
            region => REGION_TYPES[region] | REGION_INVALID,
        }
    }

    fn table_entry(level: usize, table: PhysAddr) -> u64 {
        match level {
            SEGMENT => table.0 & SEGMENT_TABLE_ORIGIN,
            region => (table.0 & REGION_ORIGIN) | REGION_TYPES[region] | TABLE_LENGTH,
        }
    }

    fn leaf_entry(level: usize, frame: PhysAddr, attrs: EntryAttrs) -> u64 {
        let mut entry = match level {
            PAGE => frame.0 & PTE_FRAME,
            SEGMENT => (frame.0 & SEGMENT_FRAME) | SEGMENT_FC,
            _ => (frame.0 & !((1 << 31) - 1)) | REGION_TYPES[REGION_THIRD] | REGION_THIRD_FC,
        };
        if !attrs.contains(EntryAttrs::WRITABLE) {
            entry |= PROTECT;
        }
        if attrs.contains(EntryAttrs::NO_EXECUTE) && level != REGION_THIRD {
            entry |= NO_EXECUTE;
        }
        if attrs.contains(EntryAttrs::ALTMAP) && level != REGION_THIRD {
            entry |= SOFTWARE_ALTMAP;
        }
        entry
    }

    fn decode(level: usize, entry: u64) -> Entry {
        match level {
            PAGE => decode_pte(entry),
            SEGMENT => decode_segment(entry),
            region => decode_region(region, entry),
        }
    }

    fn root_register(root: PhysAddr) -> u64 {
        (root.0 & REGION_ORIGIN) | ASCE_DT_REGION_FIRST | TABLE_LENGTH
    }
}

fn attrs_of(entry: u64) -> EntryAttrs {
    let mut attrs = EntryAttrs::GLOBAL;
    attrs.set(EntryAttrs::WRITABLE, entry & PROTECT == 0);
    attrs.set(EntryAttrs::NO_EXECUTE, entry & NO_EXECUTE != 0);
    attrs.set(EntryAttrs::ALTMAP, entry & SOFTWARE_ALTMAP != 0);
    attrs
}

fn decode_region(level: usize, entry: u64) -> Entry {
    if entry & TYPE_BITS != REGION_TYPES[level] {
        return Entry::Malformed;
    }
    if entry & REGION_INVALID != 0 {
        return Entry::Empty;
    }
    if entry & REGION_THIRD_FC != 0 {
        return match level {
            REGION_THIRD => Entry::Leaf {
                frame: PhysAddr(entry & !((1 << 31) - 1)),
                attrs: attrs_of(entry & !(NO_EXECUTE | SOFTWARE_ALTMAP)),
            },
            _ => Entry::Malformed,
        };
    }
    if entry & TABLE_LENGTH != TABLE_LENGTH {
        return Entry::Malformed;
    }
    Entry::Table(PhysAddr(entry & REGION_ORIGIN))
}

fn decode_segment(entry: u64) -> Entry {
    if entry & TYPE_BITS != 0 {
        return Entry::Malformed;
    }
    if entry & SEGMENT_INVALID != 0 {
        return Entry::Empty;
    }
    if entry & SEGMENT_FC != 0 {
        return Entry::Leaf {
            frame: PhysAddr(entry & SEGMENT_FRAME),
            attrs: attrs_of(entry),
        };
    }
    Entry::Table(PhysAddr(entry & SEGMENT_TABLE_ORIGIN))
}

fn decode_pte(entry: u64) -> Entry {
    if entry & PTE_MUST_BE_ZERO != 0 {
        return Entry::Malformed;
    }
    if entry & PTE_INVALID != 0 {
        return Entry::Empty;
    }
    Entry::Leaf {
        frame: PhysAddr(entry & PTE_FRAME),
        attrs: attrs_of(entry),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KERNEL_DATA: EntryAttrs = EntryAttrs::WRITABLE
        .union(EntryAttrs::GLOBAL)
        .union(EntryAttrs::NO_EXECUTE);

    #[test]
    fn empty_entries_carry_type_and_invalid_bits() {
        assert_eq!(S390xPaging::empty_entry(0), 0x2c);
        assert_eq!(S390xPaging::empty_entry(1), 0x28);
        assert_eq!(S390xPaging::empty_entry(2), 0x24);
        assert_eq!(S390xPaging::empty_entry(3), 0x20);
        assert_eq!(S390xPaging::empty_entry(4), 0x400);
        for level in 0..5 {
            assert_eq!(
                S390xPaging::decode(level, S390xPaging::empty_entry(level)),
                Entry::Empty
            );
        }
    }

    #[test]
    fn region_entries_need_matching_table_type() {
        let r1 = S390xPaging::table_entry(0, PhysAddr(0x10_0000));
        assert_eq!(r1, 0x10_000f);
        assert_eq!(
            S390xPaging::decode(0, r1),
            Entry::Table(PhysAddr(0x10_0000))
        );
        assert_eq!(S390xPaging::decode(1, r1), Entry::Malformed);
        assert_eq!(S390xPaging::decode(1, 0x2c), Entry::Malformed);
        assert_eq!(S390xPaging::table_entry(2, PhysAddr(0x20_0000)), 0x20_0007);
    }

    #[test]
    fn segment_leaf_is_fc_and_needs_edat1() {
        let leaf = S390xPaging::leaf_entry(3, PhysAddr(0x4010_0000), KERNEL_DATA);
        assert_eq!(leaf, 0x4010_0500);
        assert_eq!(
            S390xPaging::decode(3, leaf),
            Entry::Leaf {
                frame: PhysAddr(0x4010_0000),
                attrs: KERNEL_DATA
            }
        );
        assert!(!S390xPaging::leaf_allowed(3, Features::empty()));
        assert!(S390xPaging::leaf_allowed(3, Features::EDAT1));
        assert!(!S390xPaging::leaf_allowed(2, Features::EDAT1));
        assert!(S390xPaging::leaf_allowed(2, Features::EDAT2));
        assert_eq!(S390xPaging::table_entry(3, PhysAddr(0x1_0800)), 0x1_0800);
        assert_eq!(
            S390xPaging::decode(3, 0x1_0800),
            Entry::Table(PhysAddr(0x1_0800))
        );
    }

    #[test]
    fn pte_bit_0x800_must_be_zero_and_protection_bits() {
        assert_eq!(S390xPaging::decode(4, 0x5000 | 0x800), Entry::Malformed);
        let read_only = S390xPaging::leaf_entry(4, PhysAddr(0x5000), EntryAttrs::GLOBAL);
        assert_eq!(read_only, 0x5200);
        assert_eq!(
            S390xPaging::leaf_entry(4, PhysAddr(0x5000), KERNEL_DATA),
            0x5100
        );
    }

    #[test]
    fn asce_is_region_first_with_full_length() {
        assert_eq!(S390xPaging::root_register(PhysAddr(0x8_0000)), 0x8_000f);
        assert_eq!(S390xPaging::index(1, crate::vmemmap::MM.vmemmap_base), 1);
        assert_eq!(S390xPaging::LEVELS[4].entries(), 256);
        assert_eq!(S390xPaging::LEVELS[3].entries(), 2048);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn leaf_round_trips(level in 3usize..5, frame in 0u64..(1 << 40), writable: bool, nx: bool, altmap: bool) {
            let span = S390xPaging::LEVELS[level].entry_span();
            let frame = PhysAddr((frame * 4096) & !(span - 1));
            let mut attrs = EntryAttrs::GLOBAL;
            attrs.set(EntryAttrs::WRITABLE, writable);
            attrs.set(EntryAttrs::NO_EXECUTE, nx);
            attrs.set(EntryAttrs::ALTMAP, altmap);
            let entry = S390xPaging::leaf_entry(level, frame, attrs);
            prop_assert_eq!(S390xPaging::decode(level, entry), Entry::Leaf { frame, attrs });
        }

        #[test]
        fn table_round_trips(level in 0usize..4, table in 0u64..(1 << 40)) {
            let align = if level == 3 { 2048 } else { 4096 };
            let table = PhysAddr(table * align);
            prop_assert_eq!(S390xPaging::decode(level, S390xPaging::table_entry(level, table)), Entry::Table(table));
        }
    }
}
