//! Every discovery source into one [`RegionSet`], in a fixed order: hotplug windows
//! first (so NFIT ranges can be checked against them), then NFIT persistent-memory
//! ranges, then `memmap=` items in command-line order.

use alloc::vec::Vec;

use super::{RegionRequest, RegionSet};
use crate::boot_info::{HotplugWindow, MemoryMap};
use crate::firmware::memmap_param;
use crate::firmware::nfit::Nfit;
use crate::firmware::srat::Srat;
use crate::mm::arch::MmArch;

/// What discovery reads; parse the tables first and pass only those that parsed.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sources<'a> {
    /// The kernel command line (`memmap=` words).
    pub cmdline: &'a str,
    /// The SRAT, if present and valid.
    pub srat: Option<&'a Srat>,
    /// The NFIT (or FIT buffer), if present and valid.
    pub nfit: Option<&'a Nfit>,
    /// The arch crate's window (`BootInfo::hotplug`), used when the SRAT gives none.
    pub window: Option<HotplugWindow>,
}

/// Builds the region list from `sources`, checked against `ram` (the boot memory map
/// before carving). Every add, refusal and unreadable `memmap=` item is in
/// [`RegionSet::outcomes`], in order; [`RegionSet::records`] prints them.
pub fn discover(arch: MmArch, ram: &MemoryMap, sources: &Sources<'_>) -> RegionSet {
    let mut set = RegionSet::new(arch, ram);
    let srat_windows: Vec<RegionRequest> = sources
        .srat
        .iter()
        .flat_map(|s| s.hotplug_windows())
        .map(RegionRequest::srat_window)
        .collect();
    if let (true, Some(window)) = (srat_windows.is_empty(), sources.window) {
        let _ = set.add_checked(RegionRequest::boot_window(window));
    }
    for window in srat_windows {
        let _ = set.add_checked(window);
    }
    for spa in sources.nfit.iter().flat_map(|n| n.pmem()) {
        let _ = set.add_checked(RegionRequest::nfit(spa));
    }
    for item in memmap_param::items(sources.cmdline) {
        match item {
            Ok(range) => {
                let _ = set.add_checked(RegionRequest::memmap(&range));
            }
            Err(error) => set.note_ignored(error),
        }
    }
    set
}
