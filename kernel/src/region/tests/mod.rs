//! Host tests of the region list, one file per concern: the altmap figures against
//! Linux's formula computed here independently (`altmap`), the `memmap=` rules (`memmap`),
//! NFIT ranges and windows (`windows`), discovery records and the map (`discovery`), carving
//! the RAM map (`carve`), random request sets (`fuzz`). The fixtures they share are here.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::ops::Range;

use proptest::prelude::*;

use super::*;
use crate::boot_info::{HotplugWindow, MemKind, MemRegion, MemoryMap};
use crate::firmware::memmap_param::parse_item;
use crate::firmware::nfit::{self, fixture as nfit_fixture};
use crate::firmware::srat::{self, fixture as srat_fixture};
use crate::mm::VmemAltmap;
use crate::mm::addr::PAGE_SIZE;
use crate::mm::sim::models;

mod altmap;
mod carve;
mod discovery;
mod fuzz;
mod memmap;
mod windows;

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

fn map(spans: &[(u64, u64, MemKind)]) -> MemoryMap {
    let mut m = MemoryMap::new();
    for &(start, end, kind) in spans {
        m.push(MemRegion { start, end, kind });
    }
    m
}

/// QEMU q35 with 512 MiB: low RAM, the kernel at 1 MiB, ACPI tables at the top.
fn q35_512m() -> MemoryMap {
    map(&[
        (0, 0x9_f000, MemKind::Usable),
        (0x9_f000, 0x10_0000, MemKind::Reserved),
        (0x10_0000, 0x40_0000, MemKind::Kernel),
        (0x40_0000, 0x1ff0_0000, MemKind::Usable),
        (0x1ff0_0000, 0x2000_0000, MemKind::AcpiReclaimable),
    ])
}

/// 2 GiB low and 16 GiB from 4 GiB, in two touching usable spans above 4 GiB.
fn big_ram() -> MemoryMap {
    map(&[
        (0, 0x10_0000, MemKind::Reserved),
        (0x10_0000, 0x8000_0000, MemKind::Usable),
        (0x1_0000_0000, 0x3_0000_0000, MemKind::Usable),
        (0x3_0000_0000, 0x5_0000_0000, MemKind::Usable),
    ])
}

fn memmap(text: &str) -> RegionRequest {
    RegionRequest::memmap(&parse_item(text).unwrap_or_else(|e| panic!("{e}")))
}

fn reject(set: &mut RegionSet, req: RegionRequest) -> RegionError {
    set.add_checked(req).expect_err("should be refused")
}

/// Linux, independently: `nd_pfn_init` (PMEM mode) + `__nvdimm_setup_pfn` for a
/// subsection-aligned start: (base_pfn, end_pfn, reserve, free, offset).
fn linux_altmap(start: u64, size: u64, align: u64) -> (u64, u64, u64, u64, u64) {
    let npfns = (size - 8 * KIB) / (4 * KIB);
    let dataoff = (start + 8 * KIB + 64 * npfns).next_multiple_of(align) - start;
    let end_trunc = (start + size) % align;
    let reserve = 2;
    let free = dataoff / (4 * KIB) - reserve;
    (
        start / (4 * KIB),
        (start + size - end_trunc - 1) / (4 * KIB),
        reserve,
        free,
        dataoff / (4 * KIB),
    )
}

fn figures(a: &VmemAltmap) -> (u64, u64, u64, u64, u64) {
    (a.base_pfn, a.end_pfn, a.reserve, a.free, a.offset())
}

fn nfit_spa(index: u16, base: u64, length: u64) -> nfit::SpaRange {
    nfit::SpaRange {
        index,
        flags: nfit::SPA_FLAG_PROXIMITY_VALID,
        proximity_domain: 0,
        guid: nfit::PMEM_GUID,
        base,
        length,
        mapping_attributes: 0x8008,
    }
}

fn window_set(ram: &MemoryMap) -> RegionSet {
    let mut set = RegionSet::new(models::SECTIONS_128M_LEAF_2M, ram);
    let srat = srat::parse_table(&srat_fixture::qemu_x86(&[])).expect("valid");
    for w in srat.hotplug_windows() {
        set.add_checked(RegionRequest::srat_window(w))
            .expect("window");
    }
    set
}

fn x86_sources_set() -> RegionSet {
    let fit = nfit_fixture::qemu_fit(&nfit_fixture::QEMU_X86_TWO_NVDIMMS_ALIGNED);
    let nfit = nfit::parse_table(&nfit_fixture::nfit_table(&fit)).expect("valid");
    let nv: Vec<_> = nfit.pmem().map(|s| (s.base, s.length)).collect();
    let srat = srat::parse_table(&srat_fixture::qemu_x86(&nv)).expect("valid");
    let sources = Sources {
        cmdline: "console=ttyS0 memmap=64M!256M,64M!288M memmap=2M!0x18000000 memmap=3M!384M memmap=1G$4G",
        srat: Some(&srat),
        nfit: Some(&nfit),
        window: Some(HotplugWindow {
            start: 4 * GIB,
            end: 0x3_e000_0000,
        }),
    };
    discover(models::SECTIONS_128M_LEAF_2M, &q35_512m(), &sources)
}
