//! Sets of frame ranges, kept sorted, disjoint and merged: the parts of a memory block
//! that are online or offline.

use alloc::vec::Vec;
use core::ops::Range;

use crate::mm::addr::Pfn;
use crate::mm::error::MmError;

/// Whether every frame of `r` is in `set`.
pub fn covers(set: &[Range<Pfn>], r: &Range<Pfn>) -> bool {
    set.iter().any(|s| s.start <= r.start && r.end <= s.end)
}

/// Whether no frame of `r` is in `set`.
pub fn disjoint(set: &[Range<Pfn>], r: &Range<Pfn>) -> bool {
    set.iter().all(|s| s.end <= r.start || r.end <= s.start)
}

/// Adds `r` to `set`, merging touching ranges. Refused (set unchanged) when the heap
/// has no room for one more range.
pub fn insert(set: &mut Vec<Range<Pfn>>, r: Range<Pfn>) -> Result<(), MmError> {
    if r.start >= r.end {
        return Ok(());
    }
    set.try_reserve(1)?;
    let at = set.partition_point(|s| s.start < r.start);
    set.insert(at, r);
    // Merge in place: every range that touches the one before it joins it.
    let mut kept = 0;
    for i in 0..set.len() {
        if kept > 0 && set[i].start <= set[kept - 1].end {
            set[kept - 1].end = set[kept - 1].end.max(set[i].end);
        } else {
            set.swap(kept, i);
            kept += 1;
        }
    }
    set.truncate(kept);
    Ok(())
}

/// Takes `r` out of `set` (frames of `r` not in `set` are ignored). Refused (set
/// unchanged) when the heap has no room for the one range a split adds.
pub fn remove(set: &mut Vec<Range<Pfn>>, r: &Range<Pfn>) -> Result<(), MmError> {
    set.try_reserve(1)?;
    let mut i = 0;
    while i < set.len() {
        let s = set[i].clone();
        let before = s.start..s.end.min(r.start);
        let after = s.start.max(r.end)..s.end;
        match (before.start < before.end, after.start < after.end) {
            (true, true) => {
                set[i] = before;
                set.insert(i + 1, after);
                i += 2;
            }
            (true, false) => {
                set[i] = before;
                i += 1;
            }
            (false, true) => {
                set[i] = after;
                i += 1;
            }
            (false, false) => {
                set.remove(i);
            }
        }
    }
    Ok(())
}

/// The frames of `within` that are not in `set` (ascending and disjoint), ascending,
/// without allocating.
pub fn gaps(within: Range<Pfn>, set: &[Range<Pfn>]) -> impl Iterator<Item = Range<Pfn>> + '_ {
    let mut at = within.start;
    let mut rest = set.iter();
    let mut done = false;
    core::iter::from_fn(move || {
        if done {
            return None;
        }
        for s in rest.by_ref() {
            if s.start >= s.end || s.end <= at {
                continue;
            }
            if s.start >= within.end {
                break;
            }
            let gap = at..s.start.max(at);
            at = s.end.min(within.end);
            if gap.start < gap.end {
                return Some(gap);
            }
        }
        done = true;
        (at < within.end).then_some(at..within.end)
    })
}

/// [`gaps`] collected, or an error when the heap refuses the list.
pub fn complement(within: Range<Pfn>, set: &[Range<Pfn>]) -> Result<Vec<Range<Pfn>>, MmError> {
    crate::heap::fallible::try_collect(gaps(within, set))
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
        insert(&mut set, r(10, 20)).unwrap();
        insert(&mut set, r(30, 40)).unwrap();
        insert(&mut set, r(20, 30)).unwrap();
        assert_eq!(set, [r(10, 40)]);
        remove(&mut set, &r(15, 25)).unwrap();
        assert_eq!(set, [r(10, 15), r(25, 40)]);
        insert(&mut set, r(0, 5)).unwrap();
        assert_eq!(set, [r(0, 5), r(10, 15), r(25, 40)]);
        assert_eq!(pages(&set), 5 + 5 + 15);
        remove(&mut set, &r(0, 100)).unwrap();
        assert!(set.is_empty());
    }

    #[test]
    fn covers_and_disjoint_look_at_every_frame() {
        let set = [r(10, 20), r(30, 40)];
        assert!(covers(&set, &r(12, 20)));
        assert!(!covers(&set, &r(15, 35)), "a hole in the middle");
        assert!(disjoint(&set, &r(20, 30)));
        assert!(!disjoint(&set, &r(19, 21)));
        assert_eq!(
            complement(r(0, 50), &set).unwrap(),
            [r(0, 10), r(20, 30), r(40, 50)]
        );
        assert_eq!(complement(r(12, 18), &set).unwrap(), []);
        assert_eq!(complement(r(15, 35), &set).unwrap(), [r(20, 30)]);
        assert_eq!(complement(r(10, 40), &[r(0, 100)]).unwrap(), []);
    }
}
