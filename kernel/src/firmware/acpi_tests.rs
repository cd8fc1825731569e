//! Host tests of the ACPI summary over QEMU's own tables.
//!
//! `fixtures/qemu-virt-acpi.tables` holds every table AAVMF installed for `qemu-system-aarch64
//! -M virt,nvdimm=on -cpu cortex-a57 -m 1G,slots=4,maxmem=8G` (QEMU 10.0.2), dumped with
//! HMP `pmemsave` from a booted guest: records of `u64 physical address, u32 length, bytes`
//! (RSDP, XSDT, every XSDT entry, the DSDT). The tests rebuild that physical memory.

use super::*;
use crate::boot_info::{MemKind, MemRegion, MemoryMap};

const TABLES: &[u8] = include_bytes!("fixtures/qemu-virt-acpi.tables");
/// The RSDP's address in that boot (the Limine RSDP response).
const RSDP: u64 = 0x7c43_0018;
const BASE: u64 = 0x7c43_0000;

/// The 64 KiB of ACPI memory the tables lived in, rebuilt from the fixture.
fn memory() -> Vec<u8> {
    let mut mem = vec![0u8; 0x1_0000];
    let mut rest = TABLES;
    while !rest.is_empty() {
        let pa = u64::from_le_bytes(rest[..8].try_into().unwrap());
        let len = u32::from_le_bytes(rest[8..12].try_into().unwrap()) as usize;
        let off = (pa - BASE) as usize;
        mem[off..off + len].copy_from_slice(&rest[12..12 + len]);
        rest = &rest[12 + len..];
    }
    mem
}

/// A reader over that memory (leaked, so its slices live for the test run).
fn reader(mem: Vec<u8>) -> impl Fn(u64, usize) -> Option<&'static [u8]> {
    let mem: &'static [u8] = Box::leak(mem.into_boxed_slice());
    move |pa, len| {
        let off = usize::try_from(pa.checked_sub(BASE)?).ok()?;
        mem.get(off..off.checked_add(len)?)
    }
}

#[test]
fn qemu_virt_tables_match_qemus_memory_map() {
    let info = parse(RSDP, &reader(memory())).expect("parses");
    assert_eq!(info.revision, 2);
    assert_eq!(
        info.tables, 10,
        "FACP APIC PPTT GTDT MCFG SPCR DBG2 SRAT SSDT IORT"
    );
    // hw/arm/virt.c base_memmap: VIRT_UART 0x09000000, VIRT_HIGH_PCIE_ECAM 0x40_1000_0000
    // (256 MiB, buses 0-255), VIRT_GIC_DIST 0x08000000, VIRT_GIC_CPU 0x08010000.
    assert_eq!(
        info.uart,
        Some(Uart {
            kind: "pl011",
            base: 0x0900_0000,
            io: false
        })
    );
    assert_eq!(
        info.ecam.items(),
        &[Ecam {
            base: 0x40_1000_0000,
            segment: 0,
            bus_start: 0,
            bus_end: 255
        }]
    );
    assert_eq!(info.ecam.items()[0].size(), 0x1000_0000);
    let gic = info.gic.expect("MADT has a GICD");
    assert_eq!((gic.version, gic.gicd, gic.cpus), (2, 0x0800_0000, 1));
    assert_eq!(gic.gicc, Some(0x0801_0000));
    assert_eq!(info.psci_hvc, Some(true), "FADT arm_boot_arch = PSCI | HVC");
}

#[test]
fn srat_lists_boot_ram_and_the_hotpluggable_device_memory() {
    let srat = parse(RSDP, &reader(memory()))
        .unwrap()
        .srat
        .expect("memhp makes a NUMA node");
    // RAM at 1 GiB; device memory at ROUND_UP(1 GiB + ram, 1 GiB), maxmem - ram + slots
    // x 1 GiB long (qemu-hotplug.md §3.4), enabled + hot-pluggable.
    assert_eq!(
        srat.items(),
        &[
            MemAffinity {
                domain: 0,
                base: 0x4000_0000,
                length: 1 << 30,
                flags: 1
            },
            MemAffinity {
                domain: 0,
                base: 0x8000_0000,
                length: (7 + 4) << 30,
                flags: 3
            },
        ]
    );
    assert!(srat.items()[1].hotpluggable());
}

#[test]
fn record_and_details_are_key_value() {
    let info = parse(RSDP, &reader(memory())).unwrap();
    let text = format!("{info}");
    assert!(text.contains(" uart.pl011=0x9000000 "), "{text}");
    assert!(text.contains(" pci.ecam=0x4010000000 "), "{text}");
    assert!(text.contains(" psci=hvc"), "{text}");
    assert!(text.split(' ').all(|w| w.contains('=')), "{text}");
    let mut details = String::new();
    info.details(&mut details).unwrap();
    assert!(
        details
            .contains("firmware.srat start=0x80000000 end=0x340000000 node=0 flags=0x3 hotplug=1"),
        "{details}"
    );
}

#[test]
fn rsdp_outside_the_window_is_refused() {
    let read = reader(memory());
    assert_eq!(parse(0x1000, &read), Err(AcpiError::Unreachable));
    assert_eq!(parse(BASE, &read), Err(AcpiError::BadRoot));
}

#[test]
fn window_bounds() {
    let w = PhysWindow {
        base_pa: 0x1000,
        base_va: 0x10_0000,
        len: 0x100,
        mapped: None,
    };
    assert_eq!(w.ptr(0x1000, 0x100), Some(0x10_0000 as *const u8));
    assert_eq!(w.ptr(0x10ff, 2), None);
    assert_eq!(w.ptr(0xfff, 1), None);
    let mut map = MemoryMap::new();
    map.push(MemRegion {
        start: 0,
        end: 0x8000,
        kind: MemKind::Usable,
    });
    map.push(MemRegion {
        start: 0x8000,
        end: 0x9000,
        kind: MemKind::Reserved,
    });
    let d = PhysWindow::direct_map(0x1000_0000, &map);
    assert_eq!(d.ptr(u64::MAX, 2), None);
    assert_eq!(d.ptr(0x7000, 0x1000), Some(0x1000_7000 as *const u8));
    assert_eq!(
        d.ptr(0x7000, 0x1001),
        None,
        "a length that runs into reserved memory"
    );
    assert!(d.slice(0x8000, 8).is_none());
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    /// QEMU's tables with random bytes overwritten (lengths, checksums, offsets,
    /// structure framing alike): the walk and every decoder either answer or refuse,
    /// never panic or read outside the memory.
    #[test]
    fn corrupted_tables_never_panic(
        hits in proptest::collection::vec((0usize..0x1_0000, proptest::prelude::any::<u8>()), 1..24)
    ) {
        let mut mem = memory();
        for (at, value) in hits {
            mem[at] = value;
        }
        let read = reader(mem);
        let _ = parse(RSDP, &read);
        let _ = parse_boot(RSDP, &read);
        let _ = acpi_find::dsdt(RSDP, &read);
        let _ = acpi_find::find::<acpi_find::Ssdt>(RSDP, &read);
    }
}

/// Corruptions aimed at what the crate trusts, with the table's checksum made valid
/// again so the crate gets past it: each table's `length`, each MADT structure's length
/// byte, the RSDP's length.
#[test]
fn corrupted_lengths_with_valid_checksums_are_survived() {
    let clean = memory();
    // (offset of the byte, offset of the table whose checksum covers it)
    let mut targets: Vec<(usize, usize)> = Vec::new();
    let mut rest = TABLES;
    while !rest.is_empty() {
        let pa = u64::from_le_bytes(rest[..8].try_into().unwrap());
        let len = u32::from_le_bytes(rest[8..12].try_into().unwrap()) as usize;
        let off = (pa - BASE) as usize;
        if &rest[12..16] != b"RSD " {
            targets.extend([(off + 4, off), (off + 5, off)]);
        }
        if &rest[12..16] == b"APIC" {
            targets.extend(
                (off + 44..off + len)
                    .filter(|o| o % 2 == 1)
                    .map(|o| (o, off)),
            );
        }
        rest = &rest[12 + len..];
    }
    let mut madt_cut = 0;
    for (at, table) in targets {
        for value in [0u8, 1, 2, 35, 36, 0x7f, 0xff] {
            let mut mem = clean.clone();
            mem[at] = value;
            let len = u32::from_le_bytes(mem[table + 4..table + 8].try_into().unwrap()) as usize;
            let end = (table + len).min(mem.len());
            mem[table + 9] = 0;
            let sum = mem[table..end].iter().fold(0u8, |a, &b| a.wrapping_add(b));
            mem[table + 9] = sum.wrapping_neg();
            let read = reader(mem);
            if let Ok(info) = parse(RSDP, &read)
                && info.gic.is_none_or(|g| g.gicc.is_none())
            {
                madt_cut += 1;
            }
        }
    }
    assert!(
        madt_cut > 0,
        "some corruption reached the MADT framing check"
    );
}
