//! What the arch crate learned from its firmware or loader, in one arch-neutral record.

/// How a span of the boot memory map may be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemKind {
    /// Free RAM the kernel may manage.
    Usable,
    /// Memory the kernel must not touch (not in the direct map).
    Reserved,
    /// Reserved, but mapped in the direct map for the kernel (Limine's RESERVED_MAPPED:
    /// ACPI tables, EFI runtime data outside the ACPI types).
    ReservedMapped,
    /// The kernel image itself (RAM, in use).
    Kernel,
    /// ACPI tables that may be reclaimed after parsing.
    AcpiReclaimable,
    /// ACPI non-volatile storage.
    AcpiNvs,
    /// Memory the firmware reported as broken.
    Bad,
    /// Loader data that may be reclaimed once the kernel copied what it needs.
    LoaderReclaimable,
    /// Framebuffer memory.
    Framebuffer,
    /// The kernel heap's first chunk, carved from usable RAM at boot.
    Heap,
}

impl MemKind {
    /// The stable lower-case name used in console records.
    pub const fn name(self) -> &'static str {
        match self {
            MemKind::Usable => "usable",
            MemKind::Reserved => "reserved",
            MemKind::ReservedMapped => "reserved-mapped",
            MemKind::Kernel => "kernel",
            MemKind::AcpiReclaimable => "acpi-reclaimable",
            MemKind::AcpiNvs => "acpi-nvs",
            MemKind::Bad => "bad",
            MemKind::LoaderReclaimable => "loader-reclaimable",
            MemKind::Framebuffer => "framebuffer",
            MemKind::Heap => "heap",
        }
    }

    /// Whether the loader's direct map covers the span (everything but reserved and bad
    /// memory, as Limine's HHDM and the kernel's own tables map it).
    pub const fn direct_mapped(self) -> bool {
        !matches!(self, MemKind::Reserved | MemKind::Bad)
    }

    /// Whether the span is RAM (counted in the RAM total), whatever its current use.
    pub const fn is_ram(self) -> bool {
        matches!(
            self,
            MemKind::Usable
                | MemKind::Kernel
                | MemKind::Heap
                | MemKind::LoaderReclaimable
                | MemKind::AcpiReclaimable
        )
    }
}

/// One span of the boot memory map: `[start, end)` in physical addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemRegion {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
    /// What the span holds.
    pub kind: MemKind,
}

impl MemRegion {
    /// Length in bytes.
    pub const fn len(&self) -> u64 {
        self.end - self.start
    }

    /// True when the span covers no bytes.
    pub const fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

/// Maximum number of memory-map entries kept (firmware maps on QEMU have a few dozen).
pub const MAX_MEM_REGIONS: usize = 128;

/// The boot memory map as a fixed-capacity list (no allocator exists yet at boot).
#[derive(Clone, Debug)]
pub struct MemoryMap {
    regions: [MemRegion; MAX_MEM_REGIONS],
    len: usize,
    dropped: usize,
}

impl Default for MemoryMap {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryMap {
    /// An empty map.
    pub const fn new() -> Self {
        const EMPTY: MemRegion = MemRegion {
            start: 0,
            end: 0,
            kind: MemKind::Reserved,
        };
        Self {
            regions: [EMPTY; MAX_MEM_REGIONS],
            len: 0,
            dropped: 0,
        }
    }

    /// Appends a span; empty spans are ignored, overflow is counted in [`Self::dropped`].
    pub fn push(&mut self, region: MemRegion) {
        if region.is_empty() {
            return;
        }
        if self.len == MAX_MEM_REGIONS {
            self.dropped += 1;
            return;
        }
        self.regions[self.len] = region;
        self.len += 1;
    }

    /// The spans in the order they were pushed.
    pub fn regions(&self) -> &[MemRegion] {
        &self.regions[..self.len]
    }

    /// How many spans did not fit.
    pub const fn dropped(&self) -> usize {
        self.dropped
    }

    /// Total bytes of RAM (every kind for which [`MemKind::is_ram`] holds).
    pub fn ram_bytes(&self) -> u64 {
        self.regions()
            .iter()
            .filter(|r| r.kind.is_ram())
            .map(MemRegion::len)
            .sum()
    }

    /// Total bytes of one kind.
    pub fn bytes_of(&self, kind: MemKind) -> u64 {
        self.regions()
            .iter()
            .filter(|r| r.kind == kind)
            .map(MemRegion::len)
            .sum()
    }

    /// Takes `size` bytes (page-aligned) from the start of the largest usable span and
    /// marks them `kind`; returns them, or `None` (nothing changed) when no usable span
    /// holds that much.
    pub fn take(&mut self, kind: MemKind, size: u64) -> Option<core::ops::Range<u64>> {
        const PAGE: u64 = 4096;
        let (index, span) = self
            .regions()
            .iter()
            .enumerate()
            .filter(|(_, r)| r.kind == MemKind::Usable)
            .max_by_key(|(_, r)| r.len())?;
        let start = span.start.next_multiple_of(PAGE);
        let end = start.checked_add(size.next_multiple_of(PAGE))?;
        if end > span.end || self.len + 2 > MAX_MEM_REGIONS {
            return None;
        }
        let span = *span;
        let pieces = [
            MemRegion {
                start: span.start,
                end: start,
                kind: MemKind::Usable,
            },
            MemRegion { start, end, kind },
            MemRegion {
                start: end,
                end: span.end,
                kind: MemKind::Usable,
            },
        ];
        let mut out = MemoryMap::new();
        for (i, region) in self.regions().iter().enumerate() {
            if i == index {
                pieces.iter().for_each(|p| out.push(*p));
            } else {
                out.push(*region);
            }
        }
        out.dropped = self.dropped;
        *self = out;
        Some(start..end)
    }

    /// One past the highest RAM byte.
    pub fn ram_end(&self) -> u64 {
        self.regions()
            .iter()
            .filter(|r| r.kind.is_ram())
            .map(|r| r.end)
            .max()
            .unwrap_or(0)
    }
}

/// Most merged spans a [`MappedSpans`] keeps (QEMU's maps merge to a handful).
pub const MAX_MAPPED_SPANS: usize = 32;

/// The physical spans of a memory map that the direct map covers, page-rounded outward
/// (as the page tables map them) and merged: the bound every safe reader of firmware
/// memory checks a whole range against before it hands out a slice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MappedSpans {
    spans: [(u64, u64); MAX_MAPPED_SPANS],
    len: usize,
}

impl MappedSpans {
    /// The direct-mapped spans of `map`. Spans past [`MAX_MAPPED_SPANS`] are dropped
    /// (reads there are refused: never more than what is mapped).
    pub fn of(map: &MemoryMap) -> Self {
        let mut all = [(0u64, 0u64); MAX_MEM_REGIONS];
        let mut n = 0;
        for r in map.regions().iter().filter(|r| r.kind.direct_mapped()) {
            all[n] = (r.start & !0xfff, r.end.next_multiple_of(0x1000));
            n += 1;
        }
        let all = &mut all[..n];
        all.sort_unstable();
        let mut out = MappedSpans {
            spans: [(0, 0); MAX_MAPPED_SPANS],
            len: 0,
        };
        for &(start, end) in all.iter() {
            match out.spans[..out.len].last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ if out.len < MAX_MAPPED_SPANS => {
                    out.spans[out.len] = (start, end);
                    out.len += 1;
                }
                _ => break,
            }
        }
        out
    }

    /// Whether all of `[pa, pa + len)` lies in one mapped span.
    pub fn covers(&self, pa: u64, len: u64) -> bool {
        let Some(end) = pa.checked_add(len) else {
            return false;
        };
        self.spans[..self.len]
            .iter()
            .any(|&(s, e)| s <= pa && end <= e)
    }
}

/// Where the firmware's description of the machine came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Firmware {
    /// s390x: SCLP Read SCP Info (and DIAG 0x500 for the storage limit).
    Sclp,
    /// ACPI, with the physical address of the RSDP.
    Acpi {
        /// Physical address of the RSDP.
        rsdp: u64,
    },
    /// A flattened device tree at this physical address.
    Fdt {
        /// Physical address of the DTB.
        dtb: u64,
    },
    /// Nothing usable was handed over.
    None,
}

/// The window where memory devices (DIMMs, virtio-mem, NVDIMMs) may appear.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HotplugWindow {
    /// First byte of the device-memory region.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

/// Everything the arch crate hands to [`crate::main`].
#[derive(Clone, Debug)]
pub struct BootInfo {
    /// The boot memory map.
    pub memory: MemoryMap,
    /// Highest valid physical address including hotplug space (inclusive), if known.
    pub max_phys_addr: Option<u64>,
    /// The device-memory window, if the machine has one.
    pub hotplug: Option<HotplugWindow>,
    /// The kernel command line (may be empty).
    pub cmdline: &'static str,
    /// The firmware description.
    pub firmware: Firmware,
    /// Physical range of the loaded kernel image, `[start, end)`.
    pub kernel_image: (u64, u64),
    /// Who loaded us, e.g. `"qemu-ipl"` or `"hotmem-boot 0.1 (limine rev 3)"`.
    pub loader: &'static str,
    /// [`crate::Arch::timestamp_ns`] at the first Rust instruction of the kernel.
    pub entry_ns: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(start: u64, end: u64, kind: MemKind) -> MemRegion {
        MemRegion { start, end, kind }
    }

    #[test]
    fn totals_count_ram_kinds_only() {
        let mut map = MemoryMap::new();
        map.push(region(0, 0x9f000, MemKind::Usable));
        map.push(region(0x9f000, 0x100000, MemKind::Reserved));
        map.push(region(0x100000, 0x200000, MemKind::Kernel));
        map.push(region(0x200000, 0x1000_0000, MemKind::Usable));
        map.push(region(0xfee0_0000, 0xfee0_1000, MemKind::Reserved));
        assert_eq!(map.ram_bytes(), 0x9f000 + 0x100000 + 0x1000_0000 - 0x200000);
        assert_eq!(map.bytes_of(MemKind::Reserved), 0x61000 + 0x1000);
        assert_eq!(map.ram_end(), 0x1000_0000);
    }

    #[test]
    fn take_carves_the_start_of_the_largest_usable_span() {
        let mut map = MemoryMap::new();
        map.push(region(0, 0x9f000, MemKind::Usable));
        map.push(region(0x100000, 0x200000, MemKind::Kernel));
        map.push(region(0x200800, 0x1000_0000, MemKind::Usable));
        let ram = map.ram_bytes();
        assert_eq!(map.take(MemKind::Heap, 0x10_0000), Some(0x201000..0x301000));
        assert_eq!(
            map.regions()[2..5],
            [
                region(0x200800, 0x201000, MemKind::Usable),
                region(0x201000, 0x301000, MemKind::Heap),
                region(0x301000, 0x1000_0000, MemKind::Usable),
            ]
        );
        assert_eq!(map.ram_bytes(), ram, "the heap is RAM");
        assert_eq!(map.bytes_of(MemKind::Heap), 0x10_0000);
        let before = map.clone();
        assert_eq!(map.take(MemKind::Heap, 0x1_0000_0000), None);
        assert_eq!(map.regions(), before.regions(), "nothing changed");
    }

    #[test]
    fn mapped_spans_merge_and_leave_out_reserved_and_bad_memory() {
        let mut map = MemoryMap::new();
        map.push(region(0, 0x9f000, MemKind::Usable));
        map.push(region(0x9f000, 0x100000, MemKind::Reserved));
        map.push(region(0x100000, 0x7f00_0000, MemKind::Usable));
        map.push(region(0x7f00_0000, 0x7f00_0800, MemKind::AcpiReclaimable));
        map.push(region(0x7f00_1000, 0x7f00_2000, MemKind::ReservedMapped));
        map.push(region(0x7f00_2000, 0x7f00_3000, MemKind::Bad));
        let m = MappedSpans::of(&map);
        assert!(m.covers(0, 0x9f000));
        assert!(!m.covers(0x9e000, 0x2000), "runs into reserved memory");
        assert!(m.covers(0x7f00_0000, 0x1000), "page-rounded ACPI span");
        assert!(m.covers(0x7eff_f000, 0x3000), "merged across kinds");
        assert!(!m.covers(0x7f00_1000, 0x1001), "into bad memory");
        assert!(!m.covers(u64::MAX - 1, 8), "wraps");
        assert!(!m.covers(0x8000_0000, 1));
    }

    #[test]
    fn empty_spans_are_ignored_and_overflow_is_counted() {
        let mut map = MemoryMap::new();
        map.push(region(5, 5, MemKind::Usable));
        assert!(map.regions().is_empty());
        for i in 0..MAX_MEM_REGIONS as u64 + 3 {
            map.push(region(i * 4096, (i + 1) * 4096, MemKind::Usable));
        }
        assert_eq!((map.regions().len(), map.dropped()), (MAX_MEM_REGIONS, 3));
    }
}
