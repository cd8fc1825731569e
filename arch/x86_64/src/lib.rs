//! The x86_64 port: Limine-protocol entry, GDT/TSS/IDT, the COM1 console, TSC clock,
//! CPU feature report, the kernel's own page tables (HHDM + W^X image), the
//! isa-debug-exit stop, and the hotplug sources (ACPI memory-hotplug controller and
//! NVDIMM FIT behind the SCI).
//!
//! The page-table format ([`paging`]) is pure data and tested on the host; everything
//! else exists only on the bare-metal target.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", feature(abi_x86_interrupt))]

#[cfg(target_os = "none")]
extern crate alloc;

pub mod paging;

#[cfg(target_os = "none")]
mod apic;
#[cfg(target_os = "none")]
mod boot;
#[cfg(target_os = "none")]
mod cpu;
#[cfg(target_os = "none")]
mod gdt;
#[cfg(target_os = "none")]
mod hotplug;
#[cfg(target_os = "none")]
mod idt;
#[cfg(target_os = "none")]
mod kpt;
#[cfg(target_os = "none")]
mod mhpd_io;
#[cfg(target_os = "none")]
mod nvdimm_fit;
#[cfg(target_os = "none")]
mod pci;
#[cfg(target_os = "none")]
mod port;
#[cfg(target_os = "none")]
mod probe;
#[cfg(target_os = "none")]
mod requests;
#[cfg(target_os = "none")]
mod sci;
#[cfg(target_os = "none")]
mod serial;
#[cfg(target_os = "none")]
mod tsc;
#[cfg(target_os = "none")]
mod virtio_pci;

#[cfg(target_os = "none")]
pub use port::X86_64;

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

    use crate::paging::X86_64Paging as X86;

    static ARCH: MmArch = MmArch::X86_64;
    const PSE: Features = Features::PSE.union(Features::NO_EXECUTE);
    const NO_PSE: Features = Features::NO_EXECUTE;
    const PMD: u64 = 2 << 20;

    fn walk(
        sections: u64,
        features: Features,
        pieces: u64,
        altmap: bool,
        leaf: u64,
        from_altmap: bool,
    ) {
        scenarios::populate_walk_free::<X86>(
            &ARCH,
            features,
            sections,
            pieces,
            altmap,
            leaf,
            from_altmap,
        );
    }

    #[test]
    fn walk_1_3_64_sections_pmd_leaves_from_altmap() {
        [1, 3, 64]
            .into_iter()
            .for_each(|n| walk(n, PSE, 1, true, PMD, true));
    }

    #[test]
    fn walk_1_3_64_sections_pmd_leaves_from_ram() {
        [1, 3, 64]
            .into_iter()
            .for_each(|n| walk(n, PSE, 1, false, PMD, false));
    }

    #[test]
    fn walk_1_3_64_sections_4k_leaves_without_pse_from_ram() {
        [1, 3, 64]
            .into_iter()
            .for_each(|n| walk(n, NO_PSE, 1, false, PAGE_SIZE, false));
    }

    #[test]
    fn subsection_adds_use_ram_base_pages_and_ignore_the_altmap() {
        [1, 3]
            .into_iter()
            .for_each(|n| walk(n, PSE, 4, true, PAGE_SIZE, false));
    }

    #[test]
    fn no_pse_with_altmap_is_enomem() {
        let mut world = World::<X86>::new(&ARCH, NO_PSE);
        let range = world.sections(0, 1);
        let mut altmap = scenarios::exact_altmap(&ARCH, &range);
        let before = world.snapshot();
        assert_eq!(
            world.add(range, Some(&mut altmap)),
            Err(MmError::NoHugeSupportForAltmap)
        );
        assert_eq!(world.snapshot(), before);
        assert_eq!((altmap.alloc, altmap.align), (0, 0));
    }

    fn failures(
        features: Features,
        kind: AllocKind,
        altmap: bool,
        sections: u64,
        neighbour: bool,
    ) -> u64 {
        scenarios::failure_at_each_allocation::<X86>(
            &ARCH, features, kind, altmap, sections, neighbour,
        )
        .1
    }

    #[test]
    fn failure_injected_at_each_table_level_rolls_back_exactly() {
        for altmap in [false, true] {
            assert_eq!(
                failures(PSE, AllocKind::PageTable, altmap, 3, false),
                2,
                "PDPT and PD"
            );
            assert_eq!(
                failures(PSE, AllocKind::PageTable, altmap, 3, true),
                0,
                "tables shared"
            );
        }
        assert_eq!(
            failures(NO_PSE, AllocKind::PageTable, false, 3, false),
            5,
            "PDPT, PD, 3 PT"
        );
        assert_eq!(
            failures(NO_PSE, AllocKind::PageTable, false, 3, true),
            3,
            "3 PT"
        );
    }

    #[test]
    fn heap_failure_at_each_allocation_rolls_back_exactly() {
        for (features, altmap) in [(PSE, true), (PSE, false), (NO_PSE, false)] {
            for neighbour in [false, true] {
                let (tried, failed) = scenarios::failure_at_each_allocation::<X86>(
                    &ARCH,
                    features,
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
    fn failure_injected_at_each_leaf_rolls_back_exactly() {
        assert_eq!(failures(PSE, AllocKind::AltmapLeaf, true, 3, true), 3);
        let (tried, failed) = scenarios::failure_at_each_allocation::<X86>(
            &ARCH,
            NO_PSE,
            AllocKind::RamLeaf,
            false,
            1,
            true,
        );
        assert!(
            tried > 32 && failed == tried,
            "every one of the 512 base pages is fatal"
        );
    }

    #[test]
    fn ram_pmd_failure_without_altmap_falls_back_to_base_pages() {
        assert_eq!(
            failures(PSE, AllocKind::RamLeaf, false, 2, true),
            0,
            "each failed PMD falls back to RAM base pages"
        );
    }

    #[test]
    fn altmap_exhausted_mid_add_rolls_back_the_whole_add() {
        let mut world = World::<X86>::new(&ARCH, PSE);
        let range = world.sections(0, 3);
        let mut altmap = scenarios::exact_altmap(&ARCH, &range);
        altmap = VmemAltmap::new(altmap.base_pfn, altmap.end_pfn, 0, altmap.free - 512);
        let before = world.snapshot();
        let error = world
            .add(range, Some(&mut altmap))
            .expect_err("one PMD short");
        assert_eq!(
            error,
            MmError::AltmapExhausted {
                requested: 512,
                padding: 0,
                nr_free: 0
            }
        );
        assert_eq!(
            world.snapshot(),
            before,
            "no RAM fallback, and earlier sections undone too"
        );
        assert_eq!((altmap.alloc, altmap.align), (0, 0));
    }

    #[test]
    fn nvdimm_exact_fit_for_n_sections() {
        for n in [1, 2, 3, 8] {
            let (layout, altmap) = scenarios::nvdimm_namespace::<X86>(&ARCH, PSE, n).expect("fits");
            assert_eq!(layout.dataoff, (2 * n + 2) << 20);
            assert_eq!((altmap.reserve, altmap.free), (2, 512 * (n + 1) - 2));
            assert_eq!(
                (altmap.align, altmap.alloc, altmap.nr_free()),
                (510, 512 * n, 0)
            );
        }
    }

    #[test]
    fn two_adds_sharing_a_section_keep_each_others_memmap() {
        scenarios::two_adds_share_section::<X86>(&ARCH, PSE, false);
        scenarios::two_adds_share_section::<X86>(&ARCH, PSE, true);
    }

    #[test]
    fn partially_used_pmd_is_kept_and_reused() {
        scenarios::partially_used_huge_leaf::<X86>(&ARCH, PSE, 8);
    }

    #[test]
    fn readd_with_fresh_and_reused_altmap_is_identical() {
        scenarios::readd_fresh_and_reused_altmap::<X86>(&ARCH, PSE, 3);
    }

    #[test]
    fn memmap_on_memory_blocks_self_host_and_error_path_keeps_the_altmap() {
        scenarios::memmap_on_memory_block::<X86>(&ARCH, PSE, 1);
        scenarios::memmap_on_memory_block::<X86>(&ARCH, PSE, 16);
    }

    #[test]
    fn removing_through_the_wrong_altmap_is_refused() {
        scenarios::wrong_altmap_is_refused::<X86>(&ARCH, PSE);
    }

    #[test]
    fn cost_table_matches_real_populate() {
        scenarios::cost_matches_formula::<X86>(&ARCH, PSE, PMD);
        scenarios::cost_matches_formula::<X86>(&ARCH, NO_PSE, PAGE_SIZE);
    }

    #[test]
    fn populating_a_populated_range_is_a_no_op() {
        let mut world = World::<X86>::new(&ARCH, PSE);
        let range = world.sections(0, 2);
        world.add(range.clone(), None).expect("add");
        let before = (world.snapshot(), world.mem.handed_out());
        let (start, end) = world
            .sparse
            .vmemmap()
            .memmap_range(range.start, range.end.0 - range.start.0);
        world
            .sparse
            .vmemmap_mut()
            .populate(&mut world.mem, start, end, None)
            .expect("again");
        assert_eq!((world.snapshot(), world.mem.handed_out()), before);
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
        fn random_add_remove_keeps_invariants(ops in proptest::collection::vec(op(), 1..12), pse: bool) {
            run_ops::<X86>(&ARCH, if pse { PSE } else { NO_PSE }, 3, &ops);
        }
    }
}
