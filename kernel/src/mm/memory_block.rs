//! Memory blocks: the unit in which Linux hot-adds, onlines, offlines and removes RAM
//! (`memory_block_size_bytes()`, drivers/base/memory.c; `/sys/devices/system/memory/
//! block_size_bytes`). A block is a power of two of at least one section
//! (`MIN_MEMORY_BLOCK_SIZE`); each arch decides its size (`Arch::memory_block`), and
//! `add_memory` refuses a range that is not whole blocks (mm/memory_hotplug.c
//! `check_hotplug_memory_range`).

use core::fmt;

use super::arch::MmArch;

/// A memory-block size and the rule that chose it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryBlock {
    /// Bytes per block.
    pub bytes: u64,
    /// The rule, for the `mem.block` record (e.g. `section`, `boot-end-aligned`).
    pub rule: &'static str,
}

/// Why an arch's block size was not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unsuitable {
    /// The size the arch asked for.
    pub bytes: u64,
    /// The section size it must be a power-of-two multiple of.
    pub section: u64,
}

impl fmt::Display for Unsuitable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "memory block size {:#x} is not a power of two of at least one section ({:#x})",
            self.bytes, self.section
        )
    }
}

impl MemoryBlock {
    /// One section: Linux's default `memory_block_size_bytes()` (arm64 and every arch
    /// without its own rule).
    pub const fn section(arch: &MmArch) -> Self {
        MemoryBlock {
            bytes: arch.section_bytes(),
            rule: "section",
        }
    }

    /// Checks what Linux's `memory_dev_init` checks (a power of two, at least
    /// `MIN_MEMORY_BLOCK_SIZE`); Linux panics there, the caller falls back to a section.
    pub fn checked(self, arch: &MmArch) -> Result<Self, Unsuitable> {
        let section = arch.section_bytes();
        if self.bytes.is_power_of_two() && self.bytes >= section {
            Ok(self)
        } else {
            Err(Unsuitable {
                bytes: self.bytes,
                section,
            })
        }
    }

    /// Sections per block (Linux's `sections_per_block`).
    pub const fn sections(&self, arch: &MmArch) -> u64 {
        self.bytes / arch.section_bytes()
    }

    /// Whether `[start, end)` is a non-empty run of whole blocks.
    pub const fn whole_blocks(&self, start: u64, end: u64) -> bool {
        start < end && start.is_multiple_of(self.bytes) && end.is_multiple_of(self.bytes)
    }
}

/// The largest power of two in `[min, max]` that divides `end`, or `min` when none does
/// (both powers of two, `min <= max`): the search x86's `probe_memory_block_size` makes
/// over the end of boot memory.
pub const fn largest_dividing(end: u64, max: u64, min: u64) -> u64 {
    let mut size = max;
    while size > min {
        if end.is_multiple_of(size) {
            return size;
        }
        size >>= 1;
    }
    min
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    #[test]
    fn the_search_stops_at_the_first_divisor_from_the_top() {
        assert_eq!(largest_dividing(64 * GIB, 2 * GIB, 128 * MIB), 2 * GIB);
        assert_eq!(largest_dividing(65 * GIB, 2 * GIB, 128 * MIB), GIB);
        assert_eq!(
            largest_dividing(64 * GIB + 384 * MIB, 2 * GIB, 128 * MIB),
            128 * MIB
        );
        assert_eq!(
            largest_dividing(64 * GIB + 3 * MIB, 2 * GIB, 128 * MIB),
            128 * MIB,
            "nothing divides: the minimum"
        );
        assert_eq!(largest_dividing(0, 2 * GIB, 128 * MIB), 2 * GIB);
    }

    #[test]
    fn a_block_is_a_power_of_two_of_at_least_one_section() {
        for arch in &crate::mm::sim::models::ALL {
            let section = MemoryBlock::section(arch);
            assert_eq!(section.checked(arch), Ok(section));
            assert_eq!(section.sections(arch), 1);
            let big = MemoryBlock {
                bytes: 2 * GIB,
                rule: "test",
            };
            assert_eq!(
                big.checked(arch).map(|b| b.sections(arch)),
                Ok(2 * GIB / arch.section_bytes())
            );
            for bytes in [arch.section_bytes() / 2, 3 * arch.section_bytes(), 0] {
                let bad = MemoryBlock {
                    bytes,
                    rule: "test",
                };
                assert!(bad.checked(arch).is_err(), "{bytes:#x} on {}", arch.name);
            }
        }
    }

    #[test]
    fn whole_blocks_are_aligned_at_both_ends_and_not_empty() {
        let b = MemoryBlock {
            bytes: 128 * MIB,
            rule: "test",
        };
        assert!(b.whole_blocks(4 * GIB, 4 * GIB + 256 * MIB));
        assert!(!b.whole_blocks(4 * GIB, 4 * GIB + 130 * MIB));
        assert!(!b.whole_blocks(4 * GIB + 2 * MIB, 4 * GIB + 130 * MIB));
        assert!(!b.whole_blocks(4 * GIB, 4 * GIB));
    }
}
