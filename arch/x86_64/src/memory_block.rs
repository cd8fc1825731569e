//! The x86_64 memory-block size, as Linux's `probe_memory_block_size()`
//! (arch/x86/mm/init_64.c, v6.14+) decides it when neither `memory_block_size=` (UV
//! systems) nor a CXL window's advice (`memory_block_advised_max_size()`) set it:
//!
//! 1. boot memory ending below 64 GiB (`MEM_SIZE_FOR_LARGE_BLOCK`): one section, 128 MiB;
//! 2. bare metal (no CPUID.1:ECX.HYPERVISOR): 2 GiB (`MAX_BLOCK_SIZE`);
//! 3. in a VM: the largest power of two from 2 GiB down to 128 MiB that divides the end
//!    of boot memory, so a DIMM placed right after boot RAM starts on a block boundary.
//!
//! "The end of boot memory" is `max_pfn << PAGE_SHIFT`: the end of the highest RAM span
//! of the firmware map (`e820__end_of_ram_pfn()`; EFI conventional, loader and
//! boot-services memory are E820 RAM, ACPI and reserved spans are not).

use kernel::boot_info::{MemKind, MemoryMap};
use kernel::mm::addr::PAGE_SIZE;
use kernel::mm::memory_block::{MemoryBlock, largest_dividing};

/// `MAX_BLOCK_SIZE`.
const MAX_BLOCK_BYTES: u64 = 2 << 30;
/// `MEM_SIZE_FOR_LARGE_BLOCK`.
const LARGE_BLOCK_FROM: u64 = 64 << 30;

/// `max_pfn << PAGE_SHIFT`: the end of the highest span the E820 map would call RAM.
pub fn boot_mem_end(map: &MemoryMap) -> u64 {
    map.regions()
        .iter()
        .filter(|r| {
            matches!(
                r.kind,
                MemKind::Usable | MemKind::LoaderReclaimable | MemKind::Kernel
            )
        })
        .map(|r| r.end / PAGE_SIZE * PAGE_SIZE)
        .max()
        .unwrap_or(0)
}

/// The block size for boot memory ending at `boot_mem_end`, in a VM or not.
pub fn size(boot_mem_end: u64, hypervisor: bool) -> MemoryBlock {
    let min = crate::vmemmap::MM.section_bytes();
    if boot_mem_end < LARGE_BLOCK_FROM {
        return MemoryBlock {
            bytes: min,
            rule: "below-64g",
        };
    }
    if !hypervisor {
        return MemoryBlock {
            bytes: MAX_BLOCK_BYTES,
            rule: "bare-metal",
        };
    }
    MemoryBlock {
        bytes: largest_dividing(boot_mem_end, MAX_BLOCK_BYTES, min),
        rule: "boot-end-aligned",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kernel::boot_info::MemRegion;

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    #[test]
    fn small_machines_get_one_section_whatever_their_end() {
        for end in [512 * MIB, 3 * GIB + 2 * MIB, 64 * GIB - 4096] {
            for hv in [false, true] {
                assert_eq!(size(end, hv).bytes, 128 * MIB, "{end:#x} hv={hv}");
            }
        }
    }

    #[test]
    fn large_machines_get_2g_on_bare_metal_and_the_end_alignment_in_a_vm() {
        assert_eq!(size(64 * GIB, false).bytes, 2 * GIB);
        assert_eq!(size(65 * GIB, false).bytes, 2 * GIB, "alignment ignored");
        assert_eq!(size(64 * GIB, true).bytes, 2 * GIB);
        assert_eq!(size(65 * GIB, true).bytes, GIB);
        assert_eq!(size(64 * GIB + 512 * MIB, true).bytes, 512 * MIB);
        assert_eq!(size(64 * GIB + 384 * MIB, true).bytes, 128 * MIB);
        assert_eq!(size(64 * GIB + 2 * MIB, true).rule, "boot-end-aligned");
        assert_eq!(size(64 * GIB + 2 * MIB, true).bytes, 128 * MIB);
    }

    #[test]
    fn boot_memory_ends_at_the_highest_ram_span() {
        let mut map = MemoryMap::new();
        for (start, end, kind) in [
            (0, 0x9f000, MemKind::Usable),
            (0x100000, 0x7f00_0000, MemKind::Usable),
            (0x7f00_0000, 0x8000_0000, MemKind::AcpiReclaimable),
            (0x1_0000_0000, 0x10_8000_0800, MemKind::LoaderReclaimable),
            (0x20_0000_0000, 0x20_1000_0000, MemKind::Reserved),
        ] {
            map.push(MemRegion { start, end, kind });
        }
        assert_eq!(boot_mem_end(&map), 0x10_8000_0000, "page-rounded down");
        assert_eq!(size(boot_mem_end(&map), true).bytes, 2 * GIB);
    }
}
