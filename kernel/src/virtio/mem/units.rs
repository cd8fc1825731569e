//! The units a virtio-mem device has added (or is adding), by start address: a vector
//! kept sorted, so a new unit is recorded with a fallible allocation (a map's node
//! allocation could only end in `handle_alloc_error`). Lookups are binary searches; a
//! device holds at most a few thousand units (2048 memory blocks at 256 GiB), so nothing
//! the driver does per plug or unplug walks them all step by step: the plugged total is
//! kept as units change ([`Units::plugged`]), each unit counts its steps by state, and
//! the lowest unused unit is found by a binary search ([`Units::first_free`]).

use alloc::vec::Vec;
use core::ops::Index;

use super::plan::Unit;
use crate::mm::error::MmError;

/// Units by start address, ascending.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Units {
    list: Vec<(u64, Unit)>,
    /// Plugged steps over every unit.
    plugged: usize,
}

type Pair<'a> = (&'a u64, &'a Unit);

impl Units {
    /// No unit.
    pub const fn new() -> Self {
        Units {
            list: Vec::new(),
            plugged: 0,
        }
    }

    /// Plugged steps over every unit (kept as units change: O(1)).
    pub fn plugged(&self) -> usize {
        self.plugged
    }

    /// Number of units.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether there is no unit.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    fn find(&self, start: u64) -> Result<usize, usize> {
        self.list.binary_search_by_key(&start, |(s, _)| *s)
    }

    /// Whether a unit starts at `start`.
    pub fn contains_key(&self, start: &u64) -> bool {
        self.find(*start).is_ok()
    }

    /// The unit at `start`.
    pub fn get(&self, start: &u64) -> Option<&Unit> {
        self.find(*start).ok().map(|i| &self.list[i].1)
    }

    /// Runs `change` on the unit at `start` (keeping the plugged total); `None` if there
    /// is no such unit.
    pub fn update<R>(&mut self, start: u64, change: impl FnOnce(&mut Unit) -> R) -> Option<R> {
        let i = self.find(start).ok()?;
        let unit = &mut self.list[i].1;
        let before = unit.plugged();
        let result = change(unit);
        self.plugged = self.plugged - before + unit.plugged();
        Some(result)
    }

    /// Runs `change` on every unit, ascending by start (keeping the plugged total).
    pub fn update_all(&mut self, mut change: impl FnMut(u64, &mut Unit)) {
        for (start, unit) in &mut self.list {
            let before = unit.plugged();
            change(*start, unit);
            self.plugged = self.plugged - before + unit.plugged();
        }
    }

    /// The lowest of `first`, `first + unit`, `first + 2 * unit`, ... that has no unit,
    /// by a binary search. Every unit starts at one of these addresses, so `start ==
    /// first + index * unit` holds exactly for the units below the first gap.
    pub fn first_free(&self, first: u64, unit: u64) -> u64 {
        debug_assert!(
            self.list
                .iter()
                .all(|(s, _)| *s >= first && (s - first).is_multiple_of(unit))
        );
        let (mut low, mut high) = (0, self.list.len());
        while low < high {
            let mid = low + (high - low) / 2;
            if self.list[mid].0 == first + mid as u64 * unit {
                low = mid + 1;
            } else {
                high = mid;
            }
        }
        first + low as u64 * unit
    }

    /// Records `unit` at `start` (replacing one there), or an error with nothing changed
    /// when the heap has no room.
    pub fn try_insert(&mut self, start: u64, unit: Unit) -> Result<(), MmError> {
        match self.find(start) {
            Ok(i) => {
                self.plugged = self.plugged - self.list[i].1.plugged() + unit.plugged();
                self.list[i].1 = unit;
            }
            Err(i) => {
                self.list.try_reserve(1)?;
                self.plugged += unit.plugged();
                self.list.insert(i, (start, unit));
            }
        }
        Ok(())
    }

    /// Forgets the unit at `start`.
    pub fn remove(&mut self, start: &u64) -> Option<Unit> {
        let i = self.find(*start).ok()?;
        let (_, unit) = self.list.remove(i);
        self.plugged -= unit.plugged();
        Some(unit)
    }

    /// The unit with the highest start at or below `addr`.
    pub fn at_or_below(&self, addr: u64) -> Option<Pair<'_>> {
        let i = self.list.partition_point(|(s, _)| *s <= addr);
        i.checked_sub(1).map(|i| (&self.list[i].0, &self.list[i].1))
    }

    /// Units, ascending by start.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = Pair<'_>> {
        self.list.iter().map(pair)
    }

    /// Start addresses, ascending.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &u64> {
        self.list.iter().map(|(s, _)| s)
    }

    /// Units, ascending by start.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &Unit> {
        self.list.iter().map(|(_, u)| u)
    }
}

fn pair(entry: &(u64, Unit)) -> Pair<'_> {
    (&entry.0, &entry.1)
}

impl Index<&u64> for Units {
    type Output = Unit;

    fn index(&self, start: &u64) -> &Unit {
        self.get(start).expect("no unit at this start")
    }
}

impl<'a> IntoIterator for &'a Units {
    type Item = Pair<'a>;
    type IntoIter =
        core::iter::Map<core::slice::Iter<'a, (u64, Unit)>, fn(&'a (u64, Unit)) -> Pair<'a>>;

    fn into_iter(self) -> Self::IntoIter {
        self.list
            .iter()
            .map(pair as fn(&'a (u64, Unit)) -> Pair<'a>)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::virtio::mem::plan::{Step, UnitState};

    fn unit(steps: usize) -> Unit {
        Unit::new(UnitState::Live, alloc::vec![Step::Online; steps])
    }

    #[test]
    fn kept_sorted_and_found_by_start() {
        let mut units = Units::new();
        for start in [0x3000, 0x1000, 0x2000] {
            units.try_insert(start, unit(1)).unwrap();
        }
        assert_eq!(
            units.keys().copied().collect::<Vec<_>>(),
            [0x1000, 0x2000, 0x3000]
        );
        assert!(units.contains_key(&0x2000) && !units.contains_key(&0x2800));
        assert_eq!(units.at_or_below(0x2fff).map(|(s, _)| *s), Some(0x2000));
        assert_eq!(units.at_or_below(0xfff), None);
        units.try_insert(0x2000, unit(4)).unwrap();
        assert_eq!(
            (units.len(), units[&0x2000].steps().len()),
            (3, 4),
            "replaced"
        );
        assert_eq!(units.remove(&0x1000).map(|u| u.steps().len()), Some(1));
        assert_eq!(units.iter().next_back().map(|(s, _)| *s), Some(0x3000));
    }

    #[test]
    fn the_lowest_unused_unit_and_the_plugged_total() {
        let mut units = Units::new();
        assert_eq!(units.first_free(0x1000, 0x1000), 0x1000);
        for start in [0x1000, 0x2000, 0x4000] {
            units.try_insert(start, unit(2)).unwrap();
        }
        assert_eq!(units.first_free(0x1000, 0x1000), 0x3000);
        units.try_insert(0x3000, unit(2)).unwrap();
        assert_eq!(units.first_free(0x1000, 0x1000), 0x5000);
        assert_eq!(units.plugged(), 8);
        units.update(0x3000, |u| u.set_one(0, Step::Unplugged));
        assert_eq!(units.plugged(), 7);
        units.try_insert(0x3000, unit(4)).unwrap();
        assert_eq!(units.plugged(), 10, "replaced");
        units.remove(&0x1000);
        assert_eq!(units.first_free(0x1000, 0x1000), 0x1000);
        assert_eq!(units.plugged(), 8);
    }

    #[test]
    fn a_refused_heap_allocation_changes_nothing() {
        let mut units = Units::new();
        units.try_insert(0x1000, unit(1)).unwrap();
        units.list.shrink_to_fit();
        let before = units.clone();
        let new = unit(0);
        crate::heap::with_faults(|f| f.arm(1, crate::mm::inject::FaultMode::Always));
        let refused = units.try_insert(0x800, new);
        crate::heap::with_faults(|f| f.clear());
        assert_eq!(
            refused,
            Err(MmError::NoMemory(crate::mm::error::AllocKind::Heap))
        );
        assert_eq!(units, before);
    }
}
