//! The units a virtio-mem device has added (or is adding), by start address: a vector
//! kept sorted, so a new unit is recorded with a fallible allocation (a map's node
//! allocation could only end in `handle_alloc_error`). Lookups are binary searches; a
//! device holds at most a few thousand units.

use alloc::vec::Vec;
use core::ops::Index;

use super::plan::Unit;
use crate::mm::error::MmError;

/// Units by start address, ascending.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Units {
    list: Vec<(u64, Unit)>,
}

type Pair<'a> = (&'a u64, &'a Unit);
type PairMut<'a> = (&'a u64, &'a mut Unit);

impl Units {
    /// No unit.
    pub const fn new() -> Self {
        Units { list: Vec::new() }
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

    /// The unit at `start`, mutable.
    pub fn get_mut(&mut self, start: &u64) -> Option<&mut Unit> {
        self.find(*start).ok().map(|i| &mut self.list[i].1)
    }

    /// Records `unit` at `start` (replacing one there), or an error with nothing changed
    /// when the heap has no room.
    pub fn try_insert(&mut self, start: u64, unit: Unit) -> Result<(), MmError> {
        match self.find(start) {
            Ok(i) => self.list[i].1 = unit,
            Err(i) => {
                self.list.try_reserve(1)?;
                self.list.insert(i, (start, unit));
            }
        }
        Ok(())
    }

    /// Forgets the unit at `start`.
    pub fn remove(&mut self, start: &u64) -> Option<Unit> {
        self.find(*start).ok().map(|i| self.list.remove(i).1)
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

    /// Units, ascending by start, mutable.
    pub fn iter_mut(&mut self) -> impl DoubleEndedIterator<Item = PairMut<'_>> {
        self.list.iter_mut().map(pair_mut)
    }

    /// Start addresses, ascending.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &u64> {
        self.list.iter().map(|(s, _)| s)
    }

    /// Units, ascending by start.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &Unit> {
        self.list.iter().map(|(_, u)| u)
    }

    /// Units, ascending by start, mutable.
    pub fn values_mut(&mut self) -> impl DoubleEndedIterator<Item = &mut Unit> {
        self.list.iter_mut().map(|(_, u)| u)
    }
}

fn pair(entry: &(u64, Unit)) -> Pair<'_> {
    (&entry.0, &entry.1)
}

fn pair_mut(entry: &mut (u64, Unit)) -> PairMut<'_> {
    (&entry.0, &mut entry.1)
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

impl<'a> IntoIterator for &'a mut Units {
    type Item = PairMut<'a>;
    type IntoIter = core::iter::Map<
        core::slice::IterMut<'a, (u64, Unit)>,
        fn(&'a mut (u64, Unit)) -> PairMut<'a>,
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.list
            .iter_mut()
            .map(pair_mut as fn(&'a mut (u64, Unit)) -> PairMut<'a>)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::virtio::mem::plan::{Step, UnitState};

    fn unit(steps: usize) -> Unit {
        Unit {
            state: UnitState::Live,
            steps: alloc::vec![Step::Online; steps],
        }
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
            (units.len(), units[&0x2000].steps.len()),
            (3, 4),
            "replaced"
        );
        assert_eq!(units.remove(&0x1000).map(|u| u.steps.len()), Some(1));
        assert_eq!(units.iter().next_back().map(|(s, _)| *s), Some(0x3000));
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
