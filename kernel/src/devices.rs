//! Device regions at boot, end to end: read the firmware's tables and the command line,
//! decide the regions (refusals print one line each), carve `memmap=` ranges out of RAM
//! before the buddy allocator sees it, then add every device region with its own altmap
//! and verify it through the MMU (at boot right away; a hot-added one once its event is
//! done, see [`crate::hotplug::dispatch`]).

use alloc::vec::Vec;

use crate::boot_info::{BootInfo, Firmware};
use crate::firmware::acpi_find;
use crate::firmware::nfit::{self, Nfit};
use crate::firmware::srat::{self, Srat};
use crate::hotplug::device::{self, DeviceMemory};
use crate::hotplug::verify::{self, VerifyReport};
use crate::mm::live::LiveMm;
use crate::region::{self, Region, RegionSet, Sources};
use crate::{Arch, kprintln};

/// A device region that was added, with what verification found.
pub struct LiveDevice {
    /// The live range and its altmap.
    pub memory: DeviceMemory,
    /// The last verification; `None` until it ran.
    pub report: Option<VerifyReport>,
}

/// Reads the sources and decides the regions; prints every outcome record.
pub fn discover<A: Arch>(boot: &BootInfo) -> RegionSet {
    let (nfit, srat) = acpi_tables::<A>(boot);
    let sources = Sources {
        cmdline: boot.cmdline,
        srat: srat.as_ref(),
        nfit: nfit.as_ref(),
        window: boot.hotplug,
    };
    let set = region::discover(*A::mm_config().arch, &boot.memory, &sources);
    for record in set.records() {
        kprintln!("{record}");
    }
    set
}

/// NFIT and SRAT from ACPI, when the machine has them; a table that fails to parse is
/// reported in one line and ignored.
fn acpi_tables<A: Arch>(boot: &BootInfo) -> (Option<Nfit>, Option<Srat>) {
    let Firmware::Acpi { rsdp } = boot.firmware else {
        return (None, None);
    };
    let read = |pa: u64, len: usize| -> Option<&'static [u8]> {
        // SAFETY: ACPI tables are firmware memory the loader maps in the direct map
        // (Limine base revision >= 4 maps ACPI ranges) and nothing writes them.
        Some(unsafe { core::slice::from_raw_parts(A::phys_to_virt(pa), len) })
    };
    let nfit = match acpi_find::find(rsdp, b"NFIT", &read) {
        Ok(bytes) => nfit::parse_table(bytes)
            .map_err(|e| kprintln!("error: NFIT ignored: {e}"))
            .ok(),
        Err(acpi_find::FindError::NotFound) => None,
        Err(e) => {
            kprintln!("error: NFIT lookup failed: {e:?}");
            None
        }
    };
    let srat = match acpi_find::find(rsdp, b"SRAT", &read) {
        Ok(bytes) => srat::parse_table(bytes)
            .map_err(|e| kprintln!("error: SRAT ignored: {e}"))
            .ok(),
        Err(_) => None,
    };
    (nfit, srat)
}

/// Adds every device region of `set` with its altmap, verifies it, prints the records.
/// A region that fails is reported and skipped; the others still come up.
pub fn populate<A: Arch>(mm: &mut LiveMm<A::PageTable>, set: &RegionSet) -> Vec<LiveDevice> {
    set.devices()
        .filter_map(|region| {
            let mut device = populate_one::<A>(mm, region)?;
            verify_one::<A>(mm, &mut device);
            Some(device)
        })
        .collect()
}

/// Adds one device region with a fresh altmap; its verification is left to the caller
/// ([`verify_one`]).
pub fn populate_one<A: Arch>(mm: &mut LiveMm<A::PageTable>, region: &Region) -> Option<LiveDevice> {
    let arch = mm.arch();
    let altmap = region.altmap(arch)?;
    let range = region.map_range();
    let before = *mm.sparse().vmemmap().stats();
    let t0 = A::timestamp_ns();
    let added = device::populate(mm, region.id, range.start, range.end - range.start, altmap);
    let t1 = A::timestamp_ns();
    let populate_ns = mm.sparse().last_add_times().populate_ns;
    let memory = match added {
        Ok(memory) => memory,
        Err(e) => {
            kprintln!(
                "region: populate id={} error={e:?} errno={}",
                region.id,
                e.errno()
            );
            return None;
        }
    };
    device::init_pages(mm, &memory);
    let t2 = A::timestamp_ns();
    let after = mm.sparse().vmemmap().stats();
    let a = &memory.altmap;
    kprintln!(
        "region: populate id={} range={:#x}-{:#x} sections={} altmap.alloc={} altmap.align={} leaves={} tables.new={} us.add={} us.populate={} us.init={} us.total={}",
        region.id,
        range.start,
        range.end,
        (range.end - range.start).div_ceil(arch.section_bytes()),
        a.alloc,
        a.align,
        after.leaves() - before.leaves(),
        after.table_pages().saturating_sub(before.table_pages()),
        t1.saturating_sub(t0).saturating_sub(populate_ns) / 1000,
        populate_ns / 1000,
        t2.saturating_sub(t1) / 1000,
        t2.saturating_sub(t0) / 1000,
    );
    Some(LiveDevice {
        memory,
        report: None,
    })
}

/// Verifies `device` through the MMU now, prints its `verify:` record and keeps the report.
pub fn verify_one<A: Arch>(mm: &mut LiveMm<A::PageTable>, device: &mut LiveDevice) {
    let t0 = A::timestamp_ns();
    let report = verify::verify(mm, &device.memory);
    let verify_us = A::timestamp_ns().saturating_sub(t0) / 1000;
    kprintln!(
        "verify: id={} pages={} rw.failures={} state.failures={} leaves={} leaves.altmap={} leaves.other={} walk.faults={} us={verify_us} result={}",
        device.memory.region_id,
        report.pages,
        report.rw_failures,
        report.state_failures,
        report.leaves,
        report.leaves_in_altmap,
        report.leaves_elsewhere,
        report.walk_faults,
        if report.passed() { "pass" } else { "fail" },
    );
    device.report = Some(report);
}
