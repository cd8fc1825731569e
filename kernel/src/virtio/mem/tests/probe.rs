//! Probing and describing a device: what an earlier life left plugged is unplugged, a
//! garbled config read is read again before the device is given up, hostile or old
//! devices are refused, and `describe` reports the device's and the kernel's views.

use virtio_drivers::transport::DeviceStatus;

use super::*;

#[test]
fn probe_unplugs_what_an_earlier_life_left() {
    let _pool = crate::dma::test_pool();
    let fake = Fake::new(MemConfig {
        plugged_size: 64 * MIB,
        usable_region_size: 512 * MIB,
        ..config()
    });
    let _dev = probe(&fake);
    assert_eq!(fake.0.borrow().requests, [Request::UnplugAll]);
    assert_eq!(fake.plugged(), 0);
}

#[test]
fn a_garbled_config_read_is_read_again_before_the_device_is_given_up() {
    let _pool = crate::dma::test_pool();
    let fake = Fake::new(config());
    let mut dev = probe(&fake);
    // Bad reads, then two good ones that agree: the resize goes ahead.
    fake.0.borrow_mut().garbled_reads = CONFIG_READS - 2;
    fake.set_requested(GIB);
    let adds = poll(&mut dev);
    assert_eq!(adds.len(), 4);
    complete_all(&mut dev, &adds, Ok(()));
    assert_eq!(fake.plugged(), GIB);
    // One more and no two good reads agree in time: the device is given up, nothing
    // more is plugged or unplugged.
    fake.0.borrow_mut().garbled_reads = CONFIG_READS - 1;
    fake.set_requested(0);
    assert!(poll(&mut dev).is_empty());
    assert!(poll(&mut dev).is_empty(), "stays given up");
    assert_eq!(fake.plugged(), GIB);
}

#[test]
fn hostile_or_old_devices_are_refused() {
    let _pool = crate::dma::test_pool();
    let bad = Fake::new(MemConfig {
        block_size: 3 * MIB,
        ..config()
    });
    let e = VirtioMem::probe(0, "bad".into(), bad.clone(), GRAN).err();
    assert_eq!(e, Some(ProbeError::Config(ConfigError::BlockSize(3 * MIB))));
    assert!(bad.0.borrow().status.contains(DeviceStatus::FAILED));

    let legacy = Fake::new(config());
    legacy.0.borrow_mut().offered = 0x3000_0002;
    let e = VirtioMem::probe(0, "legacy".into(), legacy, GRAN).err();
    assert_eq!(e, Some(ProbeError::NoVersion1));
}

#[test]
fn describe_reports_device_and_kernel_views() {
    let _pool = crate::dma::test_pool();
    let fake = Fake::new(config());
    let mut dev = probe(&fake);
    fake.set_requested(130 * MIB);
    settle(&mut dev);
    let mut text = alloc::string::String::new();
    dev.describe(&mut text).unwrap();
    assert!(
        text.starts_with(
            "virtio-mem dev=0 name=virtio-mem-fake.0 mode=sbm unit=0x10000000 step=0x200000 addr=0x40000000 region=0x80000000 usable=0x18200000 block=0x200000 plugged=0x8200000 requested=0x8200000 kernel=0x8200000 units=1 stranded=0"
        ),
        "{text}"
    );
    let steps = 130 / 2;
    assert!(
        text.contains(&alloc::format!(
            "virtio-mem.unit dev=0 range=0x40000000-0x50000000 plugged=0x8200000 steps={steps}/{STEPS} busy=0 state=Live"
        )),
        "{text}"
    );
}
