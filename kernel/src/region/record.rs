//! Stable console records for region discovery and carving, the `regions` table and the
//! one-line ASCII map of the physical address space. Addresses and pfns are `0x` hex,
//! page counts decimal; README-REGIONS.md lists every field.

use core::fmt::{self, Write as _};

use super::{Conflict, Outcome, Reason, Region, RegionError, RegionKind, RegionSet, Source};
use crate::boot_info::MemoryMap;
use crate::mm::VmemAltmap;
use crate::mm::addr::PAGE_SIZE;

/// Columns of the `regions` map.
pub const MAP_COLUMNS: usize = 64;

fn source_fields(f: &mut fmt::Formatter<'_>, source: &Source) -> fmt::Result {
    write!(f, "source={}", source.name())?;
    match source {
        Source::Nfit { range_index } => write!(f, " range={range_index}"),
        Source::MemmapParam { text } => write!(f, " text={text}"),
        Source::Srat | Source::BootInfo => Ok(()),
    }
}

/// `region: add id=0 start=0x.. end=0x.. size=0x.. kind=pmem source=memmap text=512M!1G`
/// (`source=nfit range=2`, `source=srat`, `source=boot`), then ` node=N` when known and
/// ` trunc=0x..` when an NFIT range's unaligned tail is cut off.
pub struct AddRecord<'a>(pub(super) &'a Region);

impl fmt::Display for AddRecord<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.0;
        write!(
            f,
            "region: add id={} start={:#x} end={:#x} size={:#x} kind={} ",
            r.id,
            r.start,
            r.end(),
            r.size,
            r.kind.name()
        )?;
        source_fields(f, &r.source)?;
        if let Some(node) = r.node {
            write!(f, " node={node}")?;
        }
        if r.end_trunc() != 0 {
            write!(f, " trunc={:#x}", r.end_trunc())?;
        }
        Ok(())
    }
}

/// `region: reject range=0x..-0x.. reason=CODE source=..` then the reason's fields.
pub struct RejectRecord<'a>(pub(super) &'a RegionError);

impl fmt::Display for RejectRecord<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.0;
        write!(
            f,
            "region: reject range={:#x}-{:#x} reason={} ",
            e.start,
            e.end(),
            e.reason.code()
        )?;
        source_fields(f, &e.source)?;
        match &e.reason {
            Reason::ZeroSize | Reason::OutOfRange { .. } => Ok(()),
            Reason::NoMemory => write!(f, " errno=-12"),
            Reason::Unaligned { what, value, align } => {
                write!(f, " what={what} value={value:#x} align={align:#x}")
            }
            Reason::OutsideRam { first_bad } => write!(f, " first_bad={first_bad:#x}"),
            Reason::OutsideHotplugWindow { windows } => write!(f, " windows={windows}"),
            Reason::Overlap(Conflict::Region { id, range }) => write!(
                f,
                " other=region other_id={id} other_range={:#x}-{:#x}",
                range.start, range.end
            ),
            Reason::Overlap(Conflict::Ram { range }) => write!(
                f,
                " other=ram other_range={:#x}-{:#x}",
                range.start, range.end
            ),
            Reason::UnderMinimum { minimum } => write!(f, " minimum={minimum:#x}"),
            Reason::TooSmall { dataoff, usable } => {
                write!(f, " dataoff={dataoff:#x} usable={usable:#x}")
            }
        }
    }
}

/// One outcome's record: an add, a reject, or an ignored `memmap=` item.
pub struct OutcomeRecord<'a> {
    pub(super) set: &'a RegionSet,
    pub(super) outcome: &'a Outcome,
}

impl fmt::Display for OutcomeRecord<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.outcome {
            Outcome::Added(id) => match self.set.get(*id) {
                Some(region) => write!(f, "{}", region.record()),
                None => write!(f, "region: add id={id} (missing)"),
            },
            Outcome::Rejected(error) => write!(f, "{}", error.record()),
            Outcome::Ignored(error) => write!(f, "{}", error.record()),
        }
    }
}

/// `altmap: id=0 base_pfn=0x.. end_pfn=0x.. reserve=2 free=N align=N alloc=N offset=N`:
/// all six `vmem_altmap` fields and the derived `vmem_altmap_offset`, for a live or a
/// fresh altmap.
pub fn altmap_record(id: u32, altmap: &VmemAltmap) -> impl fmt::Display + '_ {
    struct AltmapRecord<'a>(u32, &'a VmemAltmap);
    impl fmt::Display for AltmapRecord<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            let a = self.1;
            write!(
                f,
                "altmap: id={} base_pfn={:#x} end_pfn={:#x} reserve={} free={} align={} alloc={} offset={}",
                self.0,
                a.base_pfn,
                a.end_pfn,
                a.reserve,
                a.free,
                a.align,
                a.alloc,
                a.offset()
            )
        }
    }
    AltmapRecord(id, altmap)
}

/// A byte count as the largest binary unit that divides it exactly: `512M`, `262016K`,
/// `0` (bytes when nothing divides).
pub fn human_size(bytes: u64) -> impl fmt::Display {
    struct Human(u64);
    impl fmt::Display for Human {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            let units = [
                (60, "E"),
                (50, "P"),
                (40, "T"),
                (30, "G"),
                (20, "M"),
                (10, "K"),
            ];
            match units
                .iter()
                .find(|(shift, _)| self.0 != 0 && self.0.trailing_zeros() >= *shift)
            {
                Some((shift, unit)) => write!(f, "{}{unit}", self.0 >> shift),
                None => write!(f, "{}", self.0),
            }
        }
    }
    Human(bytes)
}

/// The `regions` table: a header and one row per accepted region.
pub fn regions_table(set: &RegionSet) -> impl fmt::Display + '_ {
    struct Table<'a>(&'a RegionSet);
    impl fmt::Display for Table<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            writeln!(
                f,
                "{:<3} {:<18} {:<18} {:>9} {:<14} {:<6} {:<16} {:>4}",
                "ID", "START", "END", "SIZE", "KIND", "SOURCE", "DETAIL", "NODE"
            )?;
            for r in self.0.regions() {
                // Cells are formatted on the stack (the shell does not allocate).
                let mut detail = Cell::default();
                let _ = match &r.source {
                    Source::Nfit { range_index } => write!(detail, "range={range_index}"),
                    Source::MemmapParam { text } => write!(detail, "memmap={text}"),
                    Source::Srat | Source::BootInfo => write!(detail, "-"),
                };
                let mut node = Cell::default();
                let _ = match r.node {
                    Some(n) => write!(node, "{n}"),
                    None => write!(node, "-"),
                };
                let mut size = Cell::default();
                let _ = write!(size, "{}", human_size(r.size));
                writeln!(
                    f,
                    "{:<3} {:<#18x} {:<#18x} {:>9} {:<14} {:<6} {:<16} {:>4}",
                    r.id,
                    r.start,
                    r.end(),
                    size.as_str(),
                    r.kind.name(),
                    r.source.name(),
                    detail.as_str(),
                    node.as_str()
                )?;
            }
            Ok(())
        }
    }
    Table(set)
}

/// A table cell formatted on the stack; text past its 64 bytes is cut.
struct Cell {
    bytes: [u8; 64],
    len: usize,
}

impl Default for Cell {
    fn default() -> Self {
        Cell {
            bytes: [0; 64],
            len: 0,
        }
    }
}

impl Cell {
    fn as_str(&self) -> &str {
        core::str::from_utf8(&self.bytes[..self.len]).unwrap_or("?")
    }
}

impl fmt::Write for Cell {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            let mut utf8 = [0; 4];
            let piece = c.encode_utf8(&mut utf8).as_bytes();
            if self.len + piece.len() > self.bytes.len() {
                break;
            }
            self.bytes[self.len..self.len + piece.len()].copy_from_slice(piece);
            self.len += piece.len();
        }
        Ok(())
    }
}

/// Most columns of [`ascii_map`].
pub const MAX_MAP_COLUMNS: usize = 256;

/// The one-line map of the physical address space from 0: see [`ascii_map`].
pub struct AsciiMap {
    cells: [u8; MAX_MAP_COLUMNS],
    width: usize,
    column: u64,
}

impl AsciiMap {
    /// The map characters alone.
    pub fn cells(&self) -> &str {
        core::str::from_utf8(&self.cells[..self.width]).unwrap_or("")
    }

    /// Bytes per column (a power of two, at least a page).
    pub const fn column_bytes(&self) -> u64 {
        self.column
    }
}

impl fmt::Display for AsciiMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let end = self.column.saturating_mul(self.width as u64);
        write!(
            f,
            "regions: map={} start=0x0 end={end:#x} col={:#x}",
            self.cells(),
            self.column
        )
    }
}

/// `regions: map=RRRR..PP..HHHH start=0x0 end=0x.. col=0x..`: `width` columns from 0 to
/// past the highest RAM or region byte, each a power-of-two span; a column shows the
/// strongest thing touching it: `P` pmem, `Z` other zone-device, `H` hotplug window,
/// `R` RAM, `.` hole. At most `MAX_MAP_COLUMNS` (256) columns; no allocation.
pub fn ascii_map(ram: &MemoryMap, regions: &[Region], width: usize) -> AsciiMap {
    let width = width.clamp(1, MAX_MAP_COLUMNS);
    let top = regions
        .iter()
        .map(Region::end)
        .chain(core::iter::once(ram.ram_end()))
        .max()
        .unwrap_or(0);
    let column = top
        .div_ceil(width as u64)
        .max(PAGE_SIZE)
        .checked_next_power_of_two()
        .unwrap_or(1 << 63);
    let mut cells = [b'.'; MAX_MAP_COLUMNS];
    let mut paint = |start: u64, end: u64, ch: u8| {
        if start >= end {
            return;
        }
        let first = usize::try_from(start / column).unwrap_or(usize::MAX);
        let last = usize::try_from((end - 1) / column).unwrap_or(usize::MAX);
        let last = last.min(width - 1);
        for cell in cells.iter_mut().take(last.saturating_add(1)).skip(first) {
            if rank(ch) > rank(*cell) {
                *cell = ch;
            }
        }
    };
    for r in ram.regions().iter().filter(|r| r.kind.is_ram()) {
        paint(r.start, r.end, b'R');
    }
    for r in regions {
        let ch = match r.kind {
            RegionKind::Pmem => b'P',
            RegionKind::ZoneDevice => b'Z',
            RegionKind::HotplugWindow => b'H',
        };
        paint(r.start, r.end(), ch);
    }
    AsciiMap {
        cells,
        width,
        column,
    }
}

const fn rank(ch: u8) -> u8 {
    match ch {
        b'P' | b'Z' => 3,
        b'H' => 2,
        b'R' => 1,
        _ => 0,
    }
}
