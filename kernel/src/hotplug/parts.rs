//! Sets of frame ranges, kept sorted, disjoint and merged: the parts of a memory block
//! that are online or offline.

use alloc::vec::Vec;
use core::ops::Range;

use crate::mm::addr::Pfn;

/// Whether every frame of `r` is in `set`.
pub fn covers(set: &[Range<Pfn>], r: &Range<Pfn>) -> bool {
    set.iter().any(|s| s.start <= r.start && r.end <= s.end)
}

/// Whether no frame of `r` is in `set`.
pub fn disjoint(set: &[Range<Pfn>], r: &Range<Pfn>) -> bool {
    set.iter().all(|s| s.end <= r.start || r.end <= s.start)
}

/// Adds `r` to `set`, merging touching ranges.
pub fn insert(set: &mut Vec<Range<Pfn>>, r: Range<Pfn>) {
    if r.start >= r.end {
        return;
    }
    set.push(r);
    set.sort_by_key(|s| s.start);
    let mut merged: Vec<Range<Pfn>> = Vec::with_capacity(set.len());
    for s in set.drain(..) {
        match merged.last_mut() {
            Some(last) if s.start <= last.end => last.end = last.end.max(s.end),
            _ => merged.push(s),
        }
    }
    *set = merged;
}

/// Takes `r` out of `set` (frames of `r` not in `set` are ignored).
pub fn remove(set: &mut Vec<Range<Pfn>>, r: &Range<Pfn>) {
    let mut out = Vec::with_capacity(set.len() + 1);
    for s in set.drain(..) {
        for piece in [s.start..s.end.min(r.start), s.start.max(r.end)..s.end] {
            if piece.start < piece.end {
                out.push(piece);
            }
        }
    }
    *set = out;
}

/// The frames of `within` that are not in `set`, ascending.
pub fn complement(within: Range<Pfn>, set: &[Range<Pfn>]) -> Vec<Range<Pfn>> {
    let mut out = alloc::vec![within];
    for s in set {
        remove(&mut out, s);
    }
    out
}

/// Frames in `set`.
pub fn pages(set: &[Range<Pfn>]) -> u64 {
    set.iter().map(|r| r.end.0 - r.start.0).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(a: u64, b: u64) -> Range<Pfn> {
        Pfn(a)..Pfn(b)
    }

    #[test]
    fn insert_merges_and_remove_splits() {
        let mut set = Vec::new();
        insert(&mut set, r(10, 20));
        insert(&mut set, r(30, 40));
        insert(&mut set, r(20, 30));
        assert_eq!(set, [r(10, 40)]);
        remove(&mut set, &r(15, 25));
        assert_eq!(set, [r(10, 15), r(25, 40)]);
        insert(&mut set, r(0, 5));
        assert_eq!(set, [r(0, 5), r(10, 15), r(25, 40)]);
        assert_eq!(pages(&set), 5 + 5 + 15);
        remove(&mut set, &r(0, 100));
        assert!(set.is_empty());
    }

    #[test]
    fn covers_and_disjoint_look_at_every_frame() {
        let set = [r(10, 20), r(30, 40)];
        assert!(covers(&set, &r(12, 20)));
        assert!(!covers(&set, &r(15, 35)), "a hole in the middle");
        assert!(disjoint(&set, &r(20, 30)));
        assert!(!disjoint(&set, &r(19, 21)));
        assert_eq!(complement(r(0, 50), &set), [r(0, 10), r(20, 30), r(40, 50)]);
        assert_eq!(complement(r(12, 18), &set), []);
    }
}
