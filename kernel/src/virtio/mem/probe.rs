//! Bringing a virtio-mem device up: features, the request queue, the config read and
//! validated, UNPLUG_ALL of what an earlier life plugged and the mode chosen; and
//! [`ProbeError`], why a device was not taken.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use virtio_drivers::transport::{DeviceStatus, Transport};

use super::config::{ConfigError, MemConfig};
use super::plan::{Geometry, Granularity};
use super::request::{Request, Response};
use super::units::Units;
use super::{Features, VirtioMem, send};
use crate::virtio::request_queue::RequestQueue;

/// Why a device was not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeError {
    /// The transport failed (queue set-up, config access, DMA pool empty).
    Transport(virtio_drivers::Error),
    /// The device does not offer VERSION_1.
    NoVersion1,
    /// The device did not accept the features (FEATURES_OK did not stick).
    FeaturesRefused,
    /// The config fails the checks of [`MemConfig::validate`].
    Config(ConfigError),
    /// UNPLUG_ALL of memory an earlier life plugged was not ACKed.
    UnplugAll(Response),
}

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProbeError::Transport(e) => write!(f, "reason=transport detail={e:?}"),
            ProbeError::NoVersion1 => write!(f, "reason=no-version-1"),
            ProbeError::FeaturesRefused => write!(f, "reason=features-refused"),
            ProbeError::Config(e) => write!(f, "{e}"),
            ProbeError::UnplugAll(r) => write!(f, "reason=unplug-all response={r}"),
        }
    }
}

impl From<virtio_drivers::Error> for ProbeError {
    fn from(e: virtio_drivers::Error) -> Self {
        ProbeError::Transport(e)
    }
}
impl<T: Transport> VirtioMem<T> {
    /// Initialises the device behind `transport` as device `index` (named `name` in
    /// records) for the kernel's memory block and pageblock. Logs one
    /// `virtio-mem: error` line and fails the device on any refusal.
    pub fn probe(
        index: u32,
        name: String,
        transport: T,
        granularity: Granularity,
    ) -> Result<Self, ProbeError> {
        let mut transport = transport;
        let result = Self::init(index, name, &mut transport, granularity);
        match result {
            Ok(parts) => Ok(Self::assemble(parts, transport, granularity)),
            Err(e) => {
                log::error!("virtio-mem: error dev={index} {e}; device ignored");
                let failed = transport.get_status() | DeviceStatus::FAILED;
                transport.set_status(failed);
                Err(e)
            }
        }
    }

    fn init(
        index: u32,
        name: String,
        transport: &mut T,
        granularity: Granularity,
    ) -> Result<Parts, ProbeError> {
        let offered = transport.read_device_features();
        if offered & Features::VERSION_1.bits() == 0 {
            return Err(ProbeError::NoVersion1);
        }
        let wanted = Features::VERSION_1 | Features::UNPLUGGED_INACCESSIBLE;
        let features = transport.begin_init(wanted);
        if !transport.get_status().contains(DeviceStatus::FEATURES_OK) {
            return Err(ProbeError::FeaturesRefused);
        }
        let mut queue = RequestQueue::new(transport, 0)?;
        transport.finish_init();
        let config = MemConfig::read(transport)?;
        config.validate().map_err(ProbeError::Config)?;
        log::info!(
            "virtio-mem: probe dev={index} name={name} features={:#x} offered={offered:#x} addr={:#x} region={:#x} usable={:#x} block={:#x} plugged={:#x} requested={:#x}",
            features.bits(),
            config.addr,
            config.region_size,
            config.usable_region_size,
            config.block_size,
            config.plugged_size,
            config.requested_size
        );
        if config.plugged_size != 0 {
            let (response, _) = send(&mut queue, transport, Request::UnplugAll)?;
            if response != Response::Ack {
                return Err(ProbeError::UnplugAll(response));
            }
            log::info!(
                "virtio-mem: unplug-all dev={index} plugged={:#x} (left by an earlier boot)",
                config.plugged_size
            );
        }
        let geo = Geometry::new(&config, granularity);
        log::info!(
            "virtio-mem: mode dev={index} mode={} unit={:#x} step={:#x}",
            geo.mode.name(),
            geo.unit,
            geo.step
        );
        Ok(Parts {
            index,
            name,
            queue,
            config,
            geo,
            features,
        })
    }

    fn assemble(parts: Parts, transport: T, granularity: Granularity) -> Self {
        VirtioMem {
            index: parts.index,
            name: parts.name,
            transport,
            queue: parts.queue,
            config: parts.config,
            granularity,
            geo: parts.geo,
            features: parts.features,
            units: Units::new(),
            stranded: Vec::new(),
            last_requested: parts.config.requested_size,
            grow_stopped: false,
            shrink_stopped: false,
            unplug_all_failed: false,
            dead: false,
        }
    }
}

/// What `init` builds before the transport moves into the driver.
struct Parts {
    index: u32,
    name: String,
    queue: RequestQueue,
    config: MemConfig,
    geo: Geometry,
    features: Features,
}
