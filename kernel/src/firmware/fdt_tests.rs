//! Host tests of the device-tree reading: QEMU `virt`'s own DTB (devices, memory), the
//! `fdt:` record, bad memory nodes refused with their reason, and the header check.

use super::*;

/// `qemu-system-aarch64 -M virt,nvdimm=on,acpi=off,dumpdtb=... -cpu cortex-a57
/// -m 1G,slots=4,maxmem=8G` (QEMU 10.0.2, AAVMF in pflash), `totalsize` trimmed
/// from QEMU's 1 MiB to the blocks' end (see fixtures/README.md).
const QEMU_VIRT: &[u8] = include_bytes!("fixtures/qemu-virt-acpi-off.dtb");

#[test]
fn qemu_virt_devices_match_qemus_memory_map() {
    let info = parse(QEMU_VIRT).expect("parses");
    assert_eq!(info.size, QEMU_VIRT.len());
    assert_eq!(info.model, "linux,dummy-virt");
    // hw/arm/virt.c base_memmap: VIRT_UART 0x09000000, VIRT_HIGH_PCIE_ECAM
    // 0x40_1000_0000 (256 MiB), VIRT_GIC_DIST 0x08000000, RAM at 0x40000000.
    assert_eq!(info.pl011, Some(0x0900_0000));
    assert_eq!(
        info.ecam,
        Some(EcamHost {
            base: 0x40_1000_0000,
            size: 0x1000_0000,
            bus_start: 0,
            bus_end: 255
        })
    );
    assert_eq!(info.gicd, Some(0x0800_0000));
    assert_eq!(info.psci, Some("hvc"));
    assert_eq!(info.memory.items(), &[(0x4000_0000, 1 << 30)]);
    assert_eq!(info.bootargs, None);
}

#[test]
fn record_is_key_value() {
    let text = alloc::format!("{}", parse(QEMU_VIRT).unwrap());
    assert!(text.contains(" uart.pl011=0x9000000 "), "{text}");
    assert!(text.contains(" pci.ecam=0x4010000000 "), "{text}");
    assert!(text.contains(" mem.nodes=1 mem.bytes=1073741824"), "{text}");
    assert!(text.split(' ').all(|w| w.contains('=')), "{text}");
}

/// The fixture with its one memory node's 16-byte `reg` (base 1 GiB, size 1 GiB)
/// replaced by `value` (a multiple of 4 bytes): the structure block is spliced and
/// the header's sizes and offsets follow.
fn with_memory_reg(value: &[u8]) -> alloc::vec::Vec<u8> {
    let old = [0, 0, 0, 0, 0x40, 0, 0, 0, 0, 0, 0, 0, 0x40, 0, 0, 0];
    let mut dtb = QEMU_VIRT.to_vec();
    let at: alloc::vec::Vec<usize> = (8..dtb.len() - 16)
        .filter(|&i| dtb[i..i + 16] == old && be32(&dtb[i - 8..i - 4]) == 16)
        .collect();
    assert_eq!(at.len(), 1, "the memory node's reg is unique");
    let at = at[0];
    assert_eq!(value.len() % 4, 0);
    dtb[at - 8..at - 4].copy_from_slice(&(value.len() as u32).to_be_bytes());
    dtb.splice(at..at + 16, value.iter().copied());
    let delta = value.len() as i64 - 16;
    let strings_follow = be32(&dtb[12..16]) as usize > at;
    // totalsize, size_dt_struct; off_dt_strings when the strings follow the struct.
    for (offset, moves) in [(4, true), (36, true), (12, strings_follow)] {
        if moves {
            let field = i64::from(be32(&dtb[offset..offset + 4])) + delta;
            dtb[offset..offset + 4].copy_from_slice(&(field as u32).to_be_bytes());
        }
    }
    dtb
}

#[test]
fn a_bad_memory_node_is_refused_with_its_reason_and_the_rest_is_read() {
    let twelve = [0, 0, 0, 0, 0x40, 0, 0, 0, 0, 0, 0, 0];
    let zero = [0, 0, 0, 0, 0x40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let mut wraps = [0u8; 16];
    wraps[..8].copy_from_slice(&0xffff_ffff_ffff_f000u64.to_be_bytes());
    wraps[12] = 0x40;
    let cases = [
        (
            "reason=reg-length len=12 entry=16",
            with_memory_reg(&twelve),
        ),
        ("reason=reg-length len=0 entry=16", with_memory_reg(&[])),
        ("reason=zero-size base=0x40000000", with_memory_reg(&zero)),
        (
            "reason=wraps base=0xfffffffffffff000 size=0x40000000",
            with_memory_reg(&wraps),
        ),
    ];
    for (reason, dtb) in cases {
        let info = parse(&dtb).expect("the rest of the tree parses");
        assert_eq!(info.memory.total, 0, "{reason}");
        assert_eq!(info.bad_memory.total, 1, "{reason}");
        let mut details = alloc::string::String::new();
        info.details(&mut details).unwrap();
        let refused: alloc::vec::Vec<&str> = details
            .lines()
            .filter(|l| l.starts_with("firmware.memory.refused "))
            .collect();
        assert_eq!(
            refused,
            [alloc::format!(
                "firmware.memory.refused node=memory@40000000 {reason}"
            )],
        );
        // Everything else is still found.
        assert_eq!(info.pl011, Some(0x0900_0000), "{reason}");
        assert_eq!(info.gicd, Some(0x0800_0000), "{reason}");
        assert!(info.ecam.is_some(), "{reason}");
        let text = alloc::format!("{info}");
        assert!(
            text.contains(" mem.nodes=0 mem.bytes=0 mem.refused=1 "),
            "{text}"
        );
    }
}

#[test]
fn memory_reg_decodes_one_and_two_cell_entries() {
    let mut out = List::default();
    let reg = [0, 0, 0x10, 0, 0, 0, 0x20, 0, 0, 0, 0x40, 0, 0, 0, 0x01, 0];
    assert_eq!(memory_reg(&reg, 1, 1, &mut out), Ok(()));
    assert_eq!(out.items(), &[(0x1000, 0x2000), (0x4000, 0x100)]);
    assert_eq!(
        memory_reg(&reg, 3, 1, &mut out),
        Err(MemoryNodeProblem::CellSizes {
            address: 3,
            size: 1
        })
    );
    assert_eq!(
        memory_reg(&[], 2, 2, &mut out),
        Err(MemoryNodeProblem::Length { len: 0, entry: 16 })
    );
    assert_eq!(out.total, 2, "refused entries add nothing");
}

#[test]
fn header_is_checked_through_the_window() {
    let window = PhysWindow {
        base_pa: 0x4000_0000,
        base_va: QEMU_VIRT.as_ptr() as usize,
        len: QEMU_VIRT.len() as u64,
        mapped: None,
    };
    assert_eq!(
        bytes(0x4000_0000, window).map(<[u8]>::len),
        Ok(QEMU_VIRT.len())
    );
    assert_eq!(bytes(0x4000_0008, window), Err(FdtError::BadHeader));
    assert_eq!(bytes(0x3fff_f000, window), Err(FdtError::BadHeader));
    let mut broken = QEMU_VIRT.to_vec();
    broken[0] = 0;
    assert_eq!(parse(&broken), Err(FdtError::Malformed));
}
