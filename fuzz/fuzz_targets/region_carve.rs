//! Fuzz target `region_carve`: the region list (`kernel::region`): the rules of
//! [`RegionSet::add_checked`], the altmaps carved for device regions, and carving
//! `memmap=` ranges out of the boot RAM map ([`carve_ram`]).
//!
//! Every request is also judged by a plain reference written here from the module's rules
//! (zero size, memory-model limit, subsection alignment, `align` range, `memmap=` inside
//! usable RAM, other ranges off RAM, NFIT inside a window, no overlap with a rival, room
//! for the memmap by Linux's `nd_pfn_init` formula); the verdict, the refusal reason with
//! its numbers, and the accepted region's altmap must agree. Then the carved map must
//! keep every byte, turn exactly the `memmap=` ranges from usable into reserved, and
//! leave other spans alone; the same for a direct `carve_ram` with arbitrary cuts.
//!
//! Input layout (little-endian; a short input reads as zeros):
//! - `arch` u8 (x86_64, aarch64, s390x), `unit` u8 (span unit 4 KiB << unit % 19),
//!   `rotate` u8 (map order rotated by this), `spans` u8 (% 136, past the 128 the map holds);
//! - per span: `gap` u16, `len` u16 (in units), `kind` u8 (% 8, a `MemKind`);
//! - `requests` u8 (% 48); per request: `what` u8 (bits 0-1 source: memmap, nfit (both
//!   devices), srat, boot (both windows); bit 2: a device is zone-device, not pmem; bit 4:
//!   raw start and size follow as two u64 at the end of the request), `anchor` u8 (a span's start, else 0), `shift` u8
//!   (unit 4 KiB << shift % 19), `offset` u16, `size` u16 (in that unit), `align` u8
//!   (`1 << align` up to 40; 41..=47 an odd 3 MiB; 48 zero; else 2 MiB), `node` u8;
//! - `cuts` u8 (% 16); per cut: `anchor` u8, `offset` u16, `len` u16 (span units),
//!   `flip` u8 (bit 0: start and end swapped).
#![no_main]

use std::ops::Range;

use hotmem_fuzz::{Bytes, merge, overlaps, subtract};
use kernel::boot_info::{MemKind, MemRegion, MemoryMap};
use kernel::mm::arch::MmArch;
use kernel::region::{
    Conflict, DEFAULT_ALIGN, MAP_COLUMNS, MAX_ALIGN, Reason, Region, RegionKind, RegionRequest,
    RegionSet, SUBSECTION, Source, ascii_map, carve_ram, regions_table, usable_spans,
};
use libfuzzer_sys::fuzz_target;

const PAGE: u64 = 4096;
const KINDS: [MemKind; 8] = [
    MemKind::Usable,
    MemKind::Reserved,
    MemKind::Kernel,
    MemKind::AcpiReclaimable,
    MemKind::AcpiNvs,
    MemKind::Bad,
    MemKind::LoaderReclaimable,
    MemKind::Framebuffer,
];
/// The three ports' memory models.
const ARCHES: [MmArch; 3] = [
    arch_x86_64::vmemmap::MM,
    arch_aarch64::vmemmap::MM,
    arch_s390x::vmemmap::MM,
];
/// Spans stop growing here, so sums of lengths never overflow.
const MAP_TOP: u64 = 1 << 50;

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes::new(data);
    let arch = ARCHES[usize::from(b.u8() % 3)];
    let unit = PAGE << (b.u8() % 19);
    let rotate = usize::from(b.u8());
    let spans = read_spans(&mut b, unit, rotate);
    let ram = to_map(&spans);

    let mut set = RegionSet::new(arch, &ram);
    let usable = merge(usable_ranges(&spans));
    let ram_ranges: Vec<Range<u64>> = held(&spans)
        .iter()
        .filter(|s| s.kind.is_ram())
        .map(|s| s.start..s.end)
        .collect();
    assert_eq!(usable_spans(&ram), usable, "usable_spans");

    for _ in 0..b.u8() % 48 {
        let req = read_request(&mut b, &spans);
        let expect = reference(&arch, &req, &usable, &ram_ranges, set.regions());
        let before = set.regions().len();
        match (set.add_checked(req.clone()), expect) {
            (Ok(id), Ok(altmap)) => {
                assert_eq!(id as usize, before);
                let region = set.get(id).expect("added");
                assert_eq!((region.start, region.size), (req.start, req.size));
                let got = region.altmap(&arch).map(|a| {
                    assert_eq!((a.align, a.alloc), (0, 0));
                    (a.base_pfn, a.end_pfn, a.reserve, a.free)
                });
                assert_eq!(got, altmap, "altmap of {req:x?}");
                let _ = region.record().to_string();
            }
            (Err(e), Err(reason)) => {
                assert_eq!(e.reason, reason, "{req:x?}");
                assert_eq!(set.regions().len(), before);
                let _ = (e.to_string(), e.record().to_string());
            }
            (got, expect) => panic!("{req:x?}: got {got:x?}, reference {expect:x?}"),
        }
    }
    check_set(&set, &usable);
    check_set_carve(&set, &spans, &ram);

    let mut cuts = Vec::new();
    for _ in 0..b.u8() % 16 {
        let base = anchor(&spans, b.u8());
        let start = base.saturating_add(u64::from(b.u16()) * unit);
        let end = start.saturating_add(u64::from(b.u16()) * unit);
        cuts.push(if b.bool() { end..start } else { start..end });
    }
    check_carve(&spans, &ram, &cuts);

    for width in [MAP_COLUMNS, 1 + usize::from(b.u8() % 100)] {
        let map = ascii_map(&ram, set.regions(), width);
        assert_eq!(map.cells().len(), width);
        assert!(map.column_bytes().is_power_of_two() && map.column_bytes() >= PAGE);
        let _ = map.to_string();
    }
    let _ = regions_table(&set).to_string();
    assert_eq!(set.records().count(), set.outcomes().len());
    for r in set.records() {
        let _ = r.to_string();
    }
});

fn read_spans(b: &mut Bytes<'_>, unit: u64, rotate: usize) -> Vec<MemRegion> {
    let mut spans = Vec::new();
    let mut pos = 0u64;
    for _ in 0..b.u8() % 136 {
        let start = pos.saturating_add(u64::from(b.u16()) * unit);
        let end = start.saturating_add(u64::from(b.u16()) * unit);
        let kind = KINDS[usize::from(b.u8() % 8)];
        if end > MAP_TOP {
            break;
        }
        if start < end {
            spans.push(MemRegion { start, end, kind });
        }
        pos = end;
    }
    if !spans.is_empty() {
        let n = rotate % spans.len();
        spans.rotate_left(n);
    }
    spans
}

fn to_map(spans: &[MemRegion]) -> MemoryMap {
    let mut map = MemoryMap::new();
    spans.iter().for_each(|s| map.push(*s));
    map
}

/// The spans a map holds (the first 128).
fn held(spans: &[MemRegion]) -> &[MemRegion] {
    &spans[..spans.len().min(kernel::boot_info::MAX_MEM_REGIONS)]
}

fn usable_ranges(spans: &[MemRegion]) -> Vec<Range<u64>> {
    held(spans)
        .iter()
        .filter(|s| s.kind == MemKind::Usable)
        .map(|s| s.start..s.end)
        .collect()
}

fn anchor(spans: &[MemRegion], pick: u8) -> u64 {
    spans.get(usize::from(pick)).map_or(0, |s| s.start)
}

fn read_request(b: &mut Bytes<'_>, spans: &[MemRegion]) -> RegionRequest {
    let what = b.u8();
    let base = anchor(spans, b.u8());
    let unit = PAGE << (b.u8() % 19);
    let mut start = base.saturating_add(u64::from(b.u16()) * unit);
    let mut size = u64::from(b.u16()) * unit;
    let align = match b.u8() {
        a @ 0..=40 => 1u64 << a,
        41..=47 => 3 << 20,
        48 => 0,
        _ => DEFAULT_ALIGN,
    };
    let node = b.u8();
    let node = (node & 0x80 != 0).then_some(u32::from(node & 0x7f));
    if what & 0x10 != 0 {
        start = b.u64();
        size = b.u64();
    }
    let source = match what & 3 {
        0 => Source::MemmapParam {
            text: "fuzz".into(),
        },
        1 => Source::Nfit {
            range_index: u16::from(what),
        },
        2 => Source::Srat,
        _ => Source::BootInfo,
    };
    // As the constructors pair them: `memmap=` and NFIT ranges are devices, SRAT and boot
    // ranges windows; bit 2 makes a device zone-device memory instead of pmem.
    let kind = match (what & 3, what & 4 != 0) {
        (0 | 1, false) => RegionKind::Pmem,
        (0 | 1, true) => RegionKind::ZoneDevice,
        _ => RegionKind::HotplugWindow,
    };
    RegionRequest {
        start,
        size,
        kind,
        source,
        node,
        align,
    }
}

/// The altmap figures `(base_pfn, end_pfn, reserve, free)` of an accepted device region
/// (`None` for a window), or the refusal, by the module's rules in their order.
type Verdict = Result<Option<(u64, u64, u64, u64)>, Reason>;

fn reference(
    arch: &MmArch,
    req: &RegionRequest,
    usable: &[Range<u64>],
    ram: &[Range<u64>],
    accepted: &[Region],
) -> Verdict {
    let limit = 1u64 << arch.max_phys_bits;
    if req.size == 0 {
        return Err(Reason::ZeroSize);
    }
    let end = match req.start.checked_add(req.size) {
        Some(end) if end <= limit => end,
        _ => return Err(Reason::OutOfRange { limit }),
    };
    let nfit = matches!(req.source, Source::Nfit { .. });
    let memmap = matches!(req.source, Source::MemmapParam { .. });
    if !req.start.is_multiple_of(SUBSECTION) {
        return Err(unaligned("start", req.start, SUBSECTION));
    }
    if !nfit && !req.size.is_multiple_of(SUBSECTION) {
        return Err(unaligned("size", req.size, SUBSECTION));
    }
    if req.align.count_ones() != 1 || req.align < PAGE || req.align > MAX_ALIGN {
        return Err(unaligned("align", req.align, MAX_ALIGN));
    }
    let range = req.start..end;
    if memmap {
        let mut pos = range.start;
        for u in usable {
            if u.start <= pos && pos < u.end {
                pos = u.end;
            }
        }
        if pos < range.end {
            return Err(Reason::OutsideRam { first_bad: pos });
        }
    } else {
        if let Some(r) = ram.iter().find(|r| overlaps(r, &range)) {
            return Err(Reason::Overlap(Conflict::Ram { range: r.clone() }));
        }
        let windows: Vec<&Region> = accepted
            .iter()
            .filter(|r| r.kind == RegionKind::HotplugWindow)
            .collect();
        if nfit
            && !windows.is_empty()
            && !windows
                .iter()
                .any(|w| w.start <= range.start && range.end <= w.start + w.size)
        {
            return Err(Reason::OutsideHotplugWindow {
                windows: windows.len(),
            });
        }
    }
    let device = req.kind != RegionKind::HotplugWindow;
    if let Some(other) = accepted.iter().find(|r| {
        (r.kind != RegionKind::HotplugWindow) == device && overlaps(&(r.start..r.end()), &range)
    }) {
        return Err(Reason::Overlap(Conflict::Region {
            id: other.id,
            range: other.start..other.end(),
        }));
    }
    if !device {
        return Ok(None);
    }
    // Linux's nd_namespace_store: a namespace under 16 MiB cannot be claimed (-ENXIO).
    if req.size < 16 << 20 {
        return Err(Reason::UnderMinimum { minimum: 16 << 20 });
    }
    // Linux nd_pfn_init (PMEM mode) and __nvdimm_setup_pfn, for a subsection-aligned start.
    let align = req.align.max(SUBSECTION);
    let end_trunc = end % align;
    let npfns = req.size.saturating_sub(8192) / PAGE;
    let dataoff = (req.start + 8192 + 64 * npfns).div_ceil(align) * align - req.start;
    let usable_size = req.size.saturating_sub(end_trunc);
    if dataoff >= usable_size {
        return Err(Reason::TooSmall {
            dataoff,
            usable: usable_size,
        });
    }
    Ok(Some((
        req.start / PAGE,
        (end - end_trunc - 1) / PAGE,
        2,
        dataoff / PAGE - 2,
    )))
}

fn unaligned(what: &'static str, value: u64, align: u64) -> Reason {
    Reason::Unaligned { what, value, align }
}

fn check_set(set: &RegionSet, usable: &[Range<u64>]) {
    let regions = set.regions();
    for (i, a) in regions.iter().enumerate() {
        assert_eq!(a.id as usize, i);
        assert!(a.size > 0 && a.start % SUBSECTION == 0);
        assert_eq!(a.map_range().end % SUBSECTION, 0);
        if let Some(alt) = a.altmap(set.arch()) {
            assert!(alt.offset() * PAGE < a.map_range().end - a.start);
            assert!(alt.end_pfn * PAGE < a.map_range().end);
        }
        if matches!(a.source, Source::MemmapParam { .. }) {
            assert!(
                usable
                    .iter()
                    .any(|u| u.start <= a.start && a.end() <= u.end)
            );
        }
        for b in &regions[i + 1..] {
            if a.kind.is_device() == b.kind.is_device() {
                assert!(!overlaps(&a.range(), &b.range()), "{a:?} {b:?}");
            }
        }
    }
    assert_eq!(
        set.carved_ranges().len(),
        regions
            .iter()
            .filter(|r| matches!(r.source, Source::MemmapParam { .. }))
            .count()
    );
}

/// Bytes of spans of `kind` in a list.
fn bytes(spans: &[MemRegion], kind: Option<MemKind>) -> u64 {
    spans
        .iter()
        .filter(|s| kind.is_none_or(|k| s.kind == k))
        .map(MemRegion::len)
        .sum()
}

/// Spans neither usable nor reserved, in order: carving must copy them unchanged.
fn others(spans: &[MemRegion]) -> Vec<MemRegion> {
    spans
        .iter()
        .filter(|s| s.kind != MemKind::Usable && s.kind != MemKind::Reserved)
        .copied()
        .collect()
}

fn check_set_carve(set: &RegionSet, spans: &[MemRegion], ram: &MemoryMap) {
    let carved_map = set.carve(ram);
    let ranges = set.carved_ranges();
    let out = carved_map.regions();
    assert!(out.iter().all(|s| s.start < s.end));
    if carved_map.dropped() > 0 {
        return;
    }
    let input = held(spans);
    let cut: u64 = ranges.iter().map(|r| r.end - r.start).sum();
    assert_eq!(bytes(out, None), bytes(input, None), "bytes kept");
    assert_eq!(
        bytes(out, Some(MemKind::Usable)) + cut,
        bytes(input, Some(MemKind::Usable)),
        "usable minus the carved ranges"
    );
    assert_eq!(others(out), others(input));
    assert_eq!(
        merge(usable_ranges(out)),
        subtract(&merge(usable_ranges(input)), &merge(ranges))
    );
}

fn check_carve(spans: &[MemRegion], ram: &MemoryMap, cuts: &[Range<u64>]) {
    let out_map = carve_ram(ram, cuts);
    let out = out_map.regions();
    assert!(out.iter().all(|s| s.start < s.end));
    if out_map.dropped() > 0 {
        return;
    }
    let input = held(spans);
    assert_eq!(bytes(out, None), bytes(input, None), "bytes kept");
    assert_eq!(others(out), others(input));
    let cut = merge(cuts.to_vec());
    let usable_in = merge(usable_ranges(input));
    let expect = subtract(&usable_in, &cut);
    assert_eq!(
        merge(usable_ranges(out)),
        expect,
        "usable after carving {cuts:x?}"
    );
    let removed: u64 = usable_in.iter().map(|r| r.end - r.start).sum::<u64>()
        - expect.iter().map(|r| r.end - r.start).sum::<u64>();
    assert_eq!(
        bytes(out, Some(MemKind::Reserved)),
        bytes(input, Some(MemKind::Reserved)) + removed
    );
}
