//! Per-arch constants, `Page` layout, `pfn_to_page` (§6.4 item 15) and the cost table.

use crate::mm::cost::{MemmapCost, cost_table, render_cost_table};
use crate::mm::page::{Page, PageFlags, STRUCT_PAGE_SIZE, Zone};
use crate::mm::sim::models;
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
        models::SECTIONS_128M_LEAF_2M.pfn_to_page(Pfn(1)),
        VirtAddr(0xffff_ea00_0000_0040)
    );
    assert_eq!(
        models::SECTIONS_256M_LEAF_1M.pfn_to_page(Pfn(0x40000)),
        VirtAddr(0x400_0100_0000)
    );
    assert_eq!(
        models::SECTIONS_128M_LEAF_2M_47BIT.page_to_pfn(VirtAddr(0xffff_fc00_0000_1000)),
        Pfn(64)
    );
}

#[test]
fn section_memmap_starts_on_a_huge_leaf_boundary() {
    for arch in models::ALL {
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
    assert_eq!(
        models::SECTIONS_128M_LEAF_2M.section_memmap_bytes(),
        2 << 20
    );
    assert_eq!(
        models::SECTIONS_256M_LEAF_1M.section_memmap_bytes(),
        4 << 20
    );
    assert_eq!(
        STRUCT_PAGE_SIZE * models::SECTIONS_256M_LEAF_1M.pages_per_section() / (1 << 20),
        4
    );
}

#[test]
fn cost_table_per_model_and_leaf_size() {
    let all: Vec<&crate::mm::arch::MmArch> = models::ALL.iter().collect();
    let table = render_cost_table(&all);
    println!("{table}");
    assert_eq!(cost_table(&all).len(), 6);
    let leaf_2m = MemmapCost::new(&models::SECTIONS_128M_LEAF_2M, 2 << 20);
    assert_eq!(
        (
            leaf_2m.memmap_per_gib,
            leaf_2m.leaves_per_gib,
            leaf_2m.pte_tables_per_gib
        ),
        (16 << 20, 8, 0)
    );
    let base_128m = MemmapCost::new(&models::SECTIONS_128M_LEAF_2M, PAGE_SIZE);
    assert_eq!(
        (
            base_128m.leaves_per_gib,
            base_128m.pte_tables_per_gib,
            base_128m.pte_table_bytes_per_gib
        ),
        (4096, 8, 32768)
    );
    let base_256m = MemmapCost::new(&models::SECTIONS_256M_LEAF_1M, PAGE_SIZE);
    assert_eq!(
        (
            base_256m.pte_tables_per_gib,
            base_256m.pte_table_bytes_per_gib
        ),
        (16, 32768)
    );
    let leaf_1m = MemmapCost::new(&models::SECTIONS_256M_LEAF_1M, 1 << 20);
    assert_eq!(
        (leaf_1m.memmap_per_section, leaf_1m.leaves_per_gib),
        (4 << 20, 16)
    );
    assert!(table.contains("| 256m-1m | 1 MiB | 4 MiB | 16 MiB | 16 | 0 |"));
}
