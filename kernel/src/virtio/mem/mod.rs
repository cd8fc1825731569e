//! The virtio-mem driver (device ID 24), generic over the transport, as a hotplug event
//! source.
//!
//! Probe: reset, negotiate VERSION_1 (+ UNPLUGGED_INACCESSIBLE when offered; ACPI_PXM is
//! not taken), one request queue, DRIVER_OK, read and validate the config (a hostile one
//! costs one error line and the device), UNPLUG_ALL whatever an earlier life plugged.
//!
//! Poll: re-read the config. Growing, PLUG the next unit ([`plan`]) and, once the device
//! ACKed, ask the engine to Add it. Shrinking, ask the engine to Remove the newest unit
//! that still keeps the plugged total at or above the request; the UNPLUG goes out only
//! after the engine removed it. A failed Add is unplugged again; a failed (busy) Remove
//! stays plugged and shrinking pauses until `requested_size` changes, as does growing
//! after a refused PLUG. With nothing left and nothing requested, UNPLUG_ALL shrinks the
//! usable region back to zero.
//!
//! Records (through `log`, target `virtio::mem`): `virtio-mem: probe dev=N ...`,
//! `virtio-mem: plug dev=N range=A-B blocks=K`, `virtio-mem: unplug dev=N range=A-B
//! blocks=K`, `virtio-mem: unplug-all dev=N`, `virtio-mem: stop dev=N op=grow|shrink
//! requested=R plugged=P reason=...`, `virtio-mem: error dev=N ...`.

pub mod config;
pub mod plan;
pub mod request;

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;

use virtio_drivers::transport::{DeviceStatus, Transport};

use self::config::{ConfigError, MemConfig};
use self::plan::Geometry;
use self::request::{BlockState, RESPONSE_LEN, Request, Response};
use super::request_queue::RequestQueue;
use crate::heap::fallible::{TryVec, try_collect};
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum UnitState {
    /// Plugged; the engine is adding it.
    Adding,
    /// Plugged and online.
    Live,
    /// The engine is removing it.
    Removing,
}

#[derive(Clone, Debug)]
struct Unit {
    range: Range<u64>,
    state: UnitState,
}

/// One virtio-mem device.
pub struct VirtioMem<T: Transport> {
    index: u32,
    name: String,
    transport: T,
    queue: RequestQueue,
    config: MemConfig,
    geo: Geometry,
    features: Features,
    /// Plugged units, in the order they were plugged.
    units: Vec<Unit>,
    /// Plugged in the device but not in the kernel (an UNPLUG failed).
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
    /// records); `memory_block` is the engine's memory-block (section) size. Logs one
    /// `virtio-mem: error` line and fails the device on any refusal.
    pub fn probe(
        index: u32,
        name: String,
        transport: T,
        memory_block: u64,
    ) -> Result<Self, ProbeError> {
        let mut transport = transport;
        let result = Self::init(index, name, &mut transport, memory_block);
        match result {
            Ok(parts) => Ok(Self::assemble(parts, transport)),
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
        memory_block: u64,
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
        Ok(Parts {
            index,
            name,
            queue,
            config,
            geo: Geometry::new(&config, memory_block),
            features,
        })
    }

    fn assemble(parts: Parts, transport: T) -> Self {
        VirtioMem {
            index: parts.index,
            name: parts.name,
            transport,
            queue: parts.queue,
            config: parts.config,
            geo: parts.geo,
            features: parts.features,
            units: Vec::new(),
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

    /// The ranges plugged and handed to the kernel (or on their way), in plug order.
    pub fn units(&self) -> impl Iterator<Item = &Range<u64>> {
        self.units.iter().map(|u| &u.range)
    }

    /// Bytes plugged as the driver counts them (units and stranded ranges).
    pub fn plugged_bytes(&self) -> u64 {
        (self.units.iter().map(|u| &u.range))
            .chain(&self.stranded)
            .map(|r| r.end - r.start)
            .sum()
    }

    /// Every plugged range (units and stranded), or `None` when the heap refuses the list.
    fn taken(&self) -> Option<Vec<Range<u64>>> {
        try_collect(
            (self.units.iter().map(|u| u.range.clone())).chain(self.stranded.iter().cloned()),
        )
        .ok()
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
        let mut problem = Unsettled::Unsettled;
        for attempt in 1..=CONFIG_READS {
            let config = match MemConfig::read(&self.transport) {
                Ok(c) => c,
                Err(e) => return self.fail(format_args!("reason=config-read detail={e:?}")),
            };
            if config == self.config {
                return true;
            }
            let checked = config.validate().map_err(Unsettled::Config).and_then(|()| {
                (Geometry::new(&config, self.geo.memory_block) == self.geo)
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

    fn grow(&mut self, out: &mut Vec<Event>) {
        let requested = self.config.requested_size;
        if self.grow_stopped {
            return;
        }
        for _ in 0..BATCH {
            let Some(mut taken) = self.taken() else {
                self.stop("grow", "no-memory");
                return;
            };
            let usable = self.config.usable_region_size;
            let Some(range) = plan::next_plug(&self.geo, usable, requested, &mut taken) else {
                if self.plugged_bytes() < requested {
                    self.stop("grow", "no-room");
                }
                return;
            };
            // Room for the unit and its event before the device plugs anything: a refused
            // heap allocation stops growing with nothing plugged.
            if self.units.try_reserve(1).is_err() || out.try_reserve(1).is_err() {
                self.stop("grow", "no-memory");
                return;
            }
            let plug = Request::plug(&range, self.geo.block_size).expect("planned in blocks");
            match self.request(plug) {
                Some(Response::Ack) => {}
                Some(other) => {
                    log::warn!(
                        "virtio-mem: refused dev={} {plug} response={other}",
                        self.index
                    );
                    self.stop("grow", "plug-refused");
                    return;
                }
                None => {
                    log::warn!(
                        "virtio-mem: refused dev={} {plug} response=none",
                        self.index
                    );
                    self.stop("grow", "plug-refused");
                    return;
                }
            }
            log::info!(
                "virtio-mem: plug dev={} range={:#x}-{:#x} blocks={}",
                self.index,
                range.start,
                range.end,
                (range.end - range.start) / self.geo.block_size
            );
            self.units.push(Unit {
                range: range.clone(),
                state: UnitState::Adding,
            });
            out.push(Event::Add {
                range,
                via: self.via(),
            });
        }
    }

    fn shrink(&mut self, out: &mut Vec<Event>) {
        let requested = self.config.requested_size;
        if self.shrink_stopped {
            return;
        }
        let mut over = self.plugged_bytes().saturating_sub(requested);
        for _ in 0..BATCH {
            // plan::next_unplug over the live units, without building the list: the most
            // recently plugged live unit no larger than `over`.
            let pick = self
                .units
                .iter()
                .rposition(|u| u.state == UnitState::Live && u.range.end - u.range.start <= over);
            let Some(i) = pick else {
                if out.is_empty() && over > 0 {
                    self.stop("shrink", "no-unit-fits");
                }
                return;
            };
            if out.try_reserve(1).is_err() {
                // Nothing changed: the next poll tries again.
                return;
            }
            let range = self.units[i].range.clone();
            self.units[i].state = UnitState::Removing;
            over -= range.end - range.start;
            out.push(Event::Remove {
                range,
                via: self.via(),
            });
        }
    }

    /// With nothing plugged and nothing requested, UNPLUG_ALL shrinks the usable region.
    fn settle(&mut self) {
        let idle = self.units.is_empty() && self.config.requested_size == 0;
        if !idle || self.config.usable_region_size == 0 || self.unplug_all_failed {
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

    /// UNPLUGs `range`; a refusal leaves it stranded (counted, never reused).
    fn unplug(&mut self, range: Range<u64>) {
        let unplug = Request::unplug(&range, self.geo.block_size).expect("planned in blocks");
        match self.request(unplug) {
            Some(Response::Ack) => log::info!(
                "virtio-mem: unplug dev={} range={:#x}-{:#x} blocks={}",
                self.index,
                range.start,
                range.end,
                (range.end - range.start) / self.geo.block_size
            ),
            other => {
                log::error!(
                    "virtio-mem: refused dev={} {unplug} response={other:?}; range stays plugged",
                    self.index
                );
                if self.stranded.try_push(range).is_err() {
                    log::error!(
                        "virtio-mem: error dev={} no heap room to record the stranded range",
                        self.index
                    );
                }
            }
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
    Unsettled,
    /// A read failed validation.
    Config(ConfigError),
    /// A read described another region or block size.
    GeometryChanged,
}

impl fmt::Display for Unsettled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unsettled::Unsettled => write!(f, "reason=unsettled"),
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
        let plugged = self.plugged_bytes();
        let requested = self.config.requested_size;
        if requested != self.last_requested {
            self.last_requested = requested;
            self.grow_stopped = false;
            self.shrink_stopped = false;
            self.unplug_all_failed = false;
        }
        if requested > plugged {
            self.grow(out);
        } else if requested < plugged {
            self.shrink(out);
        } else {
            self.settle();
        }
    }

    fn complete(&mut self, event: &Event, result: &Result<(), HotplugError>) {
        let (range, adding) = match event {
            Event::Add { range, via } if *via == self.via() => (range, true),
            Event::Remove { range, via } if *via == self.via() => (range, false),
            _ => return,
        };
        let Some(i) = self.units.iter().position(|u| u.range == *range) else {
            log::error!(
                "virtio-mem: error dev={} completion for unknown range",
                self.index
            );
            return;
        };
        match (adding, result) {
            (true, Ok(())) => self.units[i].state = UnitState::Live,
            (true, Err(_)) => {
                self.units.remove(i);
                self.unplug(range.clone());
                self.stop("grow", "add-failed");
            }
            (false, Ok(())) => {
                self.units.remove(i);
                self.unplug(range.clone());
                self.settle();
            }
            (false, Err(_)) => {
                self.units[i].state = UnitState::Live;
                self.stop("shrink", "busy");
            }
        }
    }

    fn describe(&self, out: &mut dyn fmt::Write) -> fmt::Result {
        let c = MemConfig::read(&self.transport).unwrap_or(self.config);
        writeln!(
            out,
            "virtio-mem dev={} name={} addr={:#x} region={:#x} usable={:#x} block={:#x} plugged={:#x} requested={:#x} kernel={:#x} units={} stranded={} state={}",
            self.index,
            self.name,
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
        for u in &self.units {
            writeln!(
                out,
                "virtio-mem.unit dev={} range={:#x}-{:#x} state={:?}",
                self.index, u.range.start, u.range.end, u.state
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
