//! memmap_on_memory arithmetic and gates (§1.5, §6.4 item 9).

use crate::mm::Pfn;
use crate::mm::memmap_on_memory::{
    MemmapOnMemoryMode::{Disabled, Enabled, Force},
    MemmapOnMemoryRefusal as Refusal, memmap_on_memory_altmap, memmap_on_memory_pages,
    supports_for, supports_memmap_on_memory,
};
use crate::mm::sim::models;

const MIB: u64 = 1 << 20;

#[test]
fn block_sizes_give_linux_page_counts() {
    assert_eq!(
        memmap_on_memory_pages(&models::SECTIONS_128M_LEAF_2M, 128 * MIB, Enabled),
        512
    );
    assert_eq!(
        memmap_on_memory_pages(&models::SECTIONS_128M_LEAF_2M, 2048 * MIB, Enabled),
        8192
    );
    assert_eq!(
        memmap_on_memory_pages(&models::SECTIONS_256M_LEAF_1M, 256 * MIB, Enabled),
        1024
    );
    assert_eq!(
        supports_memmap_on_memory(&models::SECTIONS_128M_LEAF_2M_47BIT, 128 * MIB, Enabled),
        Ok(512)
    );
    assert_eq!(
        supports_memmap_on_memory(&models::SECTIONS_256M_LEAF_1M, 256 * MIB, Enabled),
        Ok(1024)
    );
}

#[test]
fn gates_refuse_in_linux_order() {
    let model = &models::SECTIONS_128M_LEAF_2M;
    assert_eq!(
        supports_memmap_on_memory(model, 128 * MIB, Disabled),
        Err(Refusal::Disabled)
    );
    assert_eq!(
        supports_for(model, 128 * MIB, 72, Enabled),
        Err(Refusal::NotPageblockAligned {
            pages: 576,
            pageblock: 512
        })
    );
    assert_eq!(
        supports_for(model, 128 * MIB, 72, Force),
        Err(Refusal::NotLeafAligned {
            vmemmap_bytes: 72 * 32768,
            leaf_bytes: 2 * MIB
        })
    );
    assert_eq!(
        supports_for(model, MIB, 56, Enabled),
        Err(Refusal::NotPageAligned {
            vmemmap_bytes: 56 * 256
        })
    );
    assert_eq!(
        supports_for(model, 2 * MIB, 4096, Force),
        Err(Refusal::WholeBlock { pages: 512 })
    );
    assert_eq!(
        supports_memmap_on_memory(model, 64 * MIB, Enabled),
        Err(Refusal::NotPageblockAligned {
            pages: 256,
            pageblock: 512
        })
    );
    assert_eq!(
        supports_memmap_on_memory(&models::SECTIONS_256M_LEAF_1M, 64 * MIB, Enabled),
        Ok(256),
        "256-page pageblocks and 1 MiB leaves"
    );
}

#[test]
fn force_pads_to_pageblocks() {
    assert_eq!(
        memmap_on_memory_pages(&models::SECTIONS_128M_LEAF_2M, 64 * MIB, Force),
        512
    );
}

#[test]
fn block_altmap_has_no_reserve_and_inclusive_end() {
    let altmap = memmap_on_memory_altmap(
        &models::SECTIONS_128M_LEAF_2M,
        Pfn(0x40000),
        128 * MIB,
        Enabled,
    )
    .expect("ok");
    assert_eq!(
        (altmap.base_pfn, altmap.end_pfn, altmap.reserve, altmap.free),
        (0x40000, 0x47fff, 0, 512)
    );
    assert_eq!(altmap.first_data_pfn(), Pfn(0x40200));
}
