//! Per-section subsection bitmaps and the chunking of a frame range into sections.

use crate::mm::addr::Pfn;
use crate::mm::arch::MmArch;
use crate::mm::error::MmError;

/// One section's part of a range: `nr_pages` frames from `first`, all in `section`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chunk {
    /// Section number.
    pub section: u64,
    /// First frame.
    pub first: Pfn,
    /// Number of frames.
    pub nr_pages: u64,
}

/// The subsection bits a chunk covers (bit i = subsection i of the section): every
/// subsection holding one of its frames, whatever its alignment.
pub fn subsection_mask(arch: &MmArch, chunk: &Chunk) -> u128 {
    if chunk.nr_pages == 0 {
        return 0;
    }
    let per_sub = arch.pages_per_subsection();
    let offset = chunk.first.0 % arch.pages_per_section();
    let first = offset / per_sub;
    let count = (offset + chunk.nr_pages - 1) / per_sub - first + 1;
    let ones = if count >= 128 {
        u128::MAX
    } else {
        (1u128 << count) - 1
    };
    ones << first
}

/// `check_pfn_span`: start and size must be subsection multiples, the range non-empty
/// and inside the memory model.
pub fn check_span(arch: &MmArch, first: Pfn, end: Pfn) -> Result<(), MmError> {
    let per_sub = arch.pages_per_subsection();
    for (what, pfn) in [("start pfn", first.0), ("end pfn", end.0)] {
        if pfn % per_sub != 0 {
            return Err(MmError::Misaligned {
                what,
                value: pfn,
                align: per_sub,
            });
        }
    }
    if end <= first {
        return Err(MmError::Empty);
    }
    if end.0 > arch.max_pfn() {
        return Err(MmError::OutOfRange {
            what: "end pfn",
            value: end.0,
            limit: arch.max_pfn(),
        });
    }
    Ok(())
}

/// Splits `[first, end)` at section boundaries, ascending.
pub fn chunks(
    arch: &MmArch,
    first: Pfn,
    end: Pfn,
) -> impl DoubleEndedIterator<Item = Chunk> + Clone + use<> {
    let per_section = arch.pages_per_section();
    let shift = arch.section_shift - crate::mm::addr::PAGE_SHIFT;
    let first_section = first.0 >> shift;
    let last_section = (end.0 - 1) >> shift;
    (first_section..=last_section).map(move |section| {
        let section_start = section * per_section;
        let start = first.0.max(section_start);
        let stop = end.0.min(section_start + per_section);
        Chunk {
            section,
            first: Pfn(start),
            nr_pages: stop - start,
        }
    })
}

/// Number of sections `[range.start, range.end)` touches (0 for an empty range).
pub fn section_span(arch: &MmArch, range: &core::ops::Range<Pfn>) -> usize {
    if range.end <= range.start {
        return 0;
    }
    let shift = arch.section_shift - crate::mm::addr::PAGE_SHIFT;
    ((((range.end.0 - 1) >> shift) - (range.start.0 >> shift)) + 1) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_sets_every_subsection_it_touches_whatever_its_alignment() {
        let arch = &crate::mm::sim::models::SECTIONS_128M_LEAF_2M;
        let chunk = |first: u64, nr_pages: u64| Chunk {
            section: 0,
            first: Pfn(first),
            nr_pages,
        };
        assert_eq!(subsection_mask(arch, &chunk(0, 512)), 0b1);
        assert_eq!(subsection_mask(arch, &chunk(0, 1536)), 0b111);
        assert_eq!(subsection_mask(arch, &chunk(511, 2)), 0b11, "straddles two");
        assert_eq!(subsection_mask(arch, &chunk(600, 1)), 0b10);
        assert_eq!(subsection_mask(arch, &chunk(1000, 600)), 0b1110);
        assert_eq!(subsection_mask(arch, &chunk(0, 0)), 0);
        assert_eq!(subsection_mask(arch, &chunk(0, 32768)), u64::MAX.into());
    }
}
