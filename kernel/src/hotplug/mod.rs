//! Adding and removing memory on the running machine. One `add` path serves boot-time
//! device regions and (with the hotplug issue) every hotplug source; sources only turn
//! their events into ranges.

pub mod device;
pub mod verify;
