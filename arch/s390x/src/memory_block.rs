//! The s390x memory-block size, as Linux's `memory_block_size_bytes()` (arch/s390/mm/
//! init.c) decides it: at least the storage increment the SCLP reports (Read SCP Info
//! `rnsize`, or `rnsize2` when that is 0, in MiB: `sclp.rzm` in drivers/s390/char/
//! sclp_early.c), and never less than one 256 MiB section (`MIN_MEMORY_BLOCK_SIZE`),
//! so a memory block never splits a storage increment.

use kernel::mm::memory_block::MemoryBlock;

/// The block size for storage increments of `rzm` bytes.
pub fn size(rzm: u64) -> MemoryBlock {
    let section = crate::vmemmap::MM.section_bytes();
    if rzm > section {
        MemoryBlock {
            bytes: rzm,
            rule: "sclp-rzm",
        }
    } else {
        MemoryBlock::section(&crate::vmemmap::MM)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn the_block_is_the_increment_or_a_section_whichever_is_larger() {
        // QEMU picks the smallest increment (1 MiB up) that keeps RAM within 1020 of them.
        assert_eq!(size(MIB).bytes, 256 * MIB);
        assert_eq!(size(MIB).rule, "section");
        assert_eq!(size(8 * MIB).bytes, 256 * MIB);
        assert_eq!(size(256 * MIB).bytes, 256 * MIB);
        assert_eq!(size(512 * MIB).bytes, 512 * MIB);
        assert_eq!(size(512 * MIB).rule, "sclp-rzm");
    }
}
