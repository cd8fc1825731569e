//! [`RequestQueue`]: a split virtqueue driven one request at a time (virtio-mem's
//! request/response pattern), in little-endian byte order on every arch.
//!
//! Why not virtio-drivers' `VirtQueue`: in 0.13 it stores descriptors and ring indices in
//! native byte order. VERSION_1 devices read them little-endian, so on big-endian s390x
//! QEMU rejects every chain ("virtio: bogus descriptor or out of resources"). This queue
//! is small: descriptor table, available and used rings, request and response buffers
//! all live in one DMA page; the wait is bounded, after which the queue is given up for
//! good (its page leaked, since the device may still write it).

use core::mem::ManuallyDrop;
use core::sync::atomic::{Ordering, fence};

use virtio_drivers::Error;
use virtio_drivers::transport::Transport;

use crate::dma::DmaPages;

/// Ring entries (the device offers 128; one chain of two is ever in flight).
pub const RING_SIZE: u16 = 8;

/// Page layout: descriptor table (16 bytes each), available ring, used ring, buffers.
const DESC_AT: usize = 0;
const AVAIL_AT: usize = 128;
const USED_AT: usize = 256;
const REQUEST_AT: usize = 1024;
const RESPONSE_AT: usize = 2048;
/// Largest request or response.
pub const MAX_BUFFER: usize = 1024;

/// Descriptor flags.
const DESC_F_NEXT: u16 = 1;
const DESC_F_WRITE: u16 = 2;

/// Polls of the used ring before a request counts as lost (QEMU answers during the
/// notification itself under TCG; KVM within microseconds).
const MAX_SPINS: u64 = 100_000_000;

/// A virtqueue with one request in flight at most.
pub struct RequestQueue {
    page: ManuallyDrop<DmaPages>,
    index: u16,
    avail_idx: u16,
    used_idx: u16,
    lost: bool,
}

impl RequestQueue {
    /// Sets up queue `index` on `transport` (between FEATURES_OK and DRIVER_OK).
    pub fn new<T: Transport>(transport: &mut T, index: u16) -> Result<Self, Error> {
        if transport.queue_used(index) {
            return Err(Error::AlreadyUsed);
        }
        if transport.max_queue_size(index) < u32::from(RING_SIZE) {
            return Err(Error::InvalidParam);
        }
        let page = DmaPages::new(1).ok_or(Error::DmaError)?;
        let phys = page.phys();
        transport.queue_set(
            index,
            u32::from(RING_SIZE),
            phys + DESC_AT as u64,
            phys + AVAIL_AT as u64,
            phys + USED_AT as u64,
        );
        Ok(RequestQueue {
            page: ManuallyDrop::new(page),
            index,
            avail_idx: 0,
            used_idx: 0,
            lost: false,
        })
    }

    /// Sends `request` (device-readable) with a `response.len()`-byte device-writable
    /// buffer, waits for the device, and copies the response out. Returns the bytes the
    /// device says it wrote.
    pub fn call<T: Transport>(
        &mut self,
        transport: &mut T,
        request: &[u8],
        response: &mut [u8],
    ) -> Result<u32, Error> {
        if self.lost {
            return Err(Error::NotReady);
        }
        let sizes = request.len().max(response.len());
        if request.is_empty() || response.is_empty() || sizes > MAX_BUFFER {
            return Err(Error::InvalidParam);
        }
        let phys = self.page.phys();
        {
            let bytes = self.page.bytes_mut();
            bytes[REQUEST_AT..REQUEST_AT + request.len()].copy_from_slice(request);
            bytes[RESPONSE_AT..RESPONSE_AT + response.len()].fill(0);
        }
        let req_addr = phys + REQUEST_AT as u64;
        let resp_addr = phys + RESPONSE_AT as u64;
        self.write_desc(0, req_addr, request.len() as u32, DESC_F_NEXT, 1);
        self.write_desc(1, resp_addr, response.len() as u32, DESC_F_WRITE, 0);
        let slot = usize::from(self.avail_idx % RING_SIZE);
        self.write_u16(AVAIL_AT + 4 + 2 * slot, 0);
        self.avail_idx = self.avail_idx.wrapping_add(1);
        fence(Ordering::SeqCst);
        self.write_u16(AVAIL_AT + 2, self.avail_idx);
        fence(Ordering::SeqCst);
        transport.notify(self.index);
        let mut spins = 0u64;
        while self.read_u16(USED_AT + 2) == self.used_idx {
            spins += 1;
            if spins == MAX_SPINS {
                log::error!("virtio: queue {} lost a request; giving it up", self.index);
                self.lost = true;
                return Err(Error::IoError);
            }
            core::hint::spin_loop();
        }
        fence(Ordering::SeqCst);
        let elem = USED_AT + 4 + 8 * usize::from(self.used_idx % RING_SIZE);
        let (id, len) = (self.read_u32(elem), self.read_u32(elem + 4));
        self.used_idx = self.used_idx.wrapping_add(1);
        if id != 0 {
            log::error!("virtio: queue {} used unknown chain {id}", self.index);
            return Err(Error::WrongToken);
        }
        response.copy_from_slice(&self.page.bytes()[RESPONSE_AT..RESPONSE_AT + response.len()]);
        Ok(len)
    }

    fn write_desc(&mut self, i: usize, addr: u64, len: u32, flags: u16, next: u16) {
        let at = DESC_AT + 16 * i;
        let bytes = self.page.bytes_mut();
        bytes[at..at + 8].copy_from_slice(&addr.to_le_bytes());
        bytes[at + 8..at + 12].copy_from_slice(&len.to_le_bytes());
        bytes[at + 12..at + 14].copy_from_slice(&flags.to_le_bytes());
        bytes[at + 14..at + 16].copy_from_slice(&next.to_le_bytes());
    }

    fn write_u16(&mut self, offset: usize, value: u16) {
        assert!(offset + 2 <= self.page.len());
        // SAFETY: inside the page this queue owns; volatile because the device reads it.
        unsafe {
            core::ptr::write_volatile(
                self.page.as_ptr().add(offset).cast::<[u8; 2]>(),
                value.to_le_bytes(),
            );
        }
    }

    fn read_u16(&self, offset: usize) -> u16 {
        assert!(offset + 2 <= self.page.len());
        // SAFETY: inside the page this queue owns; volatile because the device writes it.
        let b =
            unsafe { core::ptr::read_volatile(self.page.as_ptr().add(offset).cast::<[u8; 2]>()) };
        u16::from_le_bytes(b)
    }

    fn read_u32(&self, offset: usize) -> u32 {
        assert!(offset + 4 <= self.page.len());
        // SAFETY: as in `read_u16`.
        let b =
            unsafe { core::ptr::read_volatile(self.page.as_ptr().add(offset).cast::<[u8; 4]>()) };
        u32::from_le_bytes(b)
    }
}

impl Drop for RequestQueue {
    fn drop(&mut self) {
        if self.lost {
            return;
        }
        // SAFETY: dropped exactly once, here; no request is in flight (`call` always
        // waits for the device unless it marked the queue lost).
        unsafe { ManuallyDrop::drop(&mut self.page) };
    }
}
