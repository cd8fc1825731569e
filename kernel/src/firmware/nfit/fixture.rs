//! Byte builders for tests: ACPI tables, NFIT structures, and the FIT QEMU 10 emits.

use super::*;

/// An ACPI table around `body`: header (QEMU's OEM fields), checksum fixed up.
pub fn table(signature: &[u8; 4], revision: u8, body: &[u8]) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(signature);
    t.extend_from_slice(&((SDT_HEADER_LEN + body.len()) as u32).to_le_bytes());
    t.push(revision);
    t.push(0);
    t.extend_from_slice(b"BOCHS ");
    t.extend_from_slice(b"BXPC    ");
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(b"BXPC");
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(body);
    let sum = t.iter().fold(0u8, |s, b| s.wrapping_add(*b));
    t[9] = sum.wrapping_neg();
    t
}

/// An NFIT table (4 reserved bytes, then the structures).
pub fn nfit_table(structures: &[u8]) -> Vec<u8> {
    let mut body = alloc::vec![0; 4];
    body.extend_from_slice(structures);
    table(b"NFIT", 1, &body)
}

fn header(out: &mut Vec<u8>, ty: u16, len: u16) {
    out.extend_from_slice(&ty.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
}

/// A 56-byte SPA range structure.
pub fn spa(out: &mut Vec<u8>, index: u16, flags: u16, node: u32, guid: Guid, base: u64, len: u64) {
    header(out, TYPE_SPA, 56);
    out.extend_from_slice(&index.to_le_bytes());
    out.extend_from_slice(&flags.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&node.to_le_bytes());
    out.extend_from_slice(&guid.0);
    out.extend_from_slice(&base.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&0x8008u64.to_le_bytes());
}

/// A 48-byte memory-device mapping as QEMU builds it.
pub fn memdev(out: &mut Vec<u8>, handle: u32, spa_index: u16, dcr_index: u16, size: u64) {
    header(out, TYPE_MEMDEV, 48);
    out.extend_from_slice(&handle.to_le_bytes());
    out.extend_from_slice(&(handle as u16).to_le_bytes()); // physical id
    out.extend_from_slice(&0u16.to_le_bytes()); // region id
    out.extend_from_slice(&spa_index.to_le_bytes());
    out.extend_from_slice(&dcr_index.to_le_bytes());
    out.extend_from_slice(&size.to_le_bytes());
    out.extend_from_slice(&0u64.to_le_bytes()); // region offset
    out.extend_from_slice(&0u64.to_le_bytes()); // DPA
    out.extend_from_slice(&0u16.to_le_bytes()); // interleave index
    out.extend_from_slice(&1u16.to_le_bytes()); // interleave ways
    out.extend_from_slice(&0u16.to_le_bytes()); // flags
    out.extend_from_slice(&0u16.to_le_bytes());
}

/// An 80-byte control region as QEMU builds it (vendor 0x8086, device 1, FIC 0x301).
pub fn dcr(out: &mut Vec<u8>, index: u16, serial: u32) {
    let start = out.len();
    header(out, TYPE_CONTROL_REGION, 80);
    out.extend_from_slice(&index.to_le_bytes());
    out.extend_from_slice(&0x8086u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.resize(start + 24, 0);
    out.extend_from_slice(&serial.to_le_bytes());
    out.extend_from_slice(&0x301u16.to_le_bytes());
    out.resize(start + 80, 0);
}

/// The FIT QEMU builds for NVDIMMs `(slot, base, size, node)`: per device an SPA
/// range (index 2(slot+1), flags 0x3), a mapping (handle slot+1) and a control
/// region (index spa+1, serial 0x123456+slot) — 184 bytes each.
pub fn qemu_fit(dimms: &[(u32, u64, u64, u32)]) -> Vec<u8> {
    let mut out = Vec::new();
    for &(slot, base, size, node) in dimms {
        let handle = slot + 1;
        let spa_index = 2 * handle as u16;
        spa(&mut out, spa_index, 0x3, node, PMEM_GUID, base, size);
        memdev(&mut out, handle, spa_index, spa_index + 1, size);
        dcr(&mut out, spa_index + 1, 0x123456 + slot);
    }
    out
}

/// q35 `-m 512M,slots=4,maxmem=8G` with two cold-plugged NVDIMMs whose backends are
/// 256 MiB and 512 MiB with `label-size=128K`: QEMU shows each minus its label and
/// places them first-fit (file backends align to 4 KiB) from the window at 4 GiB.
pub const QEMU_X86_TWO_NVDIMMS: [(u32, u64, u64, u32); 2] = [
    (0, 0x1_0000_0000, 0x0ffe_0000, 0),
    (1, 0x1_0ffe_0000, 0x1ffe_0000, 0),
];

/// The same machine with backends sized `data + label` (256 MiB + 128 KiB and
/// 512 MiB + 128 KiB), so every range is 2 MiB aligned.
pub const QEMU_X86_TWO_NVDIMMS_ALIGNED: [(u32, u64, u64, u32); 2] = [
    (0, 0x1_0000_0000, 0x1000_0000, 0),
    (1, 0x1_1000_0000, 0x2000_0000, 0),
];
