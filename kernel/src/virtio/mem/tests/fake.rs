//! A fake virtio-mem device that behaves as QEMU's does (request validation, plugged
//! size, UNPLUG_ALL shrinking the usable region, FEATURES_OK refused without
//! UNPLUGGED_INACCESSIBLE) and reads the split ring from host memory (the test DMA pool
//! maps physical = virtual). It can garble whole config reads on demand.

use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::RefCell;

use virtio_drivers::transport::{DeviceStatus, DeviceType, InterruptStatus, Transport};
use virtio_drivers::{Error, PhysAddr};
use zerocopy::{FromBytes, Immutable, IntoBytes};

use super::MIB;
use crate::virtio::mem::Request;
use crate::virtio::mem::config::MemConfig;
use crate::virtio::mem::request::REQUEST_LEN;

pub(super) struct Device {
    pub(super) config: MemConfig,
    /// Plugged block addresses.
    plugged: Vec<u64>,
    pub(super) offered: u64,
    accepted: u64,
    pub(super) status: DeviceStatus,
    queue: Option<(u64, u64, u64)>,
    last_avail: u16,
    used_idx: u16,
    pub(super) requests: Vec<Request>,
    /// Whole config reads still to come back with a bogus `requested_size` (as a read
    /// that lands on another register would).
    pub(super) garbled_reads: u32,
    garbling: bool,
}

#[derive(Clone)]
pub(super) struct Fake(pub(super) Rc<RefCell<Device>>);

impl Fake {
    pub(super) fn new(config: MemConfig) -> Fake {
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

    pub(super) fn set_requested(&self, bytes: u64) {
        let mut d = self.0.borrow_mut();
        d.config.requested_size = bytes;
        // QEMU: usable = min(region, requested + 256 MiB extent); it never shrinks here.
        let usable = (bytes + 256 * MIB).min(d.config.region_size);
        d.config.usable_region_size = d.config.usable_region_size.max(usable);
    }

    pub(super) fn plugged(&self) -> u64 {
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
