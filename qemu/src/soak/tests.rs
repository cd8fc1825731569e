//! Host tests of the soak's pure parts: the seeded plans, the counter and heap checks,
//! the two views and their comparison, records and alarms.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::*;
use crate::profile::{GIB, MIB};

#[test]
fn the_generator_is_seeded_and_stays_in_range() {
    let (mut a, mut b) = (Rng::new(7), Rng::new(7));
    let xs: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
    let ys: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
    assert_eq!(xs, ys);
    assert_ne!(Rng::new(8).next_u64(), xs[0]);
    assert_ne!(Rng::new(0).next_u64(), 0);
    let mut r = Rng::new(1);
    let mut seen = BTreeSet::new();
    for _ in 0..1000 {
        let v = r.range(3, 6);
        assert!((3..=6).contains(&v));
        seen.insert(v);
    }
    assert_eq!(seen.len(), 4);
    assert_eq!(r.range(5, 5), 5);
}

#[test]
fn plans_respect_the_geometry() {
    for arch in Arch::ALL {
        let geo = Geometry::new(arch, 2 * MIB, 2 * GIB, false);
        let mut rng = Rng::new(42);
        let (mut dimm, mut vmem, mut partial) = (0, 0, 0);
        for _ in 0..500 {
            let plan = CyclePlan::random(&mut rng, &geo);
            assert!(!plan.dimms.is_empty() || !plan.vmem_grow.is_empty());
            assert!(plan.dimms.len() as u64 <= geo.max_dimms);
            for &d in &plan.dimms {
                assert!(d > 0 && d <= geo.dimm_max && d % geo.memory_block == 0);
            }
            let mut last = 0;
            for &v in &plan.vmem_grow {
                assert!(v > last && v <= geo.vmem_max && v % geo.granule == 0);
                last = v;
            }
            assert!(plan.vmem_partial.is_none() || !plan.vmem_grow.is_empty());
            dimm += usize::from(!plan.dimms.is_empty());
            vmem += usize::from(!plan.vmem_grow.is_empty());
            partial += usize::from(plan.vmem_partial.is_some());
        }
        match arch {
            Arch::S390x => assert_eq!((dimm, vmem), (0, 500)),
            _ => assert!(dimm > 150 && vmem > 150, "{dimm} {vmem}"),
        }
        assert!(partial > 50);
    }
}

#[test]
fn plans_replay_from_the_seed() {
    let geo = Geometry::new(Arch::X86_64, 2 * MIB, 2 * GIB, false);
    let run = |seed| {
        let mut rng = Rng::new(seed);
        (0..20)
            .map(|_| CyclePlan::random(&mut rng, &geo))
            .collect::<Vec<_>>()
    };
    assert_eq!(run(99), run(99));
    assert_ne!(run(99), run(100));
    let plan = CyclePlan {
        dimms: vec![384 * MIB, GIB],
        vmem_grow: vec![650 * MIB, GIB],
        vmem_partial: None,
    };
    assert_eq!(plan.describe(), "dimm 384M+1G + virtio-mem 0->650M->1G");
}

const MEM: &str = "mem\nmem.kernel start=0x0 end=0x10 bytes=16\n\
    mem.heap used=68336 bytes=4194304\n\
    mem.mm managed=255708 free=255700 movable.managed=0 movable.free=0 sections=6 present=393216 memmap.pages=6144 vmemmap.leaves=6144 vmemmap.tables=20\n";

#[test]
fn counters_parse_and_drift_names_the_field() {
    let start = Counters::parse(MEM).unwrap();
    assert_eq!(start.get("free"), Some(255_700));
    assert_eq!(start.get("vmemmap.tables"), Some(20));
    assert_eq!(start.heap_used, 68_336);
    assert_eq!(start.mm.len(), 9);
    assert!(start.drift_from(&start).is_empty());
    let now = Counters::parse(&MEM.replace("tables=20", "tables=21")).unwrap();
    assert_eq!(
        now.drift_from(&start),
        vec!["vmemmap.tables: start 20 now 21"]
    );
    let heap_only = Counters::parse(&MEM.replace("used=68336", "used=70000")).unwrap();
    assert!(heap_only.drift_from(&start).is_empty());
    assert!(Counters::parse("mem.mm state=down\nmem.heap used=1").is_err());
    assert!(start.line().ends_with("vmemmap.tables=20 heap.used=68336"));
}

#[test]
fn heap_may_settle_but_not_climb() {
    let mut w = HeapWatch::new(1000);
    for (cycle, used) in [1000, 1200, 1200, 1100, 1300, 1300, 1300]
        .into_iter()
        .enumerate()
    {
        w.check(cycle as u32 + 1, used).unwrap();
    }
    assert_eq!(
        w.describe(1300),
        "heap.used=1300(start 1000, 2 new highs, the last in cycle 5)"
    );
    assert_eq!(HeapWatch::new(7).describe(7), "heap.used=7");
    assert!(w.check(8, 1000 + HEAP_SLACK + 1).is_err());
    let mut w = HeapWatch::new(1000);
    let climbing: Vec<_> = (1..=HeapWatch::MAX_RISING)
        .map(|i| w.check(i, 1000 + 16 * u64::from(i)))
        .collect();
    assert!(climbing[..climbing.len() - 1].iter().all(Result::is_ok));
    assert!(climbing.last().unwrap().is_err());
    // A leak every other cycle never rises twice in a row, but too often.
    let mut w = HeapWatch::new(1000);
    let verdicts: Vec<bool> = (1..=2 * HeapWatch::MAX_RISES + 2)
        .map(|i| w.check(i, 1000 + 8 * u64::from(i / 2)).is_ok())
        .collect();
    assert!(verdicts[..verdicts.len() - 2].iter().all(|&ok| ok));
    assert!(!verdicts.last().unwrap());
}

const HOTPLUG: &str = "hotplug\n\
    hotplug.range range=0x180000000-0x1a0000000 blocks=4 memmap=altmap altmap.alloc=2048 altmap.align=0 online.pages=129024 offline.pages=0 state=online via=dimm slot=0\n\
    hotplug.range range=0x100000000-0x108000000 blocks=1 memmap=ram altmap.alloc=0 altmap.align=0 online.pages=32768 offline.pages=0 state=online via=virtio-mem device=0\n\
    hotplug.range range=0x108000000-0x110000000 blocks=1 memmap=ram altmap.alloc=0 altmap.align=0 online.pages=1536 offline.pages=31232 state=online via=virtio-mem device=0\n\
    hotplug.summary ranges=3 sources=2 memmap_on_memory=Enabled block.bytes=0x8000000\n\
    hotplug.source name=acpi-mhpd base=0xcf00 slots=4 scans=3 inserts=1 removes=0 ejects=0 refusals=0 notify=sci\n\
    hotplug.slot source=acpi-mhpd slot=0 range=0x180000000-0x1a0000000 node=0 state=online\n\
    virtio-mem dev=0 name=virtio-mem-pci.0 addr=0x100000000 region=0x80000000 usable=0x10000000 block=0x200000 plugged=0x8600000 requested=0x8600000 kernel=0x8600000 units=2 stranded=0 state=ok\n\
    virtio-mem.unit dev=0 range=0x100000000-0x108000000 plugged=0x8000000 steps=64/64 busy=0 state=Live\n\
    virtio-mem.unit dev=0 range=0x108000000-0x110000000 plugged=0x600000 steps=3/64 busy=0 state=Live\n";

fn qemu_json(dimm_addr: u64, vmem_size: u64) -> Value {
    json!([
        {"type": "virtio-mem", "data": {"id": "vm0", "memaddr": 0x1_0000_0000u64,
         "size": vmem_size, "requested-size": vmem_size, "max-size": 0x8000_0000u64,
         "block-size": 0x20_0000, "node": 0, "memdev": "/objects/vmem0"}},
        {"type": "dimm", "data": {"id": "d0", "addr": dimm_addr, "size": 0x2000_0000,
         "slot": 0, "node": 0, "memdev": "/objects/m0", "hotplugged": true, "hotpluggable": true}}
    ])
}

#[test]
fn views_agree_and_every_difference_is_named() {
    let kernel = KernelView::parse(HOTPLUG).unwrap();
    assert_eq!(kernel.ranges.len(), 3);
    assert_eq!(kernel.vmem[0].units.len(), 2);
    assert_eq!(kernel.vmem_range_bytes(0), 0x860_0000);
    assert_eq!(kernel.lines.len(), 9);
    let qemu = QemuView::parse(qemu_json(0x1_8000_0000, 0x860_0000)).unwrap();
    assert_eq!(compare_views(&kernel, &qemu), Vec::<String>::new());

    let moved = QemuView::parse(qemu_json(0x1_a000_0000, 0x860_0000)).unwrap();
    let diffs = compare_views(&kernel, &moved);
    assert_eq!(diffs.len(), 1, "{diffs:?}");
    assert!(diffs[0].starts_with("pc-dimms"), "{diffs:?}");

    let bigger = QemuView::parse(qemu_json(0x1_8000_0000, 0x880_0000)).unwrap();
    let diffs = compare_views(&kernel, &bigger);
    // config plugged, driver count, units, ranges and requested all differ.
    assert_eq!(diffs.len(), 5, "{diffs:?}");

    let empty_kernel = KernelView::parse(
        "hotplug.summary ranges=0 sources=1 memmap_on_memory=Enabled\n\
         virtio-mem dev=0 name=x addr=0x100000000 region=0x80000000 usable=0x0 block=0x200000 plugged=0x0 requested=0x0 kernel=0x0 units=0 stranded=0 state=ok\n",
    )
    .unwrap();
    let empty_qemu = json!([{"type": "virtio-mem", "data": {"id": "vm0",
        "memaddr": 0x1_0000_0000u64, "size": 0, "requested-size": 0,
        "max-size": 0x8000_0000u64, "block-size": 0x20_0000}}]);
    let empty_qemu = QemuView::parse(empty_qemu).unwrap();
    assert!(compare_views(&empty_kernel, &empty_qemu).is_empty());
    assert!(!compare_views(&kernel, &empty_qemu).is_empty());
    assert!(KernelView::parse("nothing").is_err());
}

#[test]
fn records_alarms_and_net_bytes() {
    let r =
        Record::parse("hotplug: online range=0x40000000-0x50000000 pages=65536 free=2").unwrap();
    assert_eq!(
        (r.kind.as_str(), r.start, r.end, r.pages),
        ("online", 0x4000_0000, 0x5000_0000, Some(65536))
    );
    assert!(Record::parse("hotplug.range range=0x0-0x1").is_none());
    // A sub-block part taken offline, then the emptied block removed (its offline
    // record counts nothing more).
    let part = Record::parse("hotplug: offline range=0x48000000-0x50000000 pages=32768").unwrap();
    let empty = Record::parse("hotplug: offline range=0x40000000-0x50000000 pages=0").unwrap();
    let gone = Record::parse("hotplug: remove range=0x40000000-0x50000000 tables.freed=0").unwrap();
    let outside = Record::parse("hotplug: online range=0x90000000-0x98000000 pages=32768").unwrap();
    let window = (0x4000_0000, 0xc000_0000);
    assert_eq!(
        net_bytes(&[r.clone(), part, empty, gone], window),
        0x800_0000
    );
    assert_eq!(
        net_bytes(&[r, outside], (0x4000_0000, 0x5000_0000)),
        0x1000_0000
    );
    assert!(is_alarm(
        "hotmem> hotplug: refuse op=remove range=0x1-0x2 reason=busy"
    ));
    assert!(is_alarm(
        "[    3.100000] WARN  virtio::mem: virtio-mem: stop dev=0 op=shrink"
    ));
    assert!(is_alarm("[    3.100000] ERROR kernel: something"));
    assert!(is_alarm("panic: panicked at x"));
    assert!(!is_alarm("hotplug: online range=0x0-0x200000 pages=1"));
    assert!(!is_alarm("hotplug.source name=acpi-mhpd refusals=0"));
}
