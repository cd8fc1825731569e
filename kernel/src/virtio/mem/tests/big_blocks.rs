//! Big-block mode (device blocks of whole memory blocks): blocks added and removed whole,
//! UNPLUG sent only after the remove.

use super::*;

#[test]
fn big_blocks_are_added_and_removed_whole() {
    let _pool = crate::dma::test_pool();
    let fake = Fake::new(MemConfig {
        block_size: SECTION,
        ..config()
    });
    let mut dev = probe(&fake);
    assert_eq!(dev.geometry().mode, plan::Mode::Bbm);
    fake.set_requested(2 * SECTION);
    let adds = poll(&mut dev);
    assert_eq!(
        kinds(&adds),
        [("add", unit(0)..unit(1)), ("add", unit(1)..unit(2))]
    );
    complete_all(&mut dev, &adds, Ok(()));
    fake.set_requested(SECTION);
    let removes = poll(&mut dev);
    assert_eq!(
        kinds(&removes),
        [("remove", unit(1)..unit(2))],
        "newest first"
    );
    assert_eq!(fake.plugged(), 2 * SECTION, "UNPLUG only after the remove");
    complete_all(
        &mut dev,
        &removes,
        Err(HotplugError::Busy {
            pfn: unit(1) / 4096,
        }),
    );
    assert_eq!(fake.plugged(), 2 * SECTION);
    // As Linux's BBM unplug: a busy big block is skipped and the next one tried.
    let next = poll(&mut dev);
    assert_eq!(kinds(&next), [("remove", unit(0)..unit(1))]);
    complete_all(&mut dev, &next, Ok(()));
    assert_eq!(fake.plugged(), SECTION);
    assert!(
        poll(&mut dev).is_empty(),
        "only the busy one is left: no retry loop"
    );
    fake.set_requested(0);
    settle(&mut dev);
    assert_eq!(fake.plugged(), 0);
    assert_eq!(dev.units().count(), 0);
}
