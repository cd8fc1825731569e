//! `regions` and `altmap ID`: what boot discovery decided and what population used.

use crate::region::{MAP_COLUMNS, altmap_record, ascii_map, regions_table};
use crate::{Arch, Kernel, kprint, kprintln};

use super::inspect::parse_number;

/// `regions`: the table, the refusals, the live state of each device region, the map.
pub fn regions<A: Arch>(kernel: &Kernel<A>) {
    let set = &kernel.regions;
    kprint!("{}", regions_table(set));
    for rejected in set.rejected() {
        kprintln!("{}", rejected.record());
    }
    for device in &kernel.devices {
        let m = &device.memory;
        kprintln!(
            "region: live id={} pfn={:#x}-{:#x} data.pfn={:#x} verify={}",
            m.region_id,
            m.range.start.0,
            m.range.end.0,
            m.first_data_pfn().0,
            match device.report {
                None => "pending",
                Some(r) if r.passed() => "pass",
                Some(_) => "fail",
            }
        );
    }
    kprintln!(
        "{}",
        ascii_map(&kernel.boot.memory, set.regions(), MAP_COLUMNS)
    );
}

/// `altmap ID`: the live altmap if the region was populated, else the fresh one.
pub fn altmap<A: Arch>(kernel: &Kernel<A>, arg: Option<&str>) {
    let Some(text) = arg else {
        kprintln!("error: altmap: missing ID (usage: altmap ID)");
        return;
    };
    let Some(id) = parse_number(text).and_then(|n| u32::try_from(n).ok()) else {
        kprintln!("error: altmap: bad ID '{text}' (a region number from 'regions')");
        return;
    };
    if let Some(device) = kernel.devices.iter().find(|d| d.memory.region_id == id) {
        kprintln!("{} state=live", altmap_record(id, &device.memory.altmap));
        return;
    }
    match kernel.regions.altmap(id) {
        Some(fresh) => kprintln!("{} state=not-populated", altmap_record(id, &fresh)),
        None => kprintln!("error: altmap: no device region with id {id} (see 'regions')"),
    }
}
