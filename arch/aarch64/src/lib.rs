//! The aarch64 port: Limine-protocol entry (EL1, or EL2 with VHE), exception vectors,
//! the PL011 console found through ACPI SPCR or the device tree, the generic timer as
//! clock, the `cpu` report, the kernel's own TTBR1 tables (HHDM + W^X image) and the
//! semihosting / PSCI exit, and the hotplug sources (GED + memory-hotplug controller with
//! the GED interrupt through the GICv2, NVDIMM FIT, virtio-mem-pci over ECAM).
//!
//! The page-table format ([`paging`]) and the exit encodings ([`power`]) are pure and
//! tested on the host; everything else exists only on the bare-metal target.
#![cfg_attr(target_os = "none", no_std)]

#[cfg(target_os = "none")]
extern crate alloc;

pub mod paging;
pub mod power;

#[cfg(target_os = "none")]
mod boot;
#[cfg(target_os = "none")]
mod cpu;
#[cfg(target_os = "none")]
mod entry;
#[cfg(target_os = "none")]
mod exceptions;
#[cfg(target_os = "none")]
mod ged;
#[cfg(target_os = "none")]
mod gic;
#[cfg(target_os = "none")]
mod hotplug;
#[cfg(target_os = "none")]
mod kpt;
#[cfg(target_os = "none")]
mod mmio;
#[cfg(target_os = "none")]
mod nvdimm;
#[cfg(target_os = "none")]
mod pci;
#[cfg(target_os = "none")]
mod pl011;
#[cfg(target_os = "none")]
mod platform;
#[cfg(target_os = "none")]
mod port;
#[cfg(target_os = "none")]
mod probe;
#[cfg(target_os = "none")]
mod requests;
#[cfg(target_os = "none")]
mod timer;

#[cfg(target_os = "none")]
pub use port::Aarch64;

/// Host tests run on the system allocator with the kernel's per-thread heap fault rule.
#[cfg(test)]
#[global_allocator]
static TEST_ALLOC: kernel::heap::HostFaultAlloc = kernel::heap::HostFaultAlloc;

/// The mm scenarios of linux-mm.md §6.4 and the per-format walks, on simulated memory.
#[cfg(test)]
mod mm_tests {
    use kernel::mm::arch::MmArch;
    use kernel::mm::error::{AllocKind, MmError};
    use kernel::mm::pgtable::Features;
    use kernel::mm::sim::{AltmapSpec, Op, World, run_ops, scenarios};
    use kernel::mm::{PAGE_SIZE, VmemAltmap};
    use proptest::prelude::*;

    use crate::paging::Aarch64Paging as A64;

    static ARCH: MmArch = MmArch::AARCH64;
    const FEATURES: Features = Features::NO_EXECUTE;
    const BLOCK: u64 = 2 << 20;

    fn walk(sections: u64, pieces: u64, altmap: bool, leaf: u64, from_altmap: bool) {
        scenarios::populate_walk_free::<A64>(
            &ARCH,
            FEATURES,
            sections,
            pieces,
            altmap,
            leaf,
            from_altmap,
        );
    }

    fn failures(kind: AllocKind, altmap: bool, sections: u64, neighbour: bool) -> u64 {
        scenarios::failure_at_each_allocation::<A64>(
            &ARCH, FEATURES, kind, altmap, sections, neighbour,
        )
        .1
    }

    #[test]
    fn heap_failure_at_each_allocation_rolls_back_exactly() {
        for altmap in [true, false] {
            for neighbour in [false, true] {
                let (tried, failed) = scenarios::failure_at_each_allocation::<A64>(
                    &ARCH,
                    FEATURES,
                    AllocKind::Heap,
                    altmap,
                    3,
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
    fn walk_1_3_64_sections_l2_blocks_from_altmap() {
        [1, 3, 64]
            .into_iter()
            .for_each(|n| walk(n, 1, true, BLOCK, true));
    }

    #[test]
    fn walk_1_3_64_sections_l2_blocks_from_ram() {
        [1, 3, 64]
            .into_iter()
            .for_each(|n| walk(n, 1, false, BLOCK, false));
    }

    #[test]
    fn walk_1_3_64_sections_of_subsection_adds_take_base_pages_from_altmap() {
        [1, 3, 64]
            .into_iter()
            .for_each(|n| walk(n, 2, true, PAGE_SIZE, true));
    }

    #[test]
    fn subsection_adds_without_altmap_take_ram_base_pages() {
        [1, 3]
            .into_iter()
            .for_each(|n| walk(n, 4, false, PAGE_SIZE, false));
    }

    #[test]
    fn two_adds_sharing_a_section_keep_each_others_memmap_arm64_2025_bug() {
        scenarios::two_adds_share_section::<A64>(&ARCH, FEATURES, false);
        scenarios::two_adds_share_section::<A64>(&ARCH, FEATURES, true);
    }

    #[test]
    fn partially_removed_block_stays_until_its_last_user_goes() {
        scenarios::partially_used_huge_leaf::<A64>(&ARCH, FEATURES, 8);
    }

    #[test]
    fn failure_injected_at_each_table_level_rolls_back_exactly() {
        for altmap in [false, true] {
            assert_eq!(
                failures(AllocKind::PageTable, altmap, 3, false),
                2,
                "L1 and L2 tables"
            );
            assert_eq!(failures(AllocKind::PageTable, altmap, 3, true), 0);
        }
    }

    #[test]
    fn failure_injected_at_each_leaf_rolls_back_exactly() {
        assert_eq!(
            failures(AllocKind::AltmapLeaf, true, 3, true),
            3,
            "no fallback with an altmap"
        );
        assert_eq!(
            failures(AllocKind::RamLeaf, false, 2, true),
            0,
            "RAM blocks fall back to base pages"
        );
    }

    #[test]
    fn altmap_exhausted_mid_add_rolls_back_the_whole_add() {
        let mut world = World::<A64>::new(&ARCH, FEATURES);
        let range = world.sections(0, 3);
        let exact = scenarios::exact_altmap(&ARCH, &range);
        let mut altmap = VmemAltmap::new(exact.base_pfn, exact.end_pfn, 0, exact.free - 1);
        let before = world.snapshot();
        let error = world
            .add(range, Some(&mut altmap))
            .expect_err("one page short");
        assert!(matches!(error, MmError::AltmapExhausted { .. }), "{error}");
        assert_eq!(world.snapshot(), before);
        assert_eq!((altmap.alloc, altmap.align), (0, 0));
    }

    #[test]
    fn nvdimm_exact_fit_for_n_sections() {
        for n in [1, 3] {
            let (layout, altmap) =
                scenarios::nvdimm_namespace::<A64>(&ARCH, FEATURES, n).expect("fits");
            assert_eq!(layout.dataoff, (2 * n + 2) << 20);
            assert_eq!(
                (altmap.align, altmap.alloc, altmap.nr_free()),
                (510, 512 * n, 0)
            );
        }
    }

    #[test]
    fn readd_with_fresh_and_reused_altmap_is_identical() {
        scenarios::readd_fresh_and_reused_altmap::<A64>(&ARCH, FEATURES, 3);
    }

    #[test]
    fn memmap_on_memory_blocks_self_host_and_error_path_keeps_the_altmap() {
        scenarios::memmap_on_memory_block::<A64>(&ARCH, FEATURES, 1);
    }

    #[test]
    fn removing_through_the_wrong_altmap_is_refused() {
        scenarios::wrong_altmap_is_refused::<A64>(&ARCH, FEATURES);
    }

    #[test]
    fn cost_table_matches_real_populate() {
        scenarios::cost_matches_formula::<A64>(&ARCH, FEATURES, BLOCK);
    }

    fn op() -> impl Strategy<Value = Op> {
        let spec =
            (0u64..4, 50u64..250).prop_map(|(reserve, percent)| AltmapSpec { reserve, percent });
        prop_oneof![
            3 => (0u64..192, 1u64..96, proptest::option::of(spec))
                .prop_map(|(first, count, altmap)| Op::Add { first, count, altmap }),
            2 => any::<usize>().prop_map(|pick| Op::Remove { pick }),
            1 => (0u64..192, 1u64..64).prop_map(|(first, count)| Op::RemoveRange { first, count }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn random_add_remove_keeps_invariants(ops in proptest::collection::vec(op(), 1..12)) {
            run_ops::<A64>(&ARCH, FEATURES, 3, &ops);
        }
    }
}
