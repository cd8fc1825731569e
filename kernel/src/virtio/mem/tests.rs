//! The driver against a fake virtio-mem device that behaves as QEMU's does (request
//! validation, plugged size, UNPLUG_ALL shrinking the usable region) and reads the split
//! ring from host memory (the test DMA pool maps physical = virtual).

use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::RefCell;

use virtio_drivers::transport::{DeviceStatus, DeviceType, InterruptStatus, Transport};
use virtio_drivers::{Error, PhysAddr};
use zerocopy::{FromBytes, Immutable, IntoBytes};

use super::config::{ConfigError, MemConfig};
use super::request::REQUEST_LEN;
use super::*;
use crate::hotplug::engine::HotplugError;
use crate::hotplug::event::Event;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const SECTION: u64 = 256 * MIB;
/// s390x-like: 256 MiB memory blocks, 1 MiB pageblocks (2 MiB device blocks: SBM).
const GRAN: Granularity = Granularity {
    memory_block: SECTION,
    pageblock: MIB,
};
/// 2 MiB steps per 256 MiB unit.
const STEPS: u64 = SECTION / (2 * MIB);

struct Device {
    config: MemConfig,
    /// Plugged block addresses.
    plugged: Vec<u64>,
    offered: u64,
    accepted: u64,
    status: DeviceStatus,
    queue: Option<(u64, u64, u64)>,
    last_avail: u16,
    used_idx: u16,
    requests: Vec<Request>,
    /// Whole config reads still to come back with a bogus `requested_size` (as a read
    /// that lands on another register would).
    garbled_reads: u32,
    garbling: bool,
}

#[derive(Clone)]
struct Fake(Rc<RefCell<Device>>);

impl Fake {
    fn new(config: MemConfig) -> Fake {
        Fake(Rc::new(RefCell::new(Device {
            config,
            plugged: Vec::new(),
            offered: 0x1_0000_0000 | 0x3000_0003,
            accepted: 0,
            status: DeviceStatus::empty(),
            queue: None,
            last_avail: 0,
            used_idx: 0,
            requests: Vec::new(),
            garbled_reads: 0,
            garbling: false,
        })))
    }

    fn set_requested(&self, bytes: u64) {
        let mut d = self.0.borrow_mut();
        d.config.requested_size = bytes;
        // QEMU: usable = min(region, requested + 256 MiB extent); it never shrinks here.
        let usable = (bytes + 256 * MIB).min(d.config.region_size);
        d.config.usable_region_size = d.config.usable_region_size.max(usable);
    }

    fn plugged(&self) -> u64 {
        self.0.borrow().config.plugged_size
    }
}

fn peek<const N: usize>(addr: u64) -> [u8; N] {
    // SAFETY: `addr` is inside the test DMA pool (physical = virtual) or a request buffer
    // the driver placed there.
    unsafe { core::ptr::read_volatile(addr as *const [u8; N]) }
}

fn poke(addr: u64, bytes: &[u8]) {
    // SAFETY: as in `peek`; the driver is waiting for the device, so nothing else writes.
    unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), addr as *mut u8, bytes.len()) }
}

impl Device {
    fn handle(&mut self, request: &[u8; REQUEST_LEN]) -> u16 {
        let ty = u16::from_le_bytes([request[0], request[1]]);
        let addr = u64::from_le_bytes(request[8..16].try_into().unwrap());
        let nb = u64::from(u16::from_le_bytes([request[16], request[17]]));
        let c = self.config;
        let blocks: Vec<u64> = (0..nb).map(|i| addr + i * c.block_size).collect();
        let inside = nb > 0
            && addr.is_multiple_of(c.block_size)
            && addr >= c.addr
            && addr + nb * c.block_size <= c.addr + c.usable_region_size;
        let (ack, nack, error) = (0, 1, 3);
        match ty {
            0 => self.requests.push(Request::Plug {
                addr,
                nb_blocks: nb as u16,
            }),
            1 => self.requests.push(Request::Unplug {
                addr,
                nb_blocks: nb as u16,
            }),
            2 => self.requests.push(Request::UnplugAll),
            _ => {}
        }
        let response = match ty {
            0 if !inside => error,
            0 if blocks.iter().any(|b| self.plugged.contains(b)) => error,
            0 if c.plugged_size + nb * c.block_size > c.requested_size => nack,
            0 => {
                self.plugged.extend(&blocks);
                ack
            }
            1 if !inside || !blocks.iter().all(|b| self.plugged.contains(b)) => error,
            1 => {
                self.plugged.retain(|b| !blocks.contains(b));
                ack
            }
            2 => {
                self.plugged.clear();
                if c.requested_size == 0 {
                    self.config.usable_region_size = 0;
                }
                ack
            }
            _ => error,
        };
        self.config.plugged_size = self.plugged.len() as u64 * c.block_size;
        response
    }

    /// Takes every new chain off the available ring (QEMU does it during the notify).
    fn process(&mut self) {
        let (desc, avail, used) = self.queue.expect("queue set");
        let avail_idx = u16::from_le_bytes(peek(avail + 2));
        while self.last_avail != avail_idx {
            let slot = u64::from(self.last_avail % 8);
            let head = u16::from_le_bytes(peek(avail + 4 + 2 * slot));
            let d = |i: u16| -> (u64, u32, u16, u16) {
                let b: [u8; 16] = peek(desc + 16 * u64::from(i));
                (
                    u64::from_le_bytes(b[0..8].try_into().unwrap()),
                    u32::from_le_bytes(b[8..12].try_into().unwrap()),
                    u16::from_le_bytes([b[12], b[13]]),
                    u16::from_le_bytes([b[14], b[15]]),
                )
            };
            let (req_addr, req_len, req_flags, next) = d(head);
            let (resp_addr, resp_len, resp_flags, _) = d(next);
            assert_eq!(
                (req_len as usize, req_flags, resp_flags),
                (REQUEST_LEN, 1, 2)
            );
            assert!(resp_len >= 10);
            let response = self.handle(&peek(req_addr));
            let mut resp = [0u8; 10];
            resp[0..2].copy_from_slice(&response.to_le_bytes());
            poke(resp_addr, &resp);
            let elem = used + 4 + 8 * u64::from(self.used_idx % 8);
            poke(elem, &u32::from(head).to_le_bytes());
            poke(elem + 4, &10u32.to_le_bytes());
            self.used_idx = self.used_idx.wrapping_add(1);
            poke(used + 2, &self.used_idx.to_le_bytes());
            self.last_avail = self.last_avail.wrapping_add(1);
        }
    }

    fn config_bytes(&self) -> [u8; 56] {
        let c = &self.config;
        let mut b = [0u8; 56];
        b[0..8].copy_from_slice(&c.block_size.to_le_bytes());
        for (o, v) in [
            (16, c.addr),
            (24, c.region_size),
            (32, c.usable_region_size),
            (40, c.plugged_size),
            (48, c.requested_size),
        ] {
            b[o..o + 8].copy_from_slice(&v.to_le_bytes());
        }
        b
    }
}

impl Transport for Fake {
    fn device_type(&self) -> DeviceType {
        DeviceType::Memory
    }
    fn read_device_features(&mut self) -> u64 {
        self.0.borrow().offered
    }
    fn write_driver_features(&mut self, driver_features: u64) {
        self.0.borrow_mut().accepted = driver_features;
    }
    fn max_queue_size(&mut self, _queue: u16) -> u32 {
        128
    }
    fn notify(&mut self, _queue: u16) {
        self.0.borrow_mut().process();
    }
    fn get_status(&self) -> DeviceStatus {
        self.0.borrow().status
    }
    fn set_status(&mut self, status: DeviceStatus) {
        let mut d = self.0.borrow_mut();
        // QEMU refuses FEATURES_OK without UNPLUGGED_INACCESSIBLE when it is offered.
        let refuse = d.offered & 2 != 0 && d.accepted & 2 == 0;
        d.status = if refuse {
            status - DeviceStatus::FEATURES_OK
        } else {
            status
        };
    }
    fn set_guest_page_size(&mut self, _guest_page_size: u32) {}
    fn requires_legacy_layout(&self) -> bool {
        false
    }
    fn queue_set(&mut self, _q: u16, size: u32, desc: PhysAddr, avail: PhysAddr, used: PhysAddr) {
        assert_eq!(size, 8);
        self.0.borrow_mut().queue = Some((desc, avail, used));
    }
    fn queue_unset(&mut self, _queue: u16) {
        self.0.borrow_mut().queue = None;
    }
    fn queue_used(&mut self, _queue: u16) -> bool {
        self.0.borrow().queue.is_some()
    }
    fn ack_interrupt(&mut self) -> InterruptStatus {
        InterruptStatus::empty()
    }
    fn read_config_generation(&self) -> u32 {
        0
    }
    fn read_config_space<T: FromBytes + IntoBytes>(&self, offset: usize) -> Result<T, Error> {
        let mut d = self.0.borrow_mut();
        if offset == 0 {
            d.garbling = d.garbled_reads > 0;
            d.garbled_reads = d.garbled_reads.saturating_sub(1);
        }
        let mut bytes = d.config_bytes();
        if d.garbling {
            // The high word of requested_size (offset 48) reads as 3: 12 GiB and more.
            bytes[52..56].copy_from_slice(&3u32.to_le_bytes());
        }
        let end = offset + size_of::<T>();
        T::read_from_bytes(bytes.get(offset..end).ok_or(Error::ConfigSpaceTooSmall)?)
            .map_err(|_| Error::ConfigSpaceTooSmall)
    }
    fn write_config_space<T: IntoBytes + Immutable>(
        &mut self,
        _o: usize,
        _v: T,
    ) -> Result<(), Error> {
        Err(Error::Unsupported)
    }
}

/// A 2 GiB device at 1 GiB with 2 MiB blocks, nothing requested.
fn config() -> MemConfig {
    MemConfig {
        block_size: 2 * MIB,
        node_id: 0,
        addr: GIB,
        region_size: 2 * GIB,
        usable_region_size: 0,
        plugged_size: 0,
        requested_size: 0,
    }
}

fn probe(fake: &Fake) -> VirtioMem<Fake> {
    VirtioMem::probe(0, "virtio-mem-fake.0".into(), fake.clone(), GRAN).expect("probe")
}

fn poll(dev: &mut VirtioMem<Fake>) -> Vec<Event> {
    let mut out = Vec::new();
    dev.poll(&mut out);
    out
}

fn complete_all(dev: &mut VirtioMem<Fake>, events: &[Event], result: Result<(), HotplugError>) {
    for e in events {
        dev.complete(e, &result);
    }
}

/// What the events ask, compactly: `(kind, range, online part)`.
fn kinds(events: &[Event]) -> Vec<(&'static str, Range<u64>)> {
    events
        .iter()
        .map(|e| match e {
            Event::Add { range, .. } => ("add", range.clone()),
            Event::AddPartial { range, online, .. } => {
                assert_eq!(range.start, online.start, "online part starts the block");
                ("add-partial", online.clone())
            }
            Event::OnlinePart { range, .. } => ("online", range.clone()),
            Event::OfflinePart { range, .. } => ("offline", range.clone()),
            Event::Remove { range, .. } => ("remove", range.clone()),
            Event::AddDevice { range, .. } => panic!("unexpected {range:x?}"),
        })
        .collect()
}

/// Polls and completes everything with success until the device settles; returns the
/// events in order.
fn settle(dev: &mut VirtioMem<Fake>) -> Vec<Event> {
    let mut all = Vec::new();
    for _ in 0..64 {
        let events = poll(dev);
        if events.is_empty() {
            return all;
        }
        complete_all(dev, &events, Ok(()));
        all.extend(events);
    }
    panic!("the driver never settles");
}

fn unit(i: u64) -> u64 {
    GIB + i * SECTION
}

#[test]
fn sub_blocks_grow_and_shrink_to_the_exact_request() {
    let _pool = crate::dma::test_pool();
    let fake = Fake::new(config());
    let mut dev = probe(&fake);
    assert_eq!(
        dev.features(),
        Features::VERSION_1 | Features::UNPLUGGED_INACCESSIBLE
    );
    assert_eq!(dev.geometry().mode, plan::Mode::Sbm);
    assert!(poll(&mut dev).is_empty(), "nothing requested");

    fake.set_requested(300 * MIB);
    let adds = poll(&mut dev);
    assert_eq!(
        kinds(&adds),
        [
            ("add-partial", unit(0)..unit(1)),
            ("add-partial", unit(1)..unit(1) + 44 * MIB)
        ]
    );
    assert_eq!(
        fake.plugged(),
        300 * MIB,
        "plugged before the adds went out"
    );
    complete_all(&mut dev, &adds, Ok(()));
    assert!(poll(&mut dev).is_empty(), "settled");
    assert_eq!(dev.plugged_bytes(), 300 * MIB);

    // Down to 130 MiB: the partial block goes first, then the top of the full one.
    fake.set_requested(130 * MIB);
    let offs = poll(&mut dev);
    assert_eq!(
        kinds(&offs),
        [
            ("offline", unit(1)..unit(1) + 44 * MIB),
            ("offline", unit(0) + 130 * MIB..unit(1))
        ]
    );
    assert_eq!(
        fake.plugged(),
        300 * MIB,
        "UNPLUG only after the engine offlined"
    );
    complete_all(&mut dev, &offs, Ok(()));
    assert_eq!(fake.plugged(), 130 * MIB);
    let rest = settle(&mut dev);
    assert_eq!(
        kinds(&rest),
        [("remove", unit(1)..unit(2))],
        "the empty block goes"
    );
    assert_eq!(
        dev.units().collect::<Vec<_>>(),
        [(unit(0)..unit(1), 130 * MIB)]
    );

    // Up to 200 MiB fills the same block; then to 0 and the usable region shrinks.
    fake.set_requested(200 * MIB);
    assert_eq!(
        kinds(&settle(&mut dev)),
        [("online", unit(0) + 130 * MIB..unit(0) + 200 * MIB)]
    );
    assert_eq!(fake.plugged(), 200 * MIB);
    fake.set_requested(0);
    assert_eq!(
        kinds(&settle(&mut dev)),
        [
            ("offline", unit(0)..unit(0) + 200 * MIB),
            ("remove", unit(0)..unit(1))
        ]
    );
    assert_eq!(fake.plugged(), 0);
    let d = fake.0.borrow();
    assert_eq!(
        d.requests.last(),
        Some(&Request::UnplugAll),
        "usable shrunk at the end"
    );
    assert_eq!(d.config.usable_region_size, 0);
}

#[test]
fn a_busy_sub_block_stays_until_the_request_changes() {
    let _pool = crate::dma::test_pool();
    let fake = Fake::new(config());
    let mut dev = probe(&fake);
    fake.set_requested(SECTION);
    settle(&mut dev);

    fake.set_requested(0);
    let offs = poll(&mut dev);
    assert_eq!(kinds(&offs), [("offline", unit(0)..unit(1))]);
    let busy_pfn = (unit(0) + 100 * 2 * MIB + 4096) / 4096;
    complete_all(&mut dev, &offs, Err(HotplugError::Busy { pfn: busy_pfn }));
    assert_eq!(fake.plugged(), SECTION, "still plugged");
    // Everything around the busy sub-block goes; it stays.
    let around = poll(&mut dev);
    assert_eq!(
        kinds(&around),
        [
            ("offline", unit(0) + 101 * 2 * MIB..unit(1)),
            ("offline", unit(0)..unit(0) + 100 * 2 * MIB)
        ]
    );
    complete_all(&mut dev, &around, Ok(()));
    assert_eq!(fake.plugged(), 2 * MIB);
    for _ in 0..3 {
        assert!(poll(&mut dev).is_empty(), "no retry loop");
    }
    fake.set_requested(2 * MIB); // a new request that is already met
    assert!(poll(&mut dev).is_empty());
    fake.set_requested(0); // and another: retried
    let again = settle(&mut dev);
    assert_eq!(
        kinds(&again),
        [
            ("offline", unit(0) + 100 * 2 * MIB..unit(0) + 101 * 2 * MIB),
            ("remove", unit(0)..unit(1))
        ]
    );
    assert_eq!(fake.plugged(), 0);
}

#[test]
fn a_failed_add_or_online_is_unplugged_and_growth_waits() {
    let _pool = crate::dma::test_pool();
    let fake = Fake::new(config());
    let mut dev = probe(&fake);
    fake.set_requested(300 * MIB);
    let adds = poll(&mut dev);
    assert_eq!(adds.len(), 2);
    dev.complete(&adds[0], &Ok(()));
    dev.complete(&adds[1], &Err(HotplugError::Overlap { at: unit(1) }));
    assert_eq!(fake.plugged(), SECTION, "the failed block went back");
    assert!(poll(&mut dev).is_empty(), "no plug/fail loop");
    assert_eq!(dev.units().count(), 1);

    // Shrink a little, then grow back: the online of the refilled part fails.
    fake.set_requested(SECTION - 4 * MIB);
    settle(&mut dev);
    fake.set_requested(SECTION);
    let on = poll(&mut dev);
    assert_eq!(kinds(&on), [("online", unit(1) - 4 * MIB..unit(1))]);
    complete_all(&mut dev, &on, Err(HotplugError::Busy { pfn: 0 }));
    assert_eq!(fake.plugged(), SECTION - 4 * MIB, "unplugged again");
    assert!(poll(&mut dev).is_empty(), "growth waits for a new request");
}

#[test]
fn big_blocks_are_added_and_removed_whole() {
    let _pool = crate::dma::test_pool();
    let fake = Fake::new(MemConfig {
        block_size: SECTION,
        ..config()
    });
    let mut dev = probe(&fake);
    assert_eq!(dev.geometry().mode, plan::Mode::Bbm);
    fake.set_requested(2 * SECTION);
    let adds = poll(&mut dev);
    assert_eq!(
        kinds(&adds),
        [("add", unit(0)..unit(1)), ("add", unit(1)..unit(2))]
    );
    complete_all(&mut dev, &adds, Ok(()));
    fake.set_requested(SECTION);
    let removes = poll(&mut dev);
    assert_eq!(
        kinds(&removes),
        [("remove", unit(1)..unit(2))],
        "newest first"
    );
    assert_eq!(fake.plugged(), 2 * SECTION, "UNPLUG only after the remove");
    complete_all(
        &mut dev,
        &removes,
        Err(HotplugError::Busy {
            pfn: unit(1) / 4096,
        }),
    );
    assert_eq!(fake.plugged(), 2 * SECTION);
    // As Linux's BBM unplug: a busy big block is skipped and the next one tried.
    let next = poll(&mut dev);
    assert_eq!(kinds(&next), [("remove", unit(0)..unit(1))]);
    complete_all(&mut dev, &next, Ok(()));
    assert_eq!(fake.plugged(), SECTION);
    assert!(
        poll(&mut dev).is_empty(),
        "only the busy one is left: no retry loop"
    );
    fake.set_requested(0);
    settle(&mut dev);
    assert_eq!(fake.plugged(), 0);
    assert_eq!(dev.units().count(), 0);
}

#[test]
fn probe_unplugs_what_an_earlier_life_left() {
    let _pool = crate::dma::test_pool();
    let fake = Fake::new(MemConfig {
        plugged_size: 64 * MIB,
        usable_region_size: 512 * MIB,
        ..config()
    });
    let _dev = probe(&fake);
    assert_eq!(fake.0.borrow().requests, [Request::UnplugAll]);
    assert_eq!(fake.plugged(), 0);
}

#[test]
fn a_garbled_config_read_is_read_again_before_the_device_is_given_up() {
    let _pool = crate::dma::test_pool();
    let fake = Fake::new(config());
    let mut dev = probe(&fake);
    // Bad reads, then two good ones that agree: the resize goes ahead.
    fake.0.borrow_mut().garbled_reads = CONFIG_READS - 2;
    fake.set_requested(GIB);
    let adds = poll(&mut dev);
    assert_eq!(adds.len(), 4);
    complete_all(&mut dev, &adds, Ok(()));
    assert_eq!(fake.plugged(), GIB);
    // One more and no two good reads agree in time: the device is given up, nothing
    // more is plugged or unplugged.
    fake.0.borrow_mut().garbled_reads = CONFIG_READS - 1;
    fake.set_requested(0);
    assert!(poll(&mut dev).is_empty());
    assert!(poll(&mut dev).is_empty(), "stays given up");
    assert_eq!(fake.plugged(), GIB);
}

#[test]
fn hostile_or_old_devices_are_refused() {
    let _pool = crate::dma::test_pool();
    let bad = Fake::new(MemConfig {
        block_size: 3 * MIB,
        ..config()
    });
    let e = VirtioMem::probe(0, "bad".into(), bad.clone(), GRAN).err();
    assert_eq!(e, Some(ProbeError::Config(ConfigError::BlockSize(3 * MIB))));
    assert!(bad.0.borrow().status.contains(DeviceStatus::FAILED));

    let legacy = Fake::new(config());
    legacy.0.borrow_mut().offered = 0x3000_0002;
    let e = VirtioMem::probe(0, "legacy".into(), legacy, GRAN).err();
    assert_eq!(e, Some(ProbeError::NoVersion1));
}

#[test]
fn describe_reports_device_and_kernel_views() {
    let _pool = crate::dma::test_pool();
    let fake = Fake::new(config());
    let mut dev = probe(&fake);
    fake.set_requested(130 * MIB);
    settle(&mut dev);
    let mut text = alloc::string::String::new();
    dev.describe(&mut text).unwrap();
    assert!(
        text.starts_with(
            "virtio-mem dev=0 name=virtio-mem-fake.0 mode=sbm unit=0x10000000 step=0x200000 addr=0x40000000 region=0x80000000 usable=0x18200000 block=0x200000 plugged=0x8200000 requested=0x8200000 kernel=0x8200000 units=1 stranded=0"
        ),
        "{text}"
    );
    let steps = 130 / 2;
    assert!(
        text.contains(&alloc::format!(
            "virtio-mem.unit dev=0 range=0x40000000-0x50000000 plugged=0x8200000 steps={steps}/{STEPS} busy=0 state=Live"
        )),
        "{text}"
    );
}
