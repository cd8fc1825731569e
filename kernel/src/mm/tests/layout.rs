//! Per-arch constants, `Page` layout, `pfn_to_page` (§6.4 item 15) and the cost table.

use crate::mm::arch::MmArch;
use crate::mm::cost::{MemmapCost, cost_table, render_cost_table};
use crate::mm::page::{Page, PageFlags, STRUCT_PAGE_SIZE, Zone};
use crate::mm::{PAGE_SIZE, Pfn, VirtAddr};

#[test]
fn page_is_64_bytes_and_packs_zone_node_section() {
    assert_eq!(core::mem::size_of::<Page>(), 64);
    let page = Page::new(Zone::Movable, 3, 0x1234);
    assert_eq!(
        (page.zone(), page.node(), page.section()),
        (Zone::Movable, 3, 0x1234)
    );
    assert!(page.has(PageFlags::INITIALIZED) && !page.has(PageFlags::BUDDY));
}

#[test]
fn pfn_to_page_is_base_plus_64_per_pfn() {
    assert_eq!(
        MmArch::X86_64.pfn_to_page(Pfn(1)),
        VirtAddr(0xffff_ea00_0000_0040)
    );
    assert_eq!(
        MmArch::S390X.pfn_to_page(Pfn(0x40000)),
        VirtAddr(0x400_0100_0000)
    );
    assert_eq!(
        MmArch::AARCH64.page_to_pfn(VirtAddr(0xffff_fc00_0000_1000)),
        Pfn(64)
    );
}

#[test]
fn section_memmap_starts_on_a_huge_leaf_boundary() {
    for arch in MmArch::ALL {
        for section in [0, 1, 7, 1000] {
            let start = arch.pfn_to_page(arch.section_start(section));
            assert!(start.is_aligned(arch.vmemmap_leaf_bytes()), "{}", arch.name);
        }
        assert_eq!(arch.section_memmap_bytes() % arch.vmemmap_leaf_bytes(), 0);
        assert!(
            arch.vmemmap_end() > arch.vmemmap_base,
            "window does not wrap"
        );
    }
    assert_eq!(MmArch::X86_64.section_memmap_bytes(), 2 << 20);
    assert_eq!(MmArch::S390X.section_memmap_bytes(), 4 << 20);
    assert_eq!(
        STRUCT_PAGE_SIZE * MmArch::S390X.pages_per_section() / (1 << 20),
        4
    );
}

#[test]
fn cost_table_per_arch_and_leaf_size() {
    let table = render_cost_table();
    println!("{table}");
    assert_eq!(cost_table().len(), 6);
    let x86_pmd = MemmapCost::new(&MmArch::X86_64, 2 << 20);
    assert_eq!(
        (
            x86_pmd.memmap_per_gib,
            x86_pmd.leaves_per_gib,
            x86_pmd.pte_tables_per_gib
        ),
        (16 << 20, 8, 0)
    );
    let x86_4k = MemmapCost::new(&MmArch::X86_64, PAGE_SIZE);
    assert_eq!(
        (
            x86_4k.leaves_per_gib,
            x86_4k.pte_tables_per_gib,
            x86_4k.pte_table_bytes_per_gib
        ),
        (4096, 8, 32768)
    );
    let s390_4k = MemmapCost::new(&MmArch::S390X, PAGE_SIZE);
    assert_eq!(
        (s390_4k.pte_tables_per_gib, s390_4k.pte_table_bytes_per_gib),
        (16, 32768)
    );
    let s390_seg = MemmapCost::new(&MmArch::S390X, 1 << 20);
    assert_eq!(
        (s390_seg.memmap_per_section, s390_seg.leaves_per_gib),
        (4 << 20, 16)
    );
    assert!(table.contains("| s390x | 1 MiB | 4 MiB | 16 MiB | 16 | 0 |"));
}
