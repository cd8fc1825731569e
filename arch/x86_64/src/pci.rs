//! PCI configuration space through the legacy ports 0xcf8/0xcfc (mechanism #1, which
//! q35 and pc both decode, so no ECAM mapping is needed), as virtio-drivers'
//! `ConfigurationAccess`, and a bus scan for one vendor/device pair.

use alloc::vec::Vec;

use kernel::virtio::virtio_drivers::transport::pci::bus::{
    ConfigurationAccess, DeviceFunction, PciRoot,
};
use x86_64::instructions::port::Port;

const CONFIG_ADDRESS: u16 = 0xcf8;
const CONFIG_DATA: u16 = 0xcfc;

/// Configuration access through 0xcf8/0xcfc (buses 0-255, register offsets 0-255).
pub struct PortCam;

fn address(df: DeviceFunction, offset: u8) -> u32 {
    1 << 31
        | u32::from(df.bus) << 16
        | u32::from(df.device & 0x1f) << 11
        | u32::from(df.function & 7) << 8
        | u32::from(offset & 0xfc)
}

impl ConfigurationAccess for PortCam {
    fn read_word(&self, df: DeviceFunction, offset: u8) -> u32 {
        // SAFETY: mechanism #1: select the dword, then read it; one CPU, and no
        // interrupt handler touches these ports, so the pair is not torn.
        unsafe {
            Port::<u32>::new(CONFIG_ADDRESS).write(address(df, offset));
            Port::<u32>::new(CONFIG_DATA).read()
        }
    }

    fn write_word(&mut self, df: DeviceFunction, offset: u8, data: u32) {
        // SAFETY: as in `read_word`; the callers write documented PCI registers only
        // (command, BARs while sizing them, capabilities).
        unsafe {
            Port::<u32>::new(CONFIG_ADDRESS).write(address(df, offset));
            Port::<u32>::new(CONFIG_DATA).write(data);
        }
    }

    unsafe fn unsafe_clone(&self) -> Self {
        PortCam
    }
}

/// Every function with `vendor:device` on buses 0-255.
pub fn find(root: &PciRoot<PortCam>, vendor: u16, device: u16) -> Vec<DeviceFunction> {
    let mut out = Vec::new();
    for bus in 0..=255u8 {
        for (df, info) in root.enumerate_bus(bus) {
            if info.vendor_id == vendor && info.device_id == device {
                out.push(df);
            }
        }
    }
    out
}
