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
use crate::mm::addr::PAGE_SIZE;
use crate::mm::live::LiveMm;
use crate::mm::semantics::Semantics;
use crate::region::{self, Region, RegionSet, Sources};
use crate::{Arch, kprintln};

/// A device region that was added, with what verification found.
pub struct LiveDevice {
    /// The live range and its altmap.
    pub memory: DeviceMemory,
    /// The last verification; `None` until it ran.
    pub report: Option<VerifyReport>,
    /// Memmap leaves the populate took from RAM although it had the altmap, by arch
    /// policy and by semantics (`rfc-2017`), and the semantics it ran under: what the
    /// `verify.gap` line explains a failed leaf check with.
    pub ram_leaves: RamLeaves,
}

/// Why a populate took leaves from RAM although it had an altmap.
#[derive(Clone, Copy, Debug, Default)]
pub struct RamLeaves {
    pub by_policy: u64,
    pub by_semantics: u64,
    pub semantics: Semantics,
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
    let mm = <A::PageTable as crate::mm::vmemmap::VmemmapArch>::MM;
    let set = region::discover(*mm, &boot.memory, &sources);
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
    let read = acpi_find::read_direct_map::<A>;
    let nfit = match acpi_find::find::<acpi_find::Nfit>(rsdp, &read) {
        Ok(bytes) => nfit::parse_table(bytes)
            .map_err(|e| kprintln!("error: NFIT ignored: {e}"))
            .ok(),
        Err(acpi_find::FindError::NotFound) => None,
        Err(e) => {
            kprintln!("error: NFIT lookup failed: {e}");
            None
        }
    };
    let srat = match acpi_find::find::<acpi_find::Srat>(rsdp, &read) {
        Ok(bytes) => srat::parse_table(bytes)
            .map_err(|e| kprintln!("error: SRAT ignored: {e}"))
            .ok(),
        Err(acpi_find::FindError::NotFound) => None,
        Err(e) => {
            kprintln!("error: SRAT lookup failed: {e}");
            None
        }
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
    let tables_before = mm.table_pages();
    let tally_before = mm.sparse().vmemmap().tally();
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
    let vm = mm.sparse().vmemmap();
    let (after, semantics) = (*vm.stats(), vm.semantics());
    let a = &memory.altmap;
    let ram_leaves = (after.huge_leaves_ram + after.base_leaves_ram)
        .saturating_sub(before.huge_leaves_ram + before.base_leaves_ram);
    let ram_pages = (after.ram_leaf_bytes.saturating_sub(before.ram_leaf_bytes)) / PAGE_SIZE;
    kprintln!(
        "region: populate id={} range={:#x}-{:#x} sections={} altmap.alloc={} altmap.align={} leaves={} leaves.ram={ram_leaves} memmap.ram_pages={ram_pages} tables.new={} semantics={semantics} us.add={} us.populate={} us.init={} us.total={}",
        region.id,
        range.start,
        range.end,
        (range.end - range.start).div_ceil(arch.section_bytes()),
        a.alloc,
        a.align,
        after.leaves() - before.leaves(),
        mm.table_pages().saturating_sub(tables_before),
        t1.saturating_sub(t0).saturating_sub(populate_ns) / 1000,
        populate_ns / 1000,
        t2.saturating_sub(t1) / 1000,
        t2.saturating_sub(t0) / 1000,
    );
    let tally = vm.tally();
    let ram_leaves = RamLeaves {
        by_policy: tally.ram_leaves_by_policy - tally_before.ram_leaves_by_policy,
        by_semantics: tally.ram_leaves_by_semantics - tally_before.ram_leaves_by_semantics,
        semantics,
    };
    Some(LiveDevice {
        memory,
        report: None,
        ram_leaves,
    })
}

/// Verifies `device` through the MMU now, prints its `verify:` record (and, when leaves
/// are not where the altmap would put them, the `verify.gap` line) and keeps the report.
pub fn verify_one<A: Arch>(mm: &mut LiveMm<A::PageTable>, device: &mut LiveDevice) {
    let t0 = A::timestamp_ns();
    let report = verify::verify(mm, &device.memory);
    let verify_us = A::timestamp_ns().saturating_sub(t0) / 1000;
    kprintln!(
        "verify: id={} pages={} rw.failures={} state.failures={} leaves={} leaves.altmap={} leaves.ram={} leaves.other={} walk.faults={} memmap.pages={} us={verify_us} result={}",
        device.memory.region_id,
        report.pages,
        report.rw_failures,
        report.state_failures,
        report.leaves,
        report.leaves_in_altmap,
        report.leaves_in_ram,
        report.leaves_elsewhere,
        report.walk_faults,
        report.memmap_pages,
        if report.passed() { "pass" } else { "fail" },
    );
    if report.leaves_elsewhere > 0 {
        let r = device.ram_leaves;
        explain_leaves_elsewhere(
            device.memory.region_id,
            &report,
            r.by_policy,
            r.by_semantics,
            r.semantics,
        );
    }
    device.report = Some(report);
}

/// Says why some leaves of a region's memmap are not in its altmap: the walker counted
/// the leaves it took from RAM although it had the altmap, by arch policy (a sub-section
/// range takes base pages without it) or by semantics (`rfc-2017`: the 2017 RFC's
/// base-page path called `vmemmap_alloc_block`). Whatever those counts do not cover is
/// `why=unexplained` — a bug.
fn explain_leaves_elsewhere(
    id: u32,
    report: &VerifyReport,
    by_policy: u64,
    by_semantics: u64,
    semantics: Semantics,
) {
    let explained = by_policy + by_semantics >= report.leaves_elsewhere;
    let why = match (explained, by_policy > 0, by_semantics > 0) {
        (true, false, true) => "ram-by-semantics",
        (true, true, false) => "ram-by-policy",
        (true, true, true) => "ram-by-policy-and-semantics",
        _ => "unexplained",
    };
    kprintln!(
        "verify.gap id={id} leaves.not_in_altmap={} leaves.ram.by_semantics={by_semantics} leaves.ram.by_policy={by_policy} semantics={semantics} why={why}",
        report.leaves_elsewhere
    );
}
