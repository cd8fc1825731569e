//! The virtio-mem driver as a hotplug [`EventSource`]: each poll re-reads the config and
//! grows, removes empty units, shrinks or settles; completions go to the resize paths;
//! `describe` prints the device's and the kernel's views.

use alloc::vec::Vec;
use core::fmt;

use virtio_drivers::transport::Transport;

use super::VirtioMem;
use super::config::MemConfig;
use super::plan::Step;
use crate::hotplug::engine::HotplugError;
use crate::hotplug::event::{Event, EventSource};

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
