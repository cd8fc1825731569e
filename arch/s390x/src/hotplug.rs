//! The hotplug event sources of this machine (`Arch::hotplug_sources`): every
//! virtio-mem-ccw device the channel-subsystem scan finds ([`crate::ccw`]). The
//! s390-ccw-virtio machine has no ACPI, so there is no DIMM or NVDIMM hotplug.

extern crate alloc;

use alloc::boxed::Box;
use alloc::vec::Vec;

use kernel::BootInfo;
use kernel::hotplug::event::EventSource;

/// The sources, built once after the memory manager is up.
pub fn sources(boot: &BootInfo) -> Vec<Box<dyn EventSource>> {
    crate::ccw::virtio_mem_sources(boot)
}
