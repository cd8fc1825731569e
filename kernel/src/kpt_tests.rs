//! Host tests of the shared kernel-table pieces: range merging, the image's W^X spans
//! and the arena's one-time hand-out. The builder itself is checked on every port's
//! format by [`super::check_builder`], called from the ports' host tests.

use super::*;

#[test]
fn ranges_are_page_rounded_sorted_and_merged() {
    let raw = [
        (0x10_0000, 0x10_0800),
        (0x0, 0x9_f000),
        (0x9_f000, 0xa_0000),
        (0x20_0000, 0x20_0000),
        (0x10_0fff, 0x18_0000),
        (0x4000_0000, 0x8000_0000),
    ];
    let mut out = [(0, 0); 8];
    let (n, truncated) = merge_ranges(raw, &mut out);
    assert!(!truncated);
    assert_eq!(
        &out[..n],
        &[
            (0, 0xa_0000),
            (0x10_0000, 0x18_0000),
            (0x4000_0000, 0x8000_0000)
        ]
    );
}

#[test]
fn ranges_past_the_buffer_are_reported() {
    let raw = (0..5u64).map(|i| (i << 30, (i << 30) + 0x1000));
    let mut out = [(0, 0); 3];
    assert_eq!(merge_ranges(raw.clone(), &mut out), (3, true));
    let mut out = [(0, 0); 5];
    assert_eq!(merge_ranges(raw, &mut out), (5, false));
}

#[test]
fn image_spans_are_w_xor_x() {
    let layout = ImageLayout {
        start: 0xffff_ffff_8000_0000,
        text_end: 0xffff_ffff_8010_0000,
        rodata_end: 0xffff_ffff_8014_0000,
        end: 0xffff_ffff_8020_0000,
    };
    let data = EntryAttrs::kernel_data(Features::NO_EXECUTE);
    let [text, rodata, rw] = layout.spans(data);
    assert_eq!(text, (layout.start, layout.text_end, EntryAttrs::GLOBAL));
    assert_eq!(
        rodata,
        (
            layout.text_end,
            layout.rodata_end,
            EntryAttrs::GLOBAL | EntryAttrs::NO_EXECUTE
        )
    );
    assert_eq!(rw, (layout.rodata_end, layout.end, data));
    // Without no-execute support nothing can be marked so.
    let [_, rodata, _] = layout.spans(EntryAttrs::kernel_data(Features::empty()));
    assert_eq!(rodata.2, EntryAttrs::GLOBAL);
}

#[test]
fn arena_frames_are_handed_out_once_and_aligned() {
    let arena = Box::new(FrameArena::<3>::new());
    let frames: Vec<u64> = core::iter::from_fn(|| arena.take()).collect();
    assert_eq!(frames.len(), 3);
    assert!(frames.iter().all(|f| f % FRAME_BYTES == 0));
    assert_eq!(frames[2] - frames[0], 2 * FRAME_BYTES);
    assert_eq!(arena.take(), None);
    assert_eq!(arena.used(), 3);
}
