//! Re-reading a virtio-mem device's config on each poll: a change is taken only once two
//! reads agree, validate and keep the geometry; otherwise the device is given up after
//! [`CONFIG_READS`] reads.

use core::fmt;

use virtio_drivers::transport::Transport;

use super::config::{ConfigError, MemConfig};
use super::plan::Geometry;
use super::{CONFIG_READS, VirtioMem};

impl<T: Transport> VirtioMem<T> {
    /// Re-reads the config; a failure or a changed geometry ends the device.
    /// Reads the config. An unchanged config is taken at once; a changed one only once
    /// two reads in a row agree, validate and keep the geometry — a single read can
    /// return another register's value (seen under TCG while the memory map changes) —
    /// and the device is given up after [`CONFIG_READS`] reads without that.
    pub(super) fn refresh(&mut self) -> bool {
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
