//! virtio-ccw as a virtio-drivers [`Transport`]: every virtio operation is one channel
//! command on the device's subchannel (s390x.md §5.3-§5.5).
//!
//! SET_VIRTIO_REV goes out first, from [`CcwTransport::new`] (revision 2 for READ_STATUS,
//! else 1): any other virtio command before it locks virtio-mem-ccw into legacy mode.
//! Status 0 is VDEV_RESET. Feature words travel little-endian with their index. Queues
//! use the revision-1 SET_VQ layout; notification is DIAG 0x500 subcode 3.
//!
//! Config space has no generation counter on CCW, and the trait reads it through `&self`:
//! [`Transport::read_config_generation`] runs READ_CONF into a cache and bumps a counter
//! whenever the bytes changed; `read_config_space` serves the cache. So a
//! `read_consistent` costs two READ_CONFs and sees one snapshot.

use core::cell::{Cell, RefCell};

use kernel::virtio::virtio_drivers::transport::{
    DeviceStatus, DeviceType, InterruptStatus, Transport,
};
use kernel::virtio::virtio_drivers::{Error, PhysAddr, Result};
use kernel::virtio::zerocopy::{FromBytes, Immutable, IntoBytes};

use super::css::{IoError, Subchannel};
use super::layout::{self, CCW_FLAG_SLI, SenseId, cmd};

/// The largest config space read (virtio-mem has 56 bytes).
const CONFIG_MAX: usize = 256;
/// Queues tracked for `queue_used`.
const MAX_QUEUES: usize = 8;

/// A virtio device on a subchannel.
pub struct CcwTransport {
    sch: Subchannel,
    device_type: DeviceType,
    revision: u16,
    /// The status last written (what revision 1 has instead of READ_STATUS).
    status: Cell<DeviceStatus>,
    queues: [bool; MAX_QUEUES],
    config: RefCell<ConfigCache>,
}

struct ConfigCache {
    bytes: [u8; CONFIG_MAX],
    len: usize,
    generation: u32,
    valid: bool,
}

impl CcwTransport {
    /// Takes the virtio device SENSE ID found on `sch`: SET_VIRTIO_REV before anything
    /// else. `Err` (with the subchannel back) when the device type is unknown or no
    /// revision ≥ 1 is accepted.
    pub fn new(sch: Subchannel, id: SenseId) -> core::result::Result<Self, Subchannel> {
        let Ok(device_type) = DeviceType::try_from(id.cu_model) else {
            return Err(sch);
        };
        let accepted = [2u16, 1].into_iter().find(|&rev| {
            sch.run(cmd::SET_VIRTIO_REV, 0, &layout::virtio_rev(rev), 4, &mut [])
                .is_ok()
        });
        let Some(revision) = accepted else {
            log::error!("ccw: subchannel {:#x}: SET_VIRTIO_REV refused", sch.id());
            return Err(sch);
        };
        log::info!(
            "ccw: virtio subchannel={:#x} type={device_type:?} revision={revision}",
            sch.id()
        );
        Ok(CcwTransport {
            sch,
            device_type,
            revision,
            status: Cell::new(DeviceStatus::empty()),
            queues: [false; MAX_QUEUES],
            config: RefCell::new(ConfigCache {
                bytes: [0; CONFIG_MAX],
                len: 0,
                generation: 0,
                valid: false,
            }),
        })
    }

    /// Runs a command that sends `data`; failures are logged and returned.
    fn write(&self, command: u8, data: &[u8]) -> core::result::Result<(), IoError> {
        self.sch
            .run(command, 0, data, data.len(), &mut [])
            .map(|_| ())
            .inspect_err(|e| self.io_failed(command, e))
    }

    /// Runs a command whose buffer starts as `data` and is read back into `back`.
    fn read(&self, command: u8, data: &[u8], back: &mut [u8]) -> core::result::Result<(), IoError> {
        let count = data.len().max(back.len());
        self.sch
            .run(command, 0, data, count, back)
            .map(|_| ())
            .inspect_err(|e| self.io_failed(command, e))
    }

    fn io_failed(&self, command: u8, e: &IoError) {
        log::error!(
            "ccw: subchannel {:#x} command {command:#04x} failed: {e:?}",
            self.sch.id()
        );
    }

    /// READ_CONF into the cache; bumps the generation when the bytes changed.
    fn refresh_config(&self) -> u32 {
        let mut fresh = [0u8; CONFIG_MAX];
        let result = self
            .sch
            .run(cmd::READ_CONF, CCW_FLAG_SLI, &[], CONFIG_MAX, &mut fresh);
        let mut cache = self.config.borrow_mut();
        match result {
            Ok(len) => {
                if !cache.valid || cache.len != len || cache.bytes[..len] != fresh[..len] {
                    cache.bytes = fresh;
                    cache.len = len;
                    cache.valid = true;
                    cache.generation = cache.generation.wrapping_add(1);
                }
            }
            Err(e) => self.io_failed(cmd::READ_CONF, &e),
        }
        cache.generation
    }
}

impl Transport for CcwTransport {
    fn device_type(&self) -> DeviceType {
        self.device_type
    }

    fn read_device_features(&mut self) -> u64 {
        let mut features = 0u64;
        for index in 0..2u8 {
            let mut back = [0u8; 5];
            if self
                .read(cmd::READ_FEAT, &layout::feature_desc(0, index), &mut back)
                .is_ok()
            {
                features |= u64::from(layout::feature_word(&back)) << (32 * u32::from(index));
            }
        }
        features
    }

    fn write_driver_features(&mut self, driver_features: u64) {
        for index in 0..2u8 {
            let word = (driver_features >> (32 * u32::from(index))) as u32;
            let _ = self.write(cmd::WRITE_FEAT, &layout::feature_desc(word, index));
        }
    }

    fn max_queue_size(&mut self, queue: u16) -> u32 {
        let mut back = [0u8; 4];
        match self.read(cmd::READ_VQ_CONF, &layout::vq_conf(queue), &mut back) {
            Ok(()) => u32::from(layout::vq_num_max(&back)),
            Err(_) => 0,
        }
    }

    fn notify(&mut self, queue: u16) {
        let rc = super::css::virtio_notify(self.sch.id(), queue);
        if rc < 0 {
            log::error!(
                "ccw: subchannel {:#x}: notify queue {queue} returned {rc}",
                self.sch.id()
            );
        }
    }

    fn get_status(&self) -> DeviceStatus {
        if self.revision < 2 {
            return self.status.get();
        }
        let mut back = [0u8; 1];
        match self.read(cmd::READ_STATUS, &[0], &mut back) {
            Ok(()) => DeviceStatus::from_bits_retain(u32::from(back[0])),
            Err(_) => self.status.get(),
        }
    }

    fn set_status(&mut self, status: DeviceStatus) {
        let ok = if status.is_empty() {
            self.queues = [false; MAX_QUEUES];
            self.config.borrow_mut().valid = false;
            self.sch.run(cmd::VDEV_RESET, 0, &[], 0, &mut []).is_ok()
        } else {
            self.write(cmd::WRITE_STATUS, &[status.bits() as u8])
                .is_ok()
        };
        if ok {
            self.status.set(status);
        }
    }

    fn set_guest_page_size(&mut self, _guest_page_size: u32) {}

    fn requires_legacy_layout(&self) -> bool {
        false
    }

    fn queue_set(
        &mut self,
        queue: u16,
        size: u32,
        descriptors: PhysAddr,
        driver_area: PhysAddr,
        device_area: PhysAddr,
    ) {
        let info = layout::set_vq(queue, size as u16, descriptors, driver_area, device_area);
        if self.write(cmd::SET_VQ, &info).is_ok()
            && let Some(used) = self.queues.get_mut(usize::from(queue))
        {
            *used = true;
        }
    }

    fn queue_unset(&mut self, queue: u16) {
        let _ = self.write(cmd::SET_VQ, &layout::set_vq(queue, 0, 0, 0, 0));
        if let Some(used) = self.queues.get_mut(usize::from(queue)) {
            *used = false;
        }
    }

    fn queue_used(&mut self, queue: u16) -> bool {
        self.queues
            .get(usize::from(queue))
            .copied()
            .unwrap_or(false)
    }

    fn ack_interrupt(&mut self) -> InterruptStatus {
        // Polled: no indicators are registered, so there is nothing to acknowledge.
        InterruptStatus::empty()
    }

    fn read_config_generation(&self) -> u32 {
        self.refresh_config()
    }

    fn read_config_space<T: FromBytes + IntoBytes>(&self, offset: usize) -> Result<T> {
        if !self.config.borrow().valid {
            self.refresh_config();
        }
        let cache = self.config.borrow();
        let end = offset
            .checked_add(size_of::<T>())
            .ok_or(Error::ConfigSpaceTooSmall)?;
        if !cache.valid || end > cache.len {
            return Err(Error::ConfigSpaceTooSmall);
        }
        T::read_from_bytes(&cache.bytes[offset..end]).map_err(|_| Error::ConfigSpaceTooSmall)
    }

    fn write_config_space<T: IntoBytes + Immutable>(
        &mut self,
        offset: usize,
        value: T,
    ) -> Result<()> {
        if !self.config.borrow().valid {
            self.refresh_config();
        }
        let mut cache = self.config.borrow_mut();
        let end = offset + size_of::<T>();
        if !cache.valid || end > cache.len {
            return Err(Error::ConfigSpaceTooSmall);
        }
        cache.bytes[offset..end].copy_from_slice(value.as_bytes());
        let len = cache.len;
        let bytes = cache.bytes;
        drop(cache);
        self.write(cmd::WRITE_CONF, &bytes[..len])
            .map_err(|_| Error::IoError)
    }
}
