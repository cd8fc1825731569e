//! Subsection arithmetic (§6.4 item 4) and fault-injector rules.

use crate::mm::Pfn;
use crate::mm::error::{AllocKind, MmError};
use crate::mm::inject::FaultInjector;
use crate::mm::sim::models;
use crate::mm::sparse::{Chunk, check_span, chunks, subsection_mask};

#[test]
fn subsection_counts_per_section_size() {
    assert_eq!(models::SECTIONS_128M_LEAF_2M.subsections_per_section(), 64);
    assert_eq!(
        models::SECTIONS_128M_LEAF_2M_47BIT.subsections_per_section(),
        64
    );
    assert_eq!(models::SECTIONS_256M_LEAF_1M.subsections_per_section(), 128);
    assert_eq!(models::SECTIONS_256M_LEAF_1M.pages_per_subsection(), 512);
}

#[test]
fn misaligned_and_empty_spans_are_einval() {
    let model = &models::SECTIONS_128M_LEAF_2M;
    let error = check_span(model, Pfn(256), Pfn(1024)).expect_err("misaligned start");
    assert_eq!(
        (error.errno(), error),
        (
            -22,
            MmError::Misaligned {
                what: "start pfn",
                value: 256,
                align: 512
            }
        )
    );
    assert!(matches!(
        check_span(model, Pfn(512), Pfn(1000)),
        Err(MmError::Misaligned {
            what: "end pfn",
            ..
        })
    ));
    assert_eq!(check_span(model, Pfn(512), Pfn(512)), Err(MmError::Empty));
    assert!(matches!(
        check_span(model, Pfn(0), Pfn(1 << 40)),
        Err(MmError::OutOfRange { .. })
    ));
}

#[test]
fn chunks_split_at_sections_and_masks_cover_subsections() {
    let model = &models::SECTIONS_256M_LEAF_1M;
    let all: Vec<Chunk> = chunks(model, Pfn(65536 - 1024), Pfn(2 * 65536 + 512)).collect();
    assert_eq!(all.len(), 3);
    assert_eq!(subsection_mask(model, &all[0]), 0b11 << 126);
    assert_eq!(subsection_mask(model, &all[1]), u128::MAX);
    assert_eq!(subsection_mask(model, &all[2]), 1);
}

#[test]
fn fault_rules_fire_once_or_always() {
    let mut faults = FaultInjector::new();
    faults.fail_nth(AllocKind::PageTable, 2);
    faults.fail_from(AllocKind::Buddy, 3);
    assert!(faults.check(AllocKind::PageTable).is_ok());
    assert_eq!(
        faults.check(AllocKind::PageTable),
        Err(MmError::NoMemory(AllocKind::PageTable))
    );
    assert!(faults.check(AllocKind::PageTable).is_ok());
    assert!(faults.check(AllocKind::AltmapLeaf).is_ok());
    let buddy: Vec<bool> = (0..5)
        .map(|_| faults.check(AllocKind::Buddy).is_err())
        .collect();
    assert_eq!(buddy, [false, false, true, true, true]);
    assert_eq!(
        (
            faults.attempts(AllocKind::Buddy),
            faults.injected(AllocKind::Buddy)
        ),
        (5, 3)
    );
}
