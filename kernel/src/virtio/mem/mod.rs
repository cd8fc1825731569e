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
//!
//! This file holds the driver's state and the plumbing its paths share (one request to
//! the device, a stop, giving the device up, UNPLUG_ALL at the end); beside it: `probe`
//! (bring-up, [`ProbeError`]), `refresh` (re-reading the config until it settles),
//! `source` (the [`EventSource`](crate::hotplug::event::EventSource) face: poll,
//! complete, describe) and `resize` (growing and shrinking).

pub mod config;
pub mod plan;
mod probe;
mod refresh;
pub mod request;
mod resize;
mod source;
pub mod units;

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;

use virtio_drivers::transport::Transport;

use self::config::MemConfig;
use self::plan::{Geometry, Granularity};
use self::request::{BlockState, RESPONSE_LEN, Request, Response};
use self::units::Units;
use super::request_queue::RequestQueue;
use crate::hotplug::event::Via;
pub use probe::ProbeError;

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
fn send<T: Transport>(
    queue: &mut RequestQueue,
    transport: &mut T,
    request: Request,
) -> Result<(Response, BlockState), virtio_drivers::Error> {
    let mut response = [0u8; RESPONSE_LEN];
    queue.call(transport, &request.encode(), &mut response)?;
    Ok(request::decode_response(&response))
}
#[cfg(test)]
mod tests;
