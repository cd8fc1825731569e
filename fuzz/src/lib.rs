//! Shared by the fuzz targets: a byte reader that turns libFuzzer's input into numbers.
//!
//! The structured targets (`region_carve`, `mm_sequence`) decode their input with
//! [`Bytes`] rather than a derive, so the committed seeds are short field-by-field
//! descriptions (`fuzz/seeds/*/NAME.seed`, assembled by `cargo xtask fuzz`) of the layout
//! documented at the top of each target. A reader that runs out
//! yields zeros, so every input decodes to something.

/// A cursor over the fuzz input.
#[derive(Clone, Debug)]
pub struct Bytes<'a> {
    rest: &'a [u8],
}

impl<'a> Bytes<'a> {
    /// Reads from the start of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Bytes { rest: data }
    }

    /// Whether everything has been read.
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// What is left, unread.
    pub fn rest(&self) -> &'a [u8] {
        self.rest
    }

    /// The next byte (0 past the end).
    pub fn u8(&mut self) -> u8 {
        match self.rest.split_first() {
            Some((b, tail)) => {
                self.rest = tail;
                *b
            }
            None => 0,
        }
    }

    /// The next little-endian `u16` (missing bytes read as 0).
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    /// The next little-endian `u32` (missing bytes read as 0).
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// The next little-endian `u64` (missing bytes read as 0).
    pub fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | u64::from(self.u32()) << 32
    }

    /// The next byte as a bool (its low bit).
    pub fn bool(&mut self) -> bool {
        self.u8() & 1 != 0
    }
}

/// Whether two half-open ranges share a byte.
pub fn overlaps(a: &core::ops::Range<u64>, b: &core::ops::Range<u64>) -> bool {
    a.start < b.end && b.start < a.end
}

/// Sorts and merges `ranges` (dropping empty ones) into disjoint, non-touching spans.
pub fn merge(mut ranges: Vec<core::ops::Range<u64>>) -> Vec<core::ops::Range<u64>> {
    ranges.retain(|r| r.start < r.end);
    ranges.sort_by_key(|r| (r.start, r.end));
    let mut out: Vec<core::ops::Range<u64>> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match out.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

/// `a` minus `b`, both merged (see [`merge`]); the result is merged too.
pub fn subtract(
    a: &[core::ops::Range<u64>],
    b: &[core::ops::Range<u64>],
) -> Vec<core::ops::Range<u64>> {
    let mut out = Vec::new();
    for span in a {
        let mut pos = span.start;
        for cut in b.iter().filter(|c| overlaps(c, span)) {
            if cut.start > pos {
                out.push(pos..cut.start);
            }
            pos = pos.max(cut.end);
        }
        if pos < span.end {
            out.push(pos..span.end);
        }
    }
    merge(out)
}
