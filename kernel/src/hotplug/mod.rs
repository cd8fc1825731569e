//! Adding and removing memory on the running machine. One `add` path serves boot-time
//! device regions and every hotplug source; sources only turn their events into ranges
//! ([`event`]), the [`engine`] does the rest, one event at a time in arrival order.

pub mod block;
pub mod device;
pub mod dispatch;
pub mod engine;
pub mod event;
pub mod parts;
pub mod verify;
