//! The aarch64 memory-block size: arm64 does not override `memory_block_size_bytes()`,
//! so Linux uses the generic one (drivers/base/memory.c): `MIN_MEMORY_BLOCK_SIZE`, one
//! section, 128 MiB with 4 KiB pages (`SECTION_SIZE_BITS` 27, arch/arm64/include/asm/
//! sparsemem.h).

use kernel::mm::memory_block::MemoryBlock;

/// The block size: one section.
pub const fn size() -> MemoryBlock {
    MemoryBlock::section(&crate::vmemmap::MM)
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_section_of_128_mib() {
        assert_eq!(super::size().bytes, 128 << 20);
        assert_eq!(super::size().rule, "section");
    }
}
