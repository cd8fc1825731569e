//! What the memmap costs: bytes per section, leaves and page-table bytes per GiB of
//! memory populated, per memory model and leaf size. Pure arithmetic on [`MmArch`]; the
//! shared suite checks it against real populates on the simulated memory, and each arch
//! crate checks its rows of the README's table.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::addr::PAGE_SIZE;
use super::arch::MmArch;

const GIB: u64 = 1 << 30;

/// One row of the cost table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemmapCost {
    /// The arch.
    pub arch: &'static str,
    /// Leaf size used for the memmap.
    pub leaf_bytes: u64,
    /// Memmap bytes per section.
    pub memmap_per_section: u64,
    /// Memmap bytes per GiB of memory.
    pub memmap_per_gib: u64,
    /// Leaves per GiB of memory.
    pub leaves_per_gib: u64,
    /// Last-level (PTE) tables per GiB of memory.
    pub pte_tables_per_gib: u64,
    /// Bytes of those tables.
    pub pte_table_bytes_per_gib: u64,
    /// Bytes of leaf-holding (PMD / segment) tables per GiB, amortised.
    pub leaf_table_bytes_per_gib: u64,
}

impl MemmapCost {
    /// Cost with leaves of `leaf_bytes` (the arch's huge leaf or the base page).
    pub fn new(arch: &MmArch, leaf_bytes: u64) -> MemmapCost {
        let memmap_per_gib = arch.memmap_bytes(GIB / PAGE_SIZE);
        let pte_tables = if leaf_bytes == PAGE_SIZE {
            memmap_per_gib / arch.vmemmap_leaf_bytes()
        } else {
            0
        };
        MemmapCost {
            arch: arch.name,
            leaf_bytes,
            memmap_per_section: arch.section_memmap_bytes(),
            memmap_per_gib,
            leaves_per_gib: memmap_per_gib / leaf_bytes,
            pte_tables_per_gib: pte_tables,
            pte_table_bytes_per_gib: pte_tables * arch.pte_table_bytes,
            leaf_table_bytes_per_gib: (arch.leaf_table_bytes * memmap_per_gib)
                >> arch.leaf_table_span_shift,
        }
    }

    /// Page-table pages per GiB (PTE tables plus the amortised leaf tables), in 1/1000.
    pub fn table_millipages_per_gib(&self) -> u64 {
        (self.pte_table_bytes_per_gib + self.leaf_table_bytes_per_gib) * 1000 / PAGE_SIZE
    }
}

/// The rows of `arches`: each with its huge leaf and with 4 KiB pages.
pub fn cost_table(arches: &[&MmArch]) -> Vec<MemmapCost> {
    arches
        .iter()
        .flat_map(|arch| {
            [
                MemmapCost::new(arch, arch.vmemmap_leaf_bytes()),
                MemmapCost::new(arch, PAGE_SIZE),
            ]
        })
        .collect()
}

fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    }
}

/// The table of `arches` as Markdown.
pub fn render_cost_table(arches: &[&MmArch]) -> String {
    let mut out = String::from(
        "| arch | leaf | memmap/section | memmap/GiB | leaves/GiB | PTE tables/GiB | PTE-table bytes/GiB | leaf-table bytes/GiB | table pages/GiB |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for row in cost_table(arches) {
        let milli = row.table_millipages_per_gib();
        out += &format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {}.{:03} |\n",
            row.arch,
            size(row.leaf_bytes),
            size(row.memmap_per_section),
            size(row.memmap_per_gib),
            row.leaves_per_gib,
            row.pte_tables_per_gib,
            size(row.pte_table_bytes_per_gib),
            size(row.leaf_table_bytes_per_gib),
            milli / 1000,
            milli % 1000
        );
    }
    out
}
