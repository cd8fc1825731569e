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
                attrs: attrs_of(entry & !NO_EXECUTE),
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
        assert_eq!(
            S390xPaging::index(1, kernel::mm::MmArch::S390X.vmemmap_base),
            1
        );
        assert_eq!(S390xPaging::LEVELS[4].entries(), 256);
        assert_eq!(S390xPaging::LEVELS[3].entries(), 2048);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn leaf_round_trips(level in 3usize..5, frame in 0u64..(1 << 40), writable: bool, nx: bool) {
            let span = S390xPaging::LEVELS[level].entry_span();
            let frame = PhysAddr((frame * 4096) & !(span - 1));
            let mut attrs = EntryAttrs::GLOBAL;
            attrs.set(EntryAttrs::WRITABLE, writable);
            attrs.set(EntryAttrs::NO_EXECUTE, nx);
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

/// The mm scenarios of linux-mm.md §6.4 and the per-format walks, on simulated memory.
#[cfg(test)]
mod mm_tests {
    use kernel::mm::arch::MmArch;
    use kernel::mm::error::{AllocKind, MmError};
    use kernel::mm::pgtable::Features;
    use kernel::mm::sim::{AltmapSpec, Op, World, run_ops, scenarios};
    use kernel::mm::{PAGE_SIZE, VmemAltmap};
    use proptest::prelude::*;

    use super::S390xPaging as S390;

    static ARCH: MmArch = MmArch::S390X;
    const EDAT1: Features = Features::EDAT1.union(Features::NO_EXECUTE);
    const NO_EDAT: Features = Features::NO_EXECUTE;
    const SEGMENT: u64 = 1 << 20;

    fn walk(
        sections: u64,
        features: Features,
        pieces: u64,
        altmap: bool,
        leaf: u64,
        from_altmap: bool,
    ) {
        scenarios::populate_walk_free::<S390>(
            &ARCH,
            features,
            sections,
            pieces,
            altmap,
            leaf,
            from_altmap,
        );
    }

    fn failures(
        features: Features,
        kind: AllocKind,
        altmap: bool,
        sections: u64,
        neighbour: bool,
    ) -> u64 {
        scenarios::failure_at_each_allocation::<S390>(
            &ARCH, features, kind, altmap, sections, neighbour,
        )
        .1
    }

    #[test]
    fn walk_1_3_64_sections_segments_from_altmap() {
        [1, 3, 64]
            .into_iter()
            .for_each(|n| walk(n, EDAT1, 1, true, SEGMENT, true));
    }

    #[test]
    fn walk_1_3_64_sections_segments_from_ram() {
        [1, 3, 64]
            .into_iter()
            .for_each(|n| walk(n, EDAT1, 1, false, SEGMENT, false));
    }

    #[test]
    fn s390_pte_path_takes_leaves_from_altmap_2017_gap() {
        [1, 3, 64]
            .into_iter()
            .for_each(|n| walk(n, NO_EDAT, 1, true, PAGE_SIZE, true));
    }

    #[test]
    fn walk_1_3_64_sections_without_edat1_from_ram() {
        [1, 3, 64]
            .into_iter()
            .for_each(|n| walk(n, NO_EDAT, 1, false, PAGE_SIZE, false));
    }

    #[test]
    fn partly_covered_segment_with_altmap_takes_4k_pages_from_it() {
        [1, 3]
            .into_iter()
            .for_each(|n| walk(n, EDAT1, 128, true, PAGE_SIZE, true));
    }

    #[test]
    fn failed_segment_falls_back_to_pte_table_and_altmap_pages() {
        let mut world = World::<S390>::new(&ARCH, EDAT1);
        let range = world.sections(0, 1);
        let mut altmap = scenarios::exact_altmap(&ARCH, &range);
        world
            .sparse
            .vmemmap_mut()
            .faults()
            .fail_nth(AllocKind::AltmapLeaf, 1);
        world
            .add(range.clone(), Some(&mut altmap))
            .expect("fallback succeeds");
        let stats = world.stats();
        assert_eq!(
            (stats.huge_leaves_altmap, stats.base_leaves_altmap),
            (3, 256)
        );
        assert_eq!((stats.ram_leaf_bytes, altmap.nr_free()), (0, 0));
        world.check_invariants(&[&altmap]);
        world.remove(range, Some(&mut altmap)).expect("remove");
        assert_eq!((altmap.alloc, altmap.align), (0, 0));
    }

    #[test]
    fn failure_injected_at_each_table_level_rolls_back_exactly() {
        for altmap in [false, true] {
            assert_eq!(
                failures(EDAT1, AllocKind::PageTable, altmap, 3, false),
                3,
                "R2, R3, segment"
            );
            assert_eq!(
                failures(NO_EDAT, AllocKind::PageTable, altmap, 1, false),
                3 + 4,
                "and 4 page tables"
            );
            assert_eq!(failures(NO_EDAT, AllocKind::PageTable, altmap, 1, true), 4);
        }
    }

    #[test]
    fn heap_failure_at_each_allocation_rolls_back_exactly() {
        for (features, altmap) in [(EDAT1, true), (NO_EDAT, true), (NO_EDAT, false)] {
            for neighbour in [false, true] {
                let (tried, failed) = scenarios::failure_at_each_allocation::<S390>(
                    &ARCH,
                    features,
                    AllocKind::Heap,
                    altmap,
                    2,
                    neighbour,
                );
                assert!(
                    tried > 0 && failed == tried,
                    "{tried} tried, {failed} refused"
                );
            }
        }
    }

    #[test]
    fn failure_injected_at_each_leaf_rolls_back_exactly() {
        let (tried, failed) = scenarios::failure_at_each_allocation::<S390>(
            &ARCH,
            NO_EDAT,
            AllocKind::AltmapLeaf,
            true,
            1,
            true,
        );
        assert!(
            tried > 32 && failed == tried,
            "no fallback for 4 KiB altmap pages"
        );
        let absorbed = failures(EDAT1, AllocKind::AltmapLeaf, true, 1, true);
        assert_eq!(absorbed, 0, "every failed segment falls back to PTEs");
    }

    #[test]
    fn altmap_exhausted_mid_add_rolls_back_the_whole_add() {
        let mut world = World::<S390>::new(&ARCH, EDAT1);
        let range = world.sections(0, 3);
        let exact = scenarios::exact_altmap(&ARCH, &range);
        let mut altmap = VmemAltmap::new(exact.base_pfn, exact.end_pfn, 0, exact.free - 256);
        let before = world.snapshot();
        let error = world
            .add(range, Some(&mut altmap))
            .expect_err("one segment short, PTE fallback too");
        assert!(matches!(error, MmError::AltmapExhausted { .. }), "{error}");
        assert_eq!(world.snapshot(), before);
        assert_eq!((altmap.alloc, altmap.align), (0, 0));
    }

    #[test]
    fn nvdimm_layout_for_n_sections() {
        for n in [1, 3] {
            let (layout, altmap) =
                scenarios::nvdimm_namespace::<S390>(&ARCH, EDAT1, n).expect("fits");
            assert_eq!(layout.dataoff, (4 * n + 2) << 20);
            assert_eq!(altmap.free, 256 * (4 * n + 2) - 2);
            assert_eq!(
                (altmap.align, altmap.alloc, altmap.nr_free()),
                (254, 1024 * n, 256)
            );
        }
    }

    #[test]
    fn two_adds_sharing_a_segment_keep_each_others_memmap() {
        for features in [EDAT1, NO_EDAT] {
            scenarios::two_adds_share_section::<S390>(&ARCH, features, false);
            scenarios::two_adds_share_section::<S390>(&ARCH, features, true);
        }
    }

    #[test]
    fn partially_used_segment_is_kept_and_reused() {
        scenarios::partially_used_huge_leaf::<S390>(&ARCH, EDAT1, 8);
    }

    #[test]
    fn readd_with_fresh_and_reused_altmap_is_identical() {
        scenarios::readd_fresh_and_reused_altmap::<S390>(&ARCH, EDAT1, 2);
        scenarios::readd_fresh_and_reused_altmap::<S390>(&ARCH, NO_EDAT, 1);
    }

    #[test]
    fn memmap_on_memory_blocks_self_host_and_error_path_keeps_the_altmap() {
        scenarios::memmap_on_memory_block::<S390>(&ARCH, EDAT1, 1);
        scenarios::memmap_on_memory_block::<S390>(&ARCH, NO_EDAT, 1);
    }

    #[test]
    fn removing_through_the_wrong_altmap_is_refused() {
        scenarios::wrong_altmap_is_refused::<S390>(&ARCH, EDAT1);
    }

    #[test]
    fn cost_table_matches_real_populate() {
        scenarios::cost_matches_formula::<S390>(&ARCH, EDAT1, SEGMENT);
        scenarios::cost_matches_formula::<S390>(&ARCH, NO_EDAT, PAGE_SIZE);
    }

    fn op() -> impl Strategy<Value = Op> {
        let spec =
            (0u64..4, 50u64..250).prop_map(|(reserve, percent)| AltmapSpec { reserve, percent });
        prop_oneof![
            3 => (0u64..384, 1u64..192, proptest::option::of(spec))
                .prop_map(|(first, count, altmap)| Op::Add { first, count, altmap }),
            2 => any::<usize>().prop_map(|pick| Op::Remove { pick }),
            1 => (0u64..384, 1u64..64).prop_map(|(first, count)| Op::RemoveRange { first, count }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn random_add_remove_keeps_invariants(ops in proptest::collection::vec(op(), 1..12), edat1: bool) {
            run_ops::<S390>(&ARCH, if edat1 { EDAT1 } else { NO_EDAT }, 3, &ops);
        }
    }
}
