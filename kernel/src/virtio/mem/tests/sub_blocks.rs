//! Sub-block mode (2 MiB device blocks in 256 MiB units): growing and shrinking to the
//! exact request, a busy sub-block staying plugged until the request changes, and a
//! failed add or online unplugged again with growth waiting for the next request.

use super::*;

#[test]
fn sub_blocks_grow_and_shrink_to_the_exact_request() {
    let _pool = crate::dma::test_pool();
    let fake = Fake::new(config());
    let mut dev = probe(&fake);
    assert_eq!(
        dev.features(),
        Features::VERSION_1 | Features::UNPLUGGED_INACCESSIBLE
    );
    assert_eq!(dev.geometry().mode, plan::Mode::Sbm);
    assert!(poll(&mut dev).is_empty(), "nothing requested");

    fake.set_requested(300 * MIB);
    let adds = poll(&mut dev);
    assert_eq!(
        kinds(&adds),
        [
            ("add-partial", unit(0)..unit(1)),
            ("add-partial", unit(1)..unit(1) + 44 * MIB)
        ]
    );
    assert_eq!(
        fake.plugged(),
        300 * MIB,
        "plugged before the adds went out"
    );
    complete_all(&mut dev, &adds, Ok(()));
    assert!(poll(&mut dev).is_empty(), "settled");
    assert_eq!(dev.plugged_bytes(), 300 * MIB);

    // Down to 130 MiB: the partial block goes first, then the top of the full one.
    fake.set_requested(130 * MIB);
    let offs = poll(&mut dev);
    assert_eq!(
        kinds(&offs),
        [
            ("offline", unit(1)..unit(1) + 44 * MIB),
            ("offline", unit(0) + 130 * MIB..unit(1))
        ]
    );
    assert_eq!(
        fake.plugged(),
        300 * MIB,
        "UNPLUG only after the engine offlined"
    );
    complete_all(&mut dev, &offs, Ok(()));
    assert_eq!(fake.plugged(), 130 * MIB);
    let rest = settle(&mut dev);
    assert_eq!(
        kinds(&rest),
        [("remove", unit(1)..unit(2))],
        "the empty block goes"
    );
    assert_eq!(
        dev.units().collect::<Vec<_>>(),
        [(unit(0)..unit(1), 130 * MIB)]
    );

    // Up to 200 MiB fills the same block; then to 0 and the usable region shrinks.
    fake.set_requested(200 * MIB);
    assert_eq!(
        kinds(&settle(&mut dev)),
        [("online", unit(0) + 130 * MIB..unit(0) + 200 * MIB)]
    );
    assert_eq!(fake.plugged(), 200 * MIB);
    fake.set_requested(0);
    assert_eq!(
        kinds(&settle(&mut dev)),
        [
            ("offline", unit(0)..unit(0) + 200 * MIB),
            ("remove", unit(0)..unit(1))
        ]
    );
    assert_eq!(fake.plugged(), 0);
    let d = fake.0.borrow();
    assert_eq!(
        d.requests.last(),
        Some(&Request::UnplugAll),
        "usable shrunk at the end"
    );
    assert_eq!(d.config.usable_region_size, 0);
}

#[test]
fn a_busy_sub_block_stays_until_the_request_changes() {
    let _pool = crate::dma::test_pool();
    let fake = Fake::new(config());
    let mut dev = probe(&fake);
    fake.set_requested(SECTION);
    settle(&mut dev);

    fake.set_requested(0);
    let offs = poll(&mut dev);
    assert_eq!(kinds(&offs), [("offline", unit(0)..unit(1))]);
    let busy_pfn = (unit(0) + 100 * 2 * MIB + 4096) / 4096;
    complete_all(&mut dev, &offs, Err(HotplugError::Busy { pfn: busy_pfn }));
    assert_eq!(fake.plugged(), SECTION, "still plugged");
    // Everything around the busy sub-block goes; it stays.
    let around = poll(&mut dev);
    assert_eq!(
        kinds(&around),
        [
            ("offline", unit(0) + 101 * 2 * MIB..unit(1)),
            ("offline", unit(0)..unit(0) + 100 * 2 * MIB)
        ]
    );
    complete_all(&mut dev, &around, Ok(()));
    assert_eq!(fake.plugged(), 2 * MIB);
    for _ in 0..3 {
        assert!(poll(&mut dev).is_empty(), "no retry loop");
    }
    fake.set_requested(2 * MIB); // a new request that is already met
    assert!(poll(&mut dev).is_empty());
    fake.set_requested(0); // and another: retried
    let again = settle(&mut dev);
    assert_eq!(
        kinds(&again),
        [
            ("offline", unit(0) + 100 * 2 * MIB..unit(0) + 101 * 2 * MIB),
            ("remove", unit(0)..unit(1))
        ]
    );
    assert_eq!(fake.plugged(), 0);
}

#[test]
fn a_failed_add_or_online_is_unplugged_and_growth_waits() {
    let _pool = crate::dma::test_pool();
    let fake = Fake::new(config());
    let mut dev = probe(&fake);
    fake.set_requested(300 * MIB);
    let adds = poll(&mut dev);
    assert_eq!(adds.len(), 2);
    dev.complete(&adds[0], &Ok(()));
    dev.complete(&adds[1], &Err(HotplugError::Overlap { at: unit(1) }));
    assert_eq!(fake.plugged(), SECTION, "the failed block went back");
    assert!(poll(&mut dev).is_empty(), "no plug/fail loop");
    assert_eq!(dev.units().count(), 1);

    // Shrink a little, then grow back: the online of the refilled part fails.
    fake.set_requested(SECTION - 4 * MIB);
    settle(&mut dev);
    fake.set_requested(SECTION);
    let on = poll(&mut dev);
    assert_eq!(kinds(&on), [("online", unit(1) - 4 * MIB..unit(1))]);
    complete_all(&mut dev, &on, Err(HotplugError::Busy { pfn: 0 }));
    assert_eq!(fake.plugged(), SECTION - 4 * MIB, "unplugged again");
    assert!(poll(&mut dev).is_empty(), "growth waits for a new request");
}
