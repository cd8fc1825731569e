//! Adding and removing memory on the running machine. One `add` path serves boot-time
//! device regions and every hotplug source; sources only turn their events into ranges
//! ([`event`]), the [`engine`] does the rest, one event at a time in arrival order.
//!
//! Verification through the MMU is kept off the hot path: an add checks a bounded sample
//! of struct pages before it is reported online ([`verify_ram::sample`]); the full check
//! of every page and leaf ([`verify`] for device memory, [`verify_ram::verify`] for RAM)
//! runs once the events are handled and acknowledged and the sources have none left (so
//! the later batches of a large virtio-mem resize are not held up by it), and again on
//! demand from the shell.

pub mod block;
pub mod device;
pub mod dispatch;
pub mod engine;
pub mod event;
pub mod parts;
pub mod verify;
pub mod verify_ram;
