//! The boot memory map of a direct (`-kernel` Image) boot, from the device tree alone:
//! RAM from the `memory` nodes (decoded by `kernel::firmware::fdt`, bad nodes refused
//! there), minus what is in use when the kernel starts: the kernel image, the DTB itself
//! (kept, as the kernel reads it again later), the `/memreserve/` block and the
//! `/reserved-memory` children. Pure data, tested on the host.

use fdt::Fdt;
use kernel::boot_info::{MemKind, MemRegion, MemoryMap};
use kernel::firmware::fdt as kfdt;

/// Most carve-outs kept (QEMU's `virt` tree has none besides the kernel and the DTB).
const MAX_HOLES: usize = 16;

/// Why no memory map came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DtbMemoryError {
    /// The blob is not a device tree the parsers accept.
    Malformed,
    /// No usable `memory` node.
    NoMemory,
}

/// The memory map: every RAM range of the tree, split around `kernel` (as
/// [`MemKind::Kernel`]), the DTB at `dtb` (as [`MemKind::LoaderReclaimable`]: RAM the
/// allocator leaves alone and the HHDM maps) and the tree's reservations (as
/// [`MemKind::Reserved`]).
pub fn memory_map(blob: &[u8], dtb: u64, kernel: (u64, u64)) -> Result<MemoryMap, DtbMemoryError> {
    let info = kfdt::parse(blob).map_err(|_| DtbMemoryError::Malformed)?;
    let tree = Fdt::new(blob).map_err(|_| DtbMemoryError::Malformed)?;
    let mut holes = [(0u64, 0u64, MemKind::Reserved); MAX_HOLES];
    let mut n = 0;
    let mut hole = |start: u64, end: u64, kind: MemKind| {
        if start < end && n < MAX_HOLES {
            holes[n] = (start, end, kind);
            n += 1;
        }
    };
    hole(kernel.0, kernel.1, MemKind::Kernel);
    hole(dtb, dtb + info.size as u64, MemKind::LoaderReclaimable);
    for r in tree.memory_reservations() {
        let start = r.address() as u64;
        hole(
            start,
            start.saturating_add(r.size() as u64),
            MemKind::Reserved,
        );
    }
    let reserved = tree.find_node("/reserved-memory");
    for child in reserved.into_iter().flat_map(|n| n.children()) {
        for r in child.reg().into_iter().flatten() {
            let start = r.starting_address as u64;
            let size = r.size.unwrap_or(0) as u64;
            hole(start, start.saturating_add(size), MemKind::Reserved);
        }
    }
    let holes = &mut holes[..n];
    holes.sort_unstable_by_key(|h| h.0);
    let mut ram: [(u64, u64); kfdt_max()] = [(0, 0); kfdt_max()];
    let mut m = 0;
    for &(base, size) in info.memory.items() {
        ram[m] = (base, base + size);
        m += 1;
    }
    let ram = &mut ram[..m];
    if ram.is_empty() {
        return Err(DtbMemoryError::NoMemory);
    }
    ram.sort_unstable();
    let mut map = MemoryMap::new();
    for &(start, end) in ram.iter() {
        carve(&mut map, start, end, holes);
    }
    Ok(map)
}

/// Capacity of the kernel's memory-node list.
const fn kfdt_max() -> usize {
    kernel::firmware::acpi::MAX_ENTRIES
}

/// Pushes `[start, end)` as usable RAM with the sorted `holes` cut out in their kinds
/// (a hole overlapping an earlier one keeps only its new part).
fn carve(map: &mut MemoryMap, start: u64, end: u64, holes: &[(u64, u64, MemKind)]) {
    let mut at = start;
    for &(hs, he, kind) in holes {
        let (hs, he) = (hs.max(at), he.min(end));
        if hs >= he {
            continue;
        }
        map.push(MemRegion {
            start: at,
            end: hs,
            kind: MemKind::Usable,
        });
        map.push(MemRegion {
            start: hs,
            end: he,
            kind,
        });
        at = he;
    }
    map.push(MemRegion {
        start: at,
        end,
        kind: MemKind::Usable,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `-M virt,acpi=off -m 1G` as QEMU 10.0 generates it (shared with the kernel's FDT
    /// tests).
    const QEMU_VIRT: &[u8] =
        include_bytes!("../../../kernel/src/firmware/fixtures/qemu-virt-acpi-off.dtb");

    fn regions(map: &MemoryMap) -> Vec<(u64, u64, MemKind)> {
        map.regions()
            .iter()
            .map(|r| (r.start, r.end, r.kind))
            .collect()
    }

    #[test]
    fn ram_of_the_tree_minus_kernel_and_dtb() {
        let size = kfdt::parse(QEMU_VIRT).unwrap().size as u64;
        let kernel = (0x4020_0000, 0x4092_0000);
        let map = memory_map(QEMU_VIRT, 0x4800_0000, kernel).unwrap();
        assert_eq!(
            regions(&map),
            [
                (0x4000_0000, 0x4020_0000, MemKind::Usable),
                (0x4020_0000, 0x4092_0000, MemKind::Kernel),
                (0x4092_0000, 0x4800_0000, MemKind::Usable),
                (0x4800_0000, 0x4800_0000 + size, MemKind::LoaderReclaimable),
                (0x4800_0000 + size, 0x8000_0000, MemKind::Usable),
            ]
        );
        assert_eq!(map.ram_bytes(), 1 << 30, "the DTB and the kernel are RAM");
        assert_eq!(map.bytes_of(MemKind::Usable), (1 << 30) - size - 0x72_0000);
    }

    #[test]
    fn holes_at_the_edges_and_overlapping_are_cut_once() {
        let mut map = MemoryMap::new();
        let holes = [
            (0x1000, 0x3000, MemKind::Kernel),
            (0x2000, 0x5000, MemKind::Reserved),
            (0x9000, 0xb000, MemKind::LoaderReclaimable),
        ];
        carve(&mut map, 0x1000, 0xa000, &holes);
        assert_eq!(
            regions(&map),
            [
                (0x1000, 0x3000, MemKind::Kernel),
                (0x3000, 0x5000, MemKind::Reserved),
                (0x5000, 0x9000, MemKind::Usable),
                (0x9000, 0xa000, MemKind::LoaderReclaimable),
            ]
        );
    }

    #[test]
    fn garbage_is_refused() {
        assert_eq!(
            memory_map(&[0u8; 64], 0, (0, 0)).unwrap_err(),
            DtbMemoryError::Malformed
        );
    }
}
