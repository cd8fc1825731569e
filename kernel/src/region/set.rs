//! [`RegionSet`]: the region list, the boot RAM it is checked against, and every add,
//! refusal and ignored item in order. [`RegionSet::add_checked`] is the one way in; the
//! rules it applies are in `rules.rs`.

use alloc::vec::Vec;
use core::ops::Range;

use super::{
    Outcome, OutcomeRecord, Reason, Region, RegionError, RegionKind, RegionRequest, Source,
    carve_ram, usable_spans,
};
use crate::boot_info::MemoryMap;
use crate::firmware::memmap_param::MemmapError;
use crate::mm::VmemAltmap;
use crate::mm::arch::MmArch;

/// The region list and the facts it is checked against.
#[derive(Clone, Debug)]
pub struct RegionSet {
    pub(super) arch: MmArch,
    pub(super) usable: Vec<Range<u64>>,
    pub(super) ram: Vec<Range<u64>>,
    pub(super) regions: Vec<Region>,
    pub(super) outcomes: Vec<Outcome>,
}

impl RegionSet {
    /// An empty set checked against `ram`, the boot memory map *before* carving.
    pub fn new(arch: MmArch, ram: &MemoryMap) -> Self {
        Self {
            arch,
            usable: usable_spans(ram),
            ram: ram
                .regions()
                .iter()
                .filter(|r| r.kind.is_ram())
                .map(|r| r.start..r.end)
                .collect(),
            regions: Vec::new(),
            outcomes: Vec::new(),
        }
    }

    /// The arch the layouts are computed for.
    pub const fn arch(&self) -> &MmArch {
        &self.arch
    }

    /// Accepted regions in id order.
    pub fn regions(&self) -> &[Region] {
        &self.regions
    }

    /// The region with this id.
    pub fn get(&self, id: u32) -> Option<&Region> {
        self.regions.get(usize::try_from(id).ok()?)
    }

    /// Device regions (those with an altmap), in id order.
    pub fn devices(&self) -> impl Iterator<Item = &Region> {
        self.regions.iter().filter(|r| r.kind.is_device())
    }

    /// Hotplug windows, in id order.
    pub fn windows(&self) -> impl Iterator<Item = &Region> {
        self.regions
            .iter()
            .filter(|r| r.kind == RegionKind::HotplugWindow)
    }

    /// Every add, reject and ignore so far, in order.
    pub fn outcomes(&self) -> &[Outcome] {
        &self.outcomes
    }

    /// The refusals so far, in order.
    pub fn rejected(&self) -> impl Iterator<Item = &RegionError> {
        self.outcomes.iter().filter_map(|o| match o {
            Outcome::Rejected(e) => Some(e),
            _ => None,
        })
    }

    /// A fresh altmap for a device region.
    pub fn altmap(&self, id: u32) -> Option<VmemAltmap> {
        self.get(id)?.altmap(&self.arch)
    }

    /// The ranges `memmap=` carves out of RAM, in id order.
    pub fn carved_ranges(&self) -> Vec<Range<u64>> {
        self.regions
            .iter()
            .filter(|r| matches!(r.source, Source::MemmapParam { .. }))
            .map(Region::range)
            .collect()
    }

    /// `map` with the `memmap=` regions turned from usable into reserved.
    pub fn carve(&self, map: &MemoryMap) -> MemoryMap {
        carve_ram(map, &self.carved_ranges())
    }

    /// The console records of every outcome so far, one line each.
    pub fn records(&self) -> impl Iterator<Item = OutcomeRecord<'_>> {
        self.outcomes.iter().map(move |o| OutcomeRecord {
            set: self,
            outcome: o,
        })
    }

    /// Notes a `memmap=` item that could not be read.
    pub fn note_ignored(&mut self, error: MemmapError) {
        log::debug!("{error}");
        self.outcomes.push(Outcome::Ignored(error));
    }

    /// Checks a request against the rules (module docs) and adds it, or records and
    /// returns the refusal. Returns the new region's id.
    pub fn add_checked(&mut self, req: RegionRequest) -> Result<u32, RegionError> {
        // Room for the region and its outcome first: a refused heap allocation changes
        // nothing (and is the one refusal not kept in the outcomes).
        if self.regions.try_reserve(1).is_err() || self.outcomes.try_reserve(1).is_err() {
            return Err(RegionError {
                start: req.start,
                size: req.size,
                kind: req.kind,
                source: req.source,
                reason: Reason::NoMemory,
            });
        }
        match self.check(&req) {
            Ok(layout) => {
                let id = u32::try_from(self.regions.len()).unwrap_or(u32::MAX);
                let region = Region {
                    id,
                    start: req.start,
                    size: req.size,
                    kind: req.kind,
                    source: req.source,
                    node: req.node,
                    layout,
                };
                log::debug!("{}", region.record());
                self.regions.push(region);
                self.outcomes.push(Outcome::Added(id));
                Ok(id)
            }
            Err(reason) => {
                let error = RegionError {
                    start: req.start,
                    size: req.size,
                    kind: req.kind,
                    source: req.source,
                    reason,
                };
                log::debug!("{error}");
                self.outcomes.push(Outcome::Rejected(error.clone()));
                Err(error)
            }
        }
    }
}
