//! Memory models for the kernel's own host tests, named by their geometry so generic
//! code and its tests never name an arch. The arch crates own the real constants
//! (`arch/<arch>/src/vmemmap.rs`); each arch's tests check that one of these equals its
//! own (name aside), so the kernel's tests keep testing the shapes the ports use.

use crate::mm::arch::MmArch;

/// 128 MiB sections, 2 MiB huge leaves in 4 KiB tables, a 46-bit memory model with the
/// vmemmap at 0xffff_ea00_0000_0000.
pub const SECTIONS_128M_LEAF_2M: MmArch = MmArch {
    name: "128m-2m",
    section_shift: 27,
    max_phys_bits: 46,
    vmemmap_base: 0xffff_ea00_0000_0000,
    vmemmap_leaf_shift: 21,
    pte_table_bytes: 4096,
    leaf_table_bytes: 4096,
    leaf_table_span_shift: 30,
    pageblock_order: 9,
};

/// As [`SECTIONS_128M_LEAF_2M`] with a 47-bit model and the vmemmap at
/// 0xffff_fc00_0000_0000.
pub const SECTIONS_128M_LEAF_2M_47BIT: MmArch = MmArch {
    name: "128m-2m-47bit",
    max_phys_bits: 47,
    vmemmap_base: 0xffff_fc00_0000_0000,
    ..SECTIONS_128M_LEAF_2M
};

/// 256 MiB sections, 1 MiB huge leaves in 16 KiB tables, 2 KiB last-level tables, a
/// 46-bit model with the vmemmap at 4 TiB, 1 MiB pageblocks.
pub const SECTIONS_256M_LEAF_1M: MmArch = MmArch {
    name: "256m-1m",
    section_shift: 28,
    max_phys_bits: 46,
    vmemmap_base: 0x400_0000_0000,
    vmemmap_leaf_shift: 20,
    pte_table_bytes: 2048,
    leaf_table_bytes: 16384,
    leaf_table_span_shift: 31,
    pageblock_order: 8,
};

/// All three.
pub const ALL: [MmArch; 3] = [
    SECTIONS_128M_LEAF_2M,
    SECTIONS_128M_LEAF_2M_47BIT,
    SECTIONS_256M_LEAF_1M,
];

/// Whether `a` and `b` describe the same model (names aside).
pub fn same_model(a: &MmArch, b: &MmArch) -> bool {
    MmArch { name: "", ..*a } == MmArch { name: "", ..*b }
}
