//! Unit planning: which range to plug next when the host wants more, and which unit to
//! give back when it wants less.
//!
//! A unit is what the driver plugs with one request and hands to the engine as one Add.
//! Whole memory blocks (one section each, memory-block aligned) are preferred, because the
//! engine then puts their memmap inside them (memmap_on_memory). When fewer than a memory
//! block's bytes are wanted, or no whole block fits in the usable region, the unit is a
//! run of device blocks (at least 2 MiB, the engine's granule) that stops at the next
//! memory-block boundary. A unit never takes the plugged total past `requested`.

use core::ops::Range;

use crate::hotplug::engine::HOTPLUG_ALIGN;

use super::config::MemConfig;

/// The fixed shape of a device's region and the kernel's memory-block size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Region start.
    pub addr: u64,
    /// Region size.
    pub region_size: u64,
    /// Device block size (power of two).
    pub block_size: u64,
    /// The engine's memory block (section) size (power of two).
    pub memory_block: u64,
}

impl Geometry {
    /// The geometry of a validated config.
    pub fn new(config: &MemConfig, memory_block: u64) -> Self {
        Geometry {
            addr: config.addr,
            region_size: config.region_size,
            block_size: config.block_size,
            memory_block,
        }
    }

    /// The smallest unit: a device block, but at least the engine's 2 MiB.
    pub fn granule(&self) -> u64 {
        self.block_size.max(HOTPLUG_ALIGN)
    }

    /// The preferred unit: a memory block, or a device block when that is larger.
    pub fn block_unit(&self) -> u64 {
        self.memory_block.max(self.block_size)
    }
}

/// The next range to plug, given the usable size, the host's request and the ranges
/// plugged already (in any order; sorted here, in place). `None` when nothing more is
/// wanted or fits. The lowest free place wins; the search jumps over plugged ranges, so
/// it costs O(n log n) for n ranges (a large device plugs thousands of units).
pub fn next_plug(
    geo: &Geometry,
    usable: u64,
    requested: u64,
    taken: &mut [Range<u64>],
) -> Option<Range<u64>> {
    let plugged: u64 = taken.iter().map(|r| r.end - r.start).sum();
    let want = requested.checked_sub(plugged).filter(|&w| w > 0)?;
    let limit = geo.addr + usable.min(geo.region_size);
    taken.sort_unstable_by_key(|r| r.start);
    let taken = &*taken;
    // The end of a plugged range overlapping `[start, start + len)`, if any.
    let clash = |start: u64, len: u64| -> Option<u64> {
        let i = taken.partition_point(|t| t.end <= start);
        taken
            .get(i)
            .filter(|t| t.start < start + len)
            .map(|t| t.end)
    };
    // The lowest `align`-aligned free `[start, start + len)` at or after `from`.
    let first_free = |from: u64, len: u64, align: u64| -> Option<u64> {
        let mut start = from.next_multiple_of(align);
        while start + len <= limit {
            match clash(start, len) {
                None => return Some(start),
                Some(end) => start = end.next_multiple_of(align),
            }
        }
        None
    };

    let unit = geo.block_unit();
    if want >= unit
        && let Some(start) = first_free(geo.addr, unit, unit)
    {
        return Some(start..start + unit);
    }

    let granule = geo.granule();
    let want = want / granule * granule;
    if want == 0 {
        return None;
    }
    let max_len = want.min(u64::from(u16::MAX) * geo.block_size / granule * granule);
    let start = first_free(geo.addr, granule, granule)?;
    let mut end = start + granule;
    while end - start < max_len
        && !end.is_multiple_of(geo.memory_block)
        && end + granule <= limit
        && clash(end, granule).is_none()
    {
        end += granule;
    }
    Some(start..end)
}

/// Which unit to give back when `over` bytes too many are plugged: the most recently
/// added (last in `units`) that is no larger than `over`, so the plugged total never
/// drops below the request. `None` when no unit fits.
pub fn next_unplug(units: &[Range<u64>], over: u64) -> Option<usize> {
    units.iter().rposition(|r| r.end - r.start <= over)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    /// s390x: a 2 GiB device at 1 GiB, 2 MiB blocks, 256 MiB sections.
    fn s390x() -> Geometry {
        Geometry {
            addr: GIB,
            region_size: 2 * GIB,
            block_size: 2 * MIB,
            memory_block: 256 * MIB,
        }
    }

    /// Plugs until the plan says stop; returns the units in order.
    fn grow(geo: &Geometry, usable: u64, requested: u64, units: &mut Vec<Range<u64>>) {
        while let Some(r) = next_plug(geo, usable, requested, units) {
            assert!(units.len() < 10_000, "runaway plan");
            units.push(r);
        }
    }

    fn total(units: &[Range<u64>]) -> u64 {
        units.iter().map(|r| r.end - r.start).sum()
    }

    #[test]
    fn one_gib_is_four_memory_blocks() {
        let geo = s390x();
        let mut units = Vec::new();
        grow(&geo, GIB + 256 * MIB, GIB, &mut units);
        assert_eq!(
            units,
            [
                0x4000_0000..0x5000_0000,
                0x5000_0000..0x6000_0000,
                0x6000_0000..0x7000_0000,
                0x7000_0000..0x8000_0000
            ]
        );
    }

    #[test]
    fn a_remainder_is_one_run_of_device_blocks() {
        let geo = s390x();
        let mut units = Vec::new();
        grow(&geo, 300 * MIB + 256 * MIB, 300 * MIB, &mut units);
        assert_eq!(units, [0x4000_0000..0x5000_0000, 0x5000_0000..0x52c0_0000]);
        // Growing on later takes whole blocks first, then fills the hole to the boundary.
        grow(&geo, 2 * GIB, 812 * MIB, &mut units);
        assert_eq!(
            units[2..],
            [0x6000_0000..0x7000_0000, 0x7000_0000..0x8000_0000]
        );
        grow(&geo, 2 * GIB, GIB, &mut units);
        assert_eq!(units.len(), 5);
        assert_eq!(units[4], 0x52c0_0000..0x6000_0000);
        assert_eq!(total(&units), GIB);
    }

    #[test]
    fn never_beyond_usable_nor_requested() {
        let geo = s390x();
        let mut units = Vec::new();
        // A device that claims more is requested than is usable: plug up to usable only.
        grow(&geo, 100 * MIB, GIB, &mut units);
        assert_eq!(units.len(), 1);
        assert_eq!(units[0], 0x4000_0000..0x4640_0000);
        assert_eq!(next_plug(&geo, 0, GIB, &mut []), None, "nothing usable");
        assert_eq!(next_plug(&geo, GIB, 0, &mut []), None, "nothing requested");
        assert_eq!(
            next_plug(
                &geo,
                GIB,
                256 * MIB,
                &mut [Range {
                    start: GIB,
                    end: GIB + 256 * MIB
                }]
            ),
            None
        );
    }

    #[test]
    fn small_blocks_use_the_engine_granule_and_odd_leftovers_stay_unplugged() {
        let geo = Geometry {
            block_size: MIB,
            ..s390x()
        };
        let mut units = Vec::new();
        grow(&geo, GIB, 5 * MIB, &mut units);
        assert_eq!(units.len(), 1, "the last 1 MiB cannot be a 2 MiB unit");
        assert_eq!(units[0], GIB..GIB + 4 * MIB);
        assert_eq!(Request::plug(&units[0], MIB).map(|_| ()), Some(()));
    }

    #[test]
    fn device_blocks_larger_than_a_memory_block_are_the_unit() {
        let geo = Geometry {
            block_size: 512 * MIB,
            memory_block: 128 * MIB,
            addr: 2 * GIB,
            region_size: 2 * GIB,
        };
        let mut units = Vec::new();
        grow(&geo, 2 * GIB, GIB, &mut units);
        assert_eq!(
            units,
            [2 * GIB..2 * GIB + 512 * MIB, 2 * GIB + 512 * MIB..3 * GIB]
        );
    }

    #[test]
    fn unaligned_region_start_falls_back_to_device_blocks() {
        // A region that starts mid-section (x86 DIMM window layouts can do this).
        let geo = Geometry {
            addr: GIB + 64 * MIB,
            region_size: GIB,
            block_size: 2 * MIB,
            memory_block: 128 * MIB,
        };
        let mut units = Vec::new();
        grow(&geo, GIB, 256 * MIB, &mut units);
        assert_eq!(
            units,
            [
                GIB + 128 * MIB..GIB + 256 * MIB,
                GIB + 256 * MIB..GIB + 384 * MIB
            ]
        );
        // The 64 MiB below the first section boundary is only good for device blocks.
        grow(&geo, GIB, 320 * MIB, &mut units);
        assert_eq!(units[2], GIB + 64 * MIB..GIB + 128 * MIB);
        assert_eq!(total(&units), 320 * MIB);
    }

    #[test]
    fn unplug_takes_the_newest_unit_that_fits() {
        let units = [GIB..GIB + 256 * MIB, GIB + 256 * MIB..GIB + 300 * MIB];
        assert_eq!(next_unplug(&units, 300 * MIB), Some(1));
        assert_eq!(next_unplug(&units, 256 * MIB), Some(1));
        assert_eq!(next_unplug(&units[..1], 256 * MIB), Some(0));
        assert_eq!(
            next_unplug(&units[..1], 255 * MIB),
            None,
            "never below requested"
        );
        assert_eq!(next_unplug(&[], GIB), None);
    }

    #[test]
    fn random_requests_stay_inside_the_rules() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _ in 0..300 {
            let geo = Geometry {
                addr: GIB * (1 + rnd(4)) + 2 * MIB * rnd(3),
                region_size: 2 * MIB * (1 + rnd(1024)),
                block_size: 2 * MIB,
                memory_block: (128 * MIB) << rnd(2),
            };
            let requested = 2 * MIB * rnd(geo.region_size / (2 * MIB) + 1);
            let usable = (requested + 256 * MIB).min(geo.region_size);
            let mut units = Vec::new();
            grow(&geo, usable, requested, &mut units);
            assert_eq!(total(&units), requested, "{geo:?}");
            for (i, u) in units.iter().enumerate() {
                assert!(u.start >= geo.addr && u.end <= geo.addr + usable);
                assert!(u.start.is_multiple_of(2 * MIB) && u.end.is_multiple_of(2 * MIB));
                let whole =
                    u.start.is_multiple_of(geo.memory_block) && u.end - u.start == geo.memory_block;
                let inside_block = u.start / geo.memory_block == (u.end - 1) / geo.memory_block;
                assert!(whole || inside_block, "{u:x?} crosses a memory block");
                for v in &units[i + 1..] {
                    assert!(u.end <= v.start || v.end <= u.start, "overlap");
                }
            }
        }
    }

    use super::super::request::Request;
}
