//! The leaf check against a simulated machine: a populate that follows one of the two
//! sub-section policies (RAM base pages, or altmap base pages), NVDIMMs of the sizes that
//! Linux lays out with a partly covered last section, and leaves from the wrong source.

use std::collections::BTreeMap;
use std::vec::Vec;

use super::*;
use crate::mm::arch::MmArch;
use crate::mm::nvdimm::nvdimm_setup;
use crate::mm::sim::models;

const MIB: u64 = 1 << 20;
/// Where the simulated NVDIMMs start (QEMU's first hot-plug slot on a 512 MiB q35).
const BASE: u64 = 0x1_0000_0000;
/// Where simulated RAM leaves come from.
const RAM: Range<u64> = 0x1000_0000..0x2000_0000;

/// A sub-section span's policy, as the arch walkers choose it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum SubSection {
    /// x86_64: base pages from RAM, the altmap ignored.
    RamBasePages,
    /// arm64: base pages from the altmap.
    AltmapBasePages,
}

/// A machine whose vmemmap was populated chunk by chunk under `policy`.
struct Sim {
    policy: SubSection,
    leaves: BTreeMap<u64, FoundLeaf>,
    section_memmap: u64,
}

impl Sim {
    /// Populates `device` as the walker would: a whole section's memmap is one 2 MiB leaf
    /// from the altmap (aligned as the bump allocator aligns it), a partial section's
    /// memmap is 4 KiB leaves from RAM or from the altmap. `None` when the altmap runs
    /// out (Linux's `-ENOMEM`: no RAM fallback once an altmap is given).
    fn populate(arch: &MmArch, device: &DeviceMemory, policy: SubSection) -> Option<Sim> {
        let mut sim = Sim {
            policy,
            leaves: BTreeMap::new(),
            section_memmap: arch.section_memmap_bytes(),
        };
        let altmap = &device.altmap;
        let mut next_altmap = (altmap.base_pfn + altmap.reserve) * PAGE_SIZE;
        let mut next_ram = RAM.start;
        for chunk in chunks(arch, device.range.start, device.range.end) {
            let start = arch.pfn_to_page(chunk.first).0;
            let end = arch.pfn_to_page(chunk.first.add(chunk.nr_pages)).0;
            let leaf = if end - start == sim.section_memmap {
                2 * MIB
            } else {
                PAGE_SIZE
            };
            let from_altmap = leaf == 2 * MIB || policy == SubSection::AltmapBasePages;
            for va in (start..end).step_by(leaf as usize) {
                let frame = if from_altmap {
                    next_altmap = next_altmap.next_multiple_of(leaf);
                    next_altmap += leaf;
                    next_altmap - leaf
                } else {
                    next_ram += leaf;
                    next_ram - leaf
                };
                sim.leaves.insert(va, FoundLeaf { frame, bytes: leaf });
            }
        }
        (next_altmap <= device.first_data_pfn().0 * PAGE_SIZE).then_some(sim)
    }

    /// Replaces the leaf at `va` with one at `frame`.
    fn move_leaf(&mut self, va: u64, frame: u64) {
        let leaf = self.leaves.get_mut(&va).expect("a mapped leaf");
        leaf.frame = frame;
    }
}

impl LeafView for Sim {
    fn expected(&self, start: VirtAddr, end: VirtAddr) -> LeafSource {
        let sub_section = end.0 - start.0 < self.section_memmap;
        match (sub_section, self.policy) {
            (true, SubSection::RamBasePages) => LeafSource::Ram,
            _ => LeafSource::Altmap,
        }
    }

    fn leaf(&self, va: u64) -> Option<FoundLeaf> {
        let (start, leaf) = self.leaves.range(..=va).next_back()?;
        (va < start + leaf.bytes).then_some(*leaf)
    }

    fn is_ram(&self, frame: u64) -> bool {
        RAM.contains(&frame)
    }
}

/// An NVDIMM of `size` bytes at `start`, set up as Linux's nd_pfn_init lays it out.
fn nvdimm(arch: &MmArch, start: u64, size: u64) -> DeviceMemory {
    let (layout, altmap) = nvdimm_setup(arch, start, size, 2 * MIB).expect("a valid NVDIMM");
    let end = start + size - layout.end_trunc;
    DeviceMemory {
        region_id: 0,
        range: Pfn(start / PAGE_SIZE)..Pfn(end / PAGE_SIZE),
        altmap,
    }
}

fn check(arch: &MmArch, view: &Sim, device: &DeviceMemory) -> VerifyReport {
    let mut report = VerifyReport::default();
    check_leaves(arch, view, device, &mut report);
    report
}

/// Sizes of the issue: section multiples, partly covered last sections, 16 MiB (one
/// sub-section span only) and a 256 MiB NVDIMM less its 128 KiB label area.
const SIZES: [u64; 11] = [
    16 * MIB,
    129 * MIB,
    130 * MIB,
    256 * MIB,
    258 * MIB,
    512 * MIB,
    514 * MIB,
    770 * MIB,
    1024 * MIB,
    1026 * MIB,
    256 * MIB - 128 * 1024,
];

#[test]
fn every_size_passes_under_both_sub_section_policies() {
    let arch = &models::SECTIONS_128M_LEAF_2M;
    for policy in [SubSection::RamBasePages, SubSection::AltmapBasePages] {
        for size in SIZES {
            let device = nvdimm(arch, BASE, size);
            let pages = device.range.end.0 - device.range.start.0;
            let full_sections = pages / arch.pages_per_section();
            let partial = pages % arch.pages_per_section();
            let Some(sim) = Sim::populate(arch, &device, policy) else {
                // The altmap is sized for whole-section PMDs: with altmap base pages a
                // partly covered section after a full one finds it empty (-ENOMEM).
                assert!(policy == SubSection::AltmapBasePages && partial != 0);
                assert!(full_sections > 0, "{size:#x}");
                continue;
            };
            let report = check(arch, &sim, &device);
            assert!(report.passed(), "{size:#x}: {report:?}");
            assert_eq!(report.leaves_elsewhere, 0);
            assert_eq!(
                report.leaves_in_altmap + report.leaves_in_ram,
                report.leaves
            );
            assert_eq!(
                report.memmap_pages,
                arch.memmap_bytes(pages) / PAGE_SIZE,
                "{size:#x}"
            );
            let (ram, altmap) = match policy {
                SubSection::RamBasePages => (arch.memmap_bytes(partial) / PAGE_SIZE, 0),
                SubSection::AltmapBasePages => (0, arch.memmap_bytes(partial) / PAGE_SIZE),
            };
            assert_eq!(report.leaves_in_ram, ram, "{size:#x}");
            assert_eq!(report.leaves_in_altmap, full_sections + altmap, "{size:#x}");
        }
    }
}

#[test]
fn two_nvdimms_sharing_a_section_pass() {
    let arch = &models::SECTIONS_128M_LEAF_2M;
    let first = nvdimm(arch, BASE, 130 * MIB);
    let second = nvdimm(arch, BASE + 130 * MIB, 258 * MIB);
    for device in [&first, &second] {
        let sim = Sim::populate(arch, device, SubSection::RamBasePages).expect("fits");
        let report = check(arch, &sim, device);
        assert!(report.passed(), "{report:?}");
        assert!(report.leaves_in_ram > 0, "{report:?}");
    }
}

#[test]
fn a_leaf_from_the_altmap_where_the_policy_chose_ram_fails() {
    let arch = &models::SECTIONS_128M_LEAF_2M;
    let device = nvdimm(arch, BASE, 130 * MIB);
    let mut sim = Sim::populate(arch, &device, SubSection::RamBasePages).expect("fits");
    let partial = arch.pfn_to_page(Pfn((BASE + 128 * MIB) / PAGE_SIZE)).0;
    let storage_end = device.first_data_pfn().0 * PAGE_SIZE;
    sim.move_leaf(partial, storage_end - PAGE_SIZE);
    let report = check(arch, &sim, &device);
    assert!(!report.passed(), "{report:?}");
    assert_eq!(report.leaves_elsewhere, 1);
}

#[test]
fn a_leaf_from_ram_where_the_policy_chose_the_altmap_fails() {
    let arch = &models::SECTIONS_128M_LEAF_2M;
    for (policy, size) in [
        (SubSection::RamBasePages, 258 * MIB),
        (SubSection::AltmapBasePages, 256 * MIB),
    ] {
        let device = nvdimm(arch, BASE, size);
        let mut sim = Sim::populate(arch, &device, policy).expect("fits");
        let second_section = arch.pfn_to_page(Pfn((BASE + 128 * MIB) / PAGE_SIZE)).0;
        sim.move_leaf(second_section, RAM.start + 64 * MIB);
        let report = check(arch, &sim, &device);
        assert!(!report.passed(), "{report:?}");
        assert_eq!(report.leaves_elsewhere, 1);
    }
}

#[test]
fn a_leaf_in_the_data_area_or_an_unmapped_page_fails() {
    let arch = &models::SECTIONS_128M_LEAF_2M;
    let small = nvdimm(arch, BASE, 16 * MIB);
    let mut sim = Sim::populate(arch, &small, SubSection::AltmapBasePages).expect("fits");
    let first = arch.pfn_to_page(Pfn(BASE / PAGE_SIZE)).0;
    sim.move_leaf(first, small.first_data_pfn().0 * PAGE_SIZE);
    let report = check(arch, &sim, &small);
    assert_eq!(report.leaves_elsewhere, 1, "{report:?}");
    let device = nvdimm(arch, BASE, 130 * MIB);
    let partial = arch.pfn_to_page(Pfn((BASE + 128 * MIB) / PAGE_SIZE)).0;
    let mut sim = Sim::populate(arch, &device, SubSection::RamBasePages).expect("fits");
    sim.leaves.remove(&partial);
    let report = check(arch, &sim, &device);
    assert_eq!(report.walk_faults, 1, "{report:?}");
    assert!(!report.passed());
}

#[test]
fn the_report_needs_every_count_clean() {
    let clean = VerifyReport {
        pages: 1,
        leaves: 1,
        leaves_in_ram: 1,
        ..VerifyReport::default()
    };
    assert!(clean.passed());
    for broken in [
        VerifyReport {
            leaves_elsewhere: 1,
            ..clean
        },
        VerifyReport {
            rw_failures: 1,
            ..clean
        },
        VerifyReport {
            state_failures: 1,
            ..clean
        },
        VerifyReport { leaves: 0, ..clean },
    ] {
        assert!(!broken.passed(), "{broken:?}");
    }
}

#[test]
fn leaves_are_collected_in_order() {
    let arch = &models::SECTIONS_128M_LEAF_2M;
    let device = nvdimm(arch, BASE, 514 * MIB);
    let sim = Sim::populate(arch, &device, SubSection::RamBasePages).expect("fits");
    let frames: Vec<u64> = sim.leaves.values().map(|l| l.frame).collect();
    assert_eq!(frames.len(), 4 + 8, "four 2 MiB leaves and 8 base pages");
}
