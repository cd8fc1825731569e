//! The planner against Linux's rules: mode and sizes, units inside the region, exact
//! totals in sub-block mode, and the unplug order.

use super::*;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

fn config(addr: u64, region: u64, block: u64) -> MemConfig {
    MemConfig {
        block_size: block,
        addr,
        region_size: region,
        ..MemConfig::default()
    }
}

/// x86_64 / aarch64: 128 MiB memory blocks, 2 MiB pageblocks.
const X86: Granularity = Granularity {
    memory_block: 128 * MIB,
    pageblock: 2 * MIB,
};
/// s390x: 256 MiB memory blocks, 1 MiB pageblocks.
const S390: Granularity = Granularity {
    memory_block: 256 * MIB,
    pageblock: MIB,
};

/// Applies plans as the driver would once every event completed, until none is left;
/// then checks the invariants. Returns the plugged bytes.
fn grow(geo: &Geometry, units: &mut Units, usable: u64, requested: u64) -> u64 {
    for _ in 0..100_000 {
        let want = (requested.saturating_sub(plugged(geo, units)) / geo.step) as usize;
        let Some(p) = next_plug(geo, units, usable, want) else {
            break;
        };
        assert!(p.count > 0 && p.count <= want, "{p:?} for {want}");
        if !units.contains_key(&p.unit) {
            assert!(p.new_unit, "{p:?}");
            let new = Unit::new(
                UnitState::Live,
                alloc::vec![Step::Unplugged; geo.steps_per_unit()],
            );
            units.try_insert(p.unit, new).expect("heap");
        }
        units
            .update(p.unit, |unit| {
                for s in &unit.steps()[p.first..p.first + p.count] {
                    assert_eq!(*s, Step::Unplugged, "plugging a plugged step: {p:?}");
                }
                unit.set(p.first..p.first + p.count, Step::Online);
            })
            .expect("just recorded");
    }
    check(geo, units, usable);
    plugged(geo, units)
}

fn shrink(geo: &Geometry, units: &mut Units, requested: u64) -> Vec<Unplug> {
    let mut done = Vec::new();
    for _ in 0..100_000 {
        let over = (plugged(geo, units).saturating_sub(requested) / geo.step) as usize;
        let Some(u) = next_unplug(units, over) else {
            break;
        };
        let empty = units
            .update(u.unit, |unit| {
                for s in &unit.steps()[u.first..u.first + u.count] {
                    assert_eq!(*s, Step::Online, "unplugging a step not online: {u:?}");
                }
                unit.set(u.first..u.first + u.count, Step::Unplugged);
                unit.is_empty()
            })
            .expect("planned unit");
        if empty {
            units.remove(&u.unit);
        }
        done.push(u);
    }
    done
}

/// Plugged bytes counted step by step, checked against the units' running total.
fn plugged(geo: &Geometry, units: &Units) -> u64 {
    let counted = units
        .values()
        .map(|u| u.steps().iter().filter(|s| s.plugged()).count())
        .sum::<usize>();
    assert_eq!(units.plugged(), counted, "the running total");
    counted as u64 * geo.step
}

fn check(geo: &Geometry, units: &Units, usable: u64) {
    let end = geo.addr + usable.min(geo.region_size);
    for &start in units.keys() {
        assert!(start.is_multiple_of(geo.unit), "{start:#x}");
        assert!(start >= geo.addr && start + geo.unit <= end, "{start:#x}");
    }
}

#[test]
fn modes_follow_the_sub_block_size_against_the_memory_block() {
    let g = Geometry::new(&config(4 * GIB, 2 * GIB, 2 * MIB), X86);
    assert_eq!((g.mode, g.unit, g.step), (Mode::Sbm, 128 * MIB, 2 * MIB));
    assert_eq!(g.steps_per_unit(), 64);
    let g = Geometry::new(&config(GIB, 2 * GIB, MIB), S390);
    assert_eq!((g.mode, g.unit, g.step), (Mode::Sbm, 256 * MIB, MIB));
    assert_eq!(g.steps_per_unit(), 256);
    // A device block below a pageblock: sub-blocks are pageblocks.
    let g = Geometry::new(&config(4 * GIB, 2 * GIB, 4096), X86);
    assert_eq!((g.mode, g.step), (Mode::Sbm, 2 * MIB));
    // A device block of a memory block or more: big blocks.
    let g = Geometry::new(&config(4 * GIB, 2 * GIB, 128 * MIB), X86);
    assert_eq!((g.mode, g.unit, g.step), (Mode::Bbm, 128 * MIB, 128 * MIB));
    let g = Geometry::new(&config(4 * GIB, 2 * GIB, 512 * MIB), X86);
    assert_eq!((g.mode, g.unit, g.step), (Mode::Bbm, 512 * MIB, 512 * MIB));
}

#[test]
fn only_whole_units_inside_the_region_and_usable_part_are_used() {
    // A region from 4 GiB + 64 MiB: the first partial memory block is never used.
    let g = Geometry::new(&config(4 * GIB + 64 * MIB, GIB, 2 * MIB), X86);
    let units: Vec<u64> = g.units(GIB).collect();
    assert_eq!(units.first(), Some(&(4 * GIB + 128 * MIB)));
    assert_eq!(units.len(), 7, "the tail 64 MiB is a partial block too");
    assert_eq!(
        g.units(200 * MIB).count(),
        1,
        "usable ends inside the second block"
    );
    assert_eq!(g.units(0).count(), 0);
}

#[test]
fn sub_block_mode_reaches_130m_and_1026m_and_shrinks_to_2m_and_0_exactly() {
    for (gran, block) in [(X86, 2 * MIB), (S390, MIB)] {
        let g = Geometry::new(&config(4 * GIB, 4 * GIB, block), gran);
        let mut units = Units::new();
        for target in [130 * MIB, 1026 * MIB] {
            let usable = (target + 256 * MIB).next_multiple_of(block);
            assert_eq!(grow(&g, &mut units, usable, target), target, "{gran:?}");
            assert_eq!(units.len() as u64, target.div_ceil(gran.memory_block));
        }
        shrink(&g, &mut units, 2 * MIB);
        assert_eq!(plugged(&g, &units), 2 * MIB, "{gran:?}");
        assert_eq!(units.len(), 1);
        let (&start, unit) = units.iter().next().unwrap();
        assert_eq!(start, 4 * GIB, "the lowest block is the last to go");
        let online: Vec<usize> = (0..unit.steps().len())
            .filter(|&i| unit.steps()[i] == Step::Online)
            .collect();
        assert_eq!(
            online,
            (0..(2 * MIB / g.step) as usize).collect::<Vec<_>>(),
            "unplugged from the end"
        );
        shrink(&g, &mut units, 0);
        assert!(units.is_empty());
    }
}

#[test]
fn partly_plugged_blocks_are_filled_first_and_emptied_first() {
    let g = Geometry::new(&config(4 * GIB, 4 * GIB, 2 * MIB), X86);
    let mut units = Units::new();
    grow(&g, &mut units, 2 * GIB, 300 * MIB);
    // 128 + 128 + 44: the third block is partial.
    let third = 4 * GIB + 256 * MIB;
    assert_eq!(units[&third].plugged(), 22);
    // Shrinking by 30 MiB takes it from the partial block, from its end.
    let done = shrink(&g, &mut units, 270 * MIB);
    assert_eq!(
        done,
        [Unplug {
            unit: third,
            first: 7,
            count: 15
        }]
    );
    // Growing again fills the hole in the partial block before a new block.
    let p = next_plug(&g, &units, 2 * GIB, 100).unwrap();
    assert_eq!(
        (p.unit, p.first, p.count, p.new_unit),
        (third, 7, 57, false)
    );
    // Shrinking more than the partial block holds: the partial block first (all of it),
    // then the highest full block, then the next from its end.
    let done = shrink(&g, &mut units, 100 * MIB);
    assert_eq!(
        done,
        [
            Unplug {
                unit: third,
                first: 0,
                count: 7
            },
            Unplug {
                unit: 4 * GIB + 128 * MIB,
                first: 0,
                count: 64
            },
            Unplug {
                unit: 4 * GIB,
                first: 50,
                count: 14
            },
        ]
    );
    assert_eq!(plugged(&g, &units), 100 * MIB);
}

#[test]
fn busy_steps_are_skipped_and_split_the_run() {
    let g = Geometry::new(&config(4 * GIB, 4 * GIB, 2 * MIB), X86);
    let mut units = Units::new();
    grow(&g, &mut units, 2 * GIB, 128 * MIB);
    units
        .update(4 * GIB, |u| u.set_one(60, Step::Busy))
        .unwrap();
    let u = next_unplug(&units, 64).unwrap();
    assert_eq!(
        (u.first, u.count),
        (61, 3),
        "the run above the busy step first"
    );
    units
        .update(4 * GIB, |u| u.set(61..64, Step::Unplugged))
        .unwrap();
    let u = next_unplug(&units, 61).unwrap();
    assert_eq!((u.first, u.count), (0, 60));
    units
        .update(4 * GIB, |u| u.set(0..60, Step::Unplugged))
        .unwrap();
    assert_eq!(next_unplug(&units, 10), None, "only the busy step is left");
}

#[test]
fn big_block_mode_plugs_and_unplugs_whole_units_newest_first() {
    let g = Geometry::new(&config(4 * GIB, 4 * GIB, 512 * MIB), X86);
    let mut units = Units::new();
    assert_eq!(
        grow(&g, &mut units, 4 * GIB, GIB + 256 * MIB),
        GIB,
        "whole units only"
    );
    assert_eq!(
        units.keys().copied().collect::<Vec<_>>(),
        [4 * GIB, 4 * GIB + 512 * MIB]
    );
    let done = shrink(&g, &mut units, 512 * MIB);
    assert_eq!(
        done,
        [Unplug {
            unit: 4 * GIB + 512 * MIB,
            first: 0,
            count: 1
        }]
    );
}

#[test]
fn random_requests_end_exactly_on_the_request_inside_the_rules() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    for _ in 0..200 {
        let gran = if rnd(2) == 0 { X86 } else { S390 };
        let block = gran.pageblock << rnd(2);
        let addr = GIB * (1 + rnd(4)) + gran.memory_block * rnd(3);
        let region = gran.memory_block * (1 + rnd(16));
        let g = Geometry::new(&config(addr, region, block), gran);
        let mut units = Units::new();
        for _ in 0..6 {
            let requested = g.step * rnd(region / g.step + 1);
            let usable = region;
            if requested > plugged(&g, &units) {
                grow(&g, &mut units, usable, requested);
            } else {
                shrink(&g, &mut units, requested);
            }
            assert_eq!(plugged(&g, &units), requested, "{g:?}");
            check(&g, &units, usable);
        }
    }
}
