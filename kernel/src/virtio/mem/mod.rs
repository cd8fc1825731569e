//! The virtio-mem driver (device ID 24), generic over the transport, as a hotplug event
//! source.
//!
//! Probe: reset, negotiate VERSION_1 (+ UNPLUGGED_INACCESSIBLE when offered; ACPI_PXM is
//! not taken), one request queue, DRIVER_OK, read and validate the config (a hostile one
//! costs one error line and the device), UNPLUG_ALL whatever an earlier life plugged, and
//! choose sub-block or big-block mode as Linux does ([`plan`]).
//!
//! Poll: re-read the config. Growing, PLUG the next run of sub-blocks (or big block) and,
//! once the device ACKed, ask the engine to add its memory block with just that part
//! online, or to online the part in a block added before. Shrinking, ask the engine to
//! take the next run offline (refused if a page is busy: that sub-block is then left
//! alone until `requested_size` changes) and UNPLUG it once it is; a memory block with
//! nothing plugged left is removed. In big-block mode the engine removes the whole unit
//! before its UNPLUG. A failed add or online is unplugged again and growing pauses until
//! the request changes, as it does after a refused PLUG. With nothing left and nothing
//! requested, UNPLUG_ALL shrinks the usable region back to zero.
//!
//! Records (through `log`, target `virtio::mem`): `virtio-mem: probe dev=N ...`,
//! `virtio-mem: mode dev=N mode=sbm|bbm unit=U step=S`, `virtio-mem: plug dev=N
//! range=A-B blocks=K`, `virtio-mem: unplug dev=N range=A-B blocks=K`, `virtio-mem:
//! unplug-all dev=N`, `virtio-mem: stop dev=N op=grow|shrink requested=R plugged=P
//! reason=...`, `virtio-mem: error dev=N ...`.

pub mod config;
pub mod plan;
pub mod request;
mod resize;
pub mod units;

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;

use virtio_drivers::transport::{DeviceStatus, Transport};

use self::config::{ConfigError, MemConfig};
use self::plan::{Geometry, Granularity, Step};
use self::request::{BlockState, RESPONSE_LEN, Request, Response};
use self::units::Units;
use super::request_queue::RequestQueue;
use crate::hotplug::engine::HotplugError;
use crate::hotplug::event::{Event, EventSource, Via};

/// Most events one poll emits, so the shell stays responsive during a large resize.
const BATCH: usize = 16;
/// Config reads [`VirtioMem::refresh`] makes for a change to settle before it gives
/// the device up.
const CONFIG_READS: u32 = 4;

bitflags::bitflags! {
    /// The feature bits this driver knows.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Features: u64 {
        /// The config's node_id is valid (not negotiated: one node here).
        const ACPI_PXM = 1 << 0;
        /// Unplugged memory must not be touched; QEMU refuses FEATURES_OK without it.
        const UNPLUGGED_INACCESSIBLE = 1 << 1;
        /// The modern (virtio 1.x) interface.
        const VERSION_1 = 1 << 32;
    }
}

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

/// One virtio-mem device.
pub struct VirtioMem<T: Transport> {
    index: u32,
    name: String,
    transport: T,
    queue: RequestQueue,
    config: MemConfig,
    granularity: Granularity,
    geo: Geometry,
    features: Features,
    /// Added (or being added) units by start address.
    units: Units,
    /// Plugged in the device but in no unit (an UNPLUG failed, then the unit went).
    stranded: Vec<Range<u64>>,
    /// The request the stop flags below refer to; a new one clears them.
    last_requested: u64,
    grow_stopped: bool,
    shrink_stopped: bool,
    unplug_all_failed: bool,
    dead: bool,
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

    /// The features in use.
    pub fn features(&self) -> Features {
        self.features
    }

    /// The geometry (mode, unit and step sizes).
    pub fn geometry(&self) -> Geometry {
        self.geo
    }

    /// The units added (or on their way) and the bytes plugged in each, ascending.
    pub fn units(&self) -> impl Iterator<Item = (Range<u64>, u64)> + '_ {
        self.units.iter().map(|(&start, u)| {
            (
                start..start + self.geo.unit,
                u.plugged() as u64 * self.geo.step,
            )
        })
    }

    /// Bytes plugged as the driver counts them (units and stranded ranges).
    pub fn plugged_bytes(&self) -> u64 {
        let in_units = self.units.plugged() as u64;
        in_units * self.geo.step + self.stranded.iter().map(|r| r.end - r.start).sum::<u64>()
    }

    fn via(&self) -> Via {
        Via::VirtioMem { device: self.index }
    }

    /// Re-reads the config; a failure or a changed geometry ends the device.
    /// Reads the config. An unchanged config is taken at once; a changed one only once
    /// two reads in a row agree, validate and keep the geometry — a single read can
    /// return another register's value (seen under TCG while the memory map changes) —
    /// and the device is given up after [`CONFIG_READS`] reads without that.
    fn refresh(&mut self) -> bool {
        let mut previous = None;
        let mut problem = Unsettled::NoAgreement;
        for attempt in 1..=CONFIG_READS {
            let config = match MemConfig::read(&self.transport) {
                Ok(c) => c,
                Err(e) => return self.fail(format_args!("reason=config-read detail={e:?}")),
            };
            if config == self.config {
                return true;
            }
            let checked = config.validate().map_err(Unsettled::Config).and_then(|()| {
                (Geometry::new(&config, self.granularity) == self.geo)
                    .then_some(())
                    .ok_or(Unsettled::GeometryChanged)
            });
            match checked {
                Ok(()) if previous == Some(config) => {
                    self.config = config;
                    return true;
                }
                Ok(()) => previous = Some(config),
                Err(e) => {
                    log::warn!(
                        "virtio-mem: config re-read dev={} attempt={attempt} {e}",
                        self.index
                    );
                    problem = e;
                    previous = None;
                }
            }
        }
        self.fail(format_args!("{problem} reads={CONFIG_READS}"))
    }

    fn fail(&mut self, why: fmt::Arguments<'_>) -> bool {
        log::error!(
            "virtio-mem: error dev={} {why}; device ignored from now on",
            self.index
        );
        self.dead = true;
        false
    }

    /// With no unit left and nothing requested, UNPLUG_ALL shrinks the usable region
    /// (and unplugs whatever stayed stranded).
    fn settle(&mut self) {
        if self.config.usable_region_size == 0 || self.unplug_all_failed {
            return;
        }
        match self.request(Request::UnplugAll) {
            Some(Response::Ack) => {
                log::info!("virtio-mem: unplug-all dev={}", self.index);
                self.stranded.clear();
            }
            other => {
                log::warn!(
                    "virtio-mem: refused dev={} unplug-all response={other:?}",
                    self.index
                );
                self.unplug_all_failed = true;
            }
        }
    }

    fn stop(&mut self, op: &str, reason: &str) {
        let requested = self.config.requested_size;
        log::warn!(
            "virtio-mem: stop dev={} op={op} requested={requested:#x} plugged={:#x} reason={reason} (retried when requested-size changes)",
            self.index,
            self.plugged_bytes()
        );
        match op {
            "grow" => self.grow_stopped = true,
            _ => self.shrink_stopped = true,
        }
    }

    /// Sends one request; `None` (and a dead device) when the queue failed.
    fn request(&mut self, request: Request) -> Option<Response> {
        match send(&mut self.queue, &mut self.transport, request) {
            Ok((response, _)) => Some(response),
            Err(e) => {
                self.fail(format_args!("reason=queue request={request} detail={e:?}"));
                None
            }
        }
    }
}

/// Why a changed config was not taken (no heap: the reason is kept as a value).
#[derive(Clone, Copy, Debug)]
enum Unsettled {
    /// No two reads agreed.
    NoAgreement,
    /// A read failed validation.
    Config(ConfigError),
    /// A read described another region or block size.
    GeometryChanged,
}

impl fmt::Display for Unsettled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unsettled::NoAgreement => write!(f, "reason=unsettled"),
            Unsettled::Config(e) => write!(f, "{e}"),
            Unsettled::GeometryChanged => write!(f, "reason=geometry-changed"),
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

fn send<T: Transport>(
    queue: &mut RequestQueue,
    transport: &mut T,
    request: Request,
) -> Result<(Response, BlockState), virtio_drivers::Error> {
    let mut response = [0u8; RESPONSE_LEN];
    queue.call(transport, &request.encode(), &mut response)?;
    Ok(request::decode_response(&response))
}

impl<T: Transport> EventSource for VirtioMem<T> {
    fn name(&self) -> &str {
        &self.name
    }

    fn poll(&mut self, out: &mut Vec<Event>) {
        if self.dead || !self.refresh() {
            return;
        }
        let requested = self.config.requested_size;
        if requested != self.last_requested {
            self.last_requested = requested;
            self.grow_stopped = false;
            self.shrink_stopped = false;
            self.unplug_all_failed = false;
            self.forget_busy();
        }
        let plugged = self.plugged_bytes();
        if requested > plugged {
            self.grow(out);
            return;
        }
        self.remove_empty(out);
        if self.units.is_empty() && requested == 0 {
            self.settle();
        } else if requested < plugged {
            self.shrink(out);
        }
    }

    fn complete(&mut self, event: &Event, result: &Result<(), HotplugError>) {
        if event.via() == self.via() {
            self.completed(event, result);
        }
    }

    fn describe(&self, out: &mut dyn fmt::Write) -> fmt::Result {
        let c = MemConfig::read(&self.transport).unwrap_or(self.config);
        writeln!(
            out,
            "virtio-mem dev={} name={} mode={} unit={:#x} step={:#x} addr={:#x} region={:#x} usable={:#x} block={:#x} plugged={:#x} requested={:#x} kernel={:#x} units={} stranded={} state={}",
            self.index,
            self.name,
            self.geo.mode.name(),
            self.geo.unit,
            self.geo.step,
            c.addr,
            c.region_size,
            c.usable_region_size,
            c.block_size,
            c.plugged_size,
            c.requested_size,
            self.plugged_bytes(),
            self.units.len(),
            self.stranded.len(),
            if self.dead { "dead" } else { "ok" }
        )?;
        for (&start, u) in &self.units {
            let busy = u.count(Step::Busy);
            writeln!(
                out,
                "virtio-mem.unit dev={} range={:#x}-{:#x} plugged={:#x} steps={}/{} busy={busy} state={:?}",
                self.index,
                start,
                start + self.geo.unit,
                u.plugged() as u64 * self.geo.step,
                u.plugged(),
                u.steps().len(),
                u.state
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
