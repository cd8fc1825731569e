//! Carving `memmap=` ranges out of the boot RAM map, before the buddy allocator sees it
//! (Linux's legacy pmem turns the E820 RAM into PRAM the same way).

use alloc::vec::Vec;
use core::ops::Range;

use crate::boot_info::{MemKind, MemRegion, MemoryMap};

/// The usable spans of `map`, sorted and with touching or overlapping spans merged.
pub fn usable_spans(map: &MemoryMap) -> Vec<Range<u64>> {
    let mut spans: Vec<Range<u64>> = map
        .regions()
        .iter()
        .filter(|r| r.kind == MemKind::Usable)
        .map(|r| r.start..r.end)
        .collect();
    spans.sort_by_key(|s| s.start);
    let mut merged: Vec<Range<u64>> = Vec::with_capacity(spans.len());
    for span in spans {
        match merged.last_mut() {
            Some(last) if span.start <= last.end => last.end = last.end.max(span.end),
            _ => merged.push(span),
        }
    }
    merged
}

/// `map` with every part of a usable span that lies in `carve` turned into
/// [`MemKind::Reserved`]; other spans are copied unchanged, in order, and a split span's
/// pieces stay in address order where it was. A map that would outgrow its capacity
/// counts the excess in its `dropped()` (and logs a warning), as [`MemoryMap::push`] does.
pub fn carve_ram(map: &MemoryMap, carve: &[Range<u64>]) -> MemoryMap {
    let mut sorted: Vec<Range<u64>> = carve.iter().filter(|c| c.start < c.end).cloned().collect();
    sorted.sort_by_key(|c| c.start);
    let mut out = MemoryMap::new();
    for span in map.regions() {
        if span.kind != MemKind::Usable {
            out.push(*span);
            continue;
        }
        let mut pos = span.start;
        for c in &sorted {
            if c.end <= pos || c.start >= span.end {
                continue;
            }
            let (cut_start, cut_end) = (c.start.max(pos), c.end.min(span.end));
            out.push(piece(pos, cut_start, MemKind::Usable));
            out.push(piece(cut_start, cut_end, MemKind::Reserved));
            pos = cut_end;
        }
        out.push(piece(pos, span.end, MemKind::Usable));
    }
    if out.dropped() > 0 {
        log::warn!(
            "region: carving memmap= ranges overflowed the memory map ({} spans lost)",
            out.dropped()
        );
    }
    out
}

const fn piece(start: u64, end: u64, kind: MemKind) -> MemRegion {
    MemRegion { start, end, kind }
}
