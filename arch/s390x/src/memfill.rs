//! Struct-page initialisation at block-move speed: the memmap init pass hands each
//! section slice here ([`kernel::mm::live::LiveConfig::fill_pages`]).
//!
//! Every struct page of a slice gets the same 64 bytes, so after the first 64 pages are
//! stored one by one, the rest is a copy of what is already written: MOVE LONG (MVCL)
//! from the slice's start to the next free part, non-overlapping, doubling up to
//! [`MOVE_PAGES`] per instruction. Every byte is written once, front to back, with the
//! fields in place — one streaming pass. Under QEMU's TCG one MVCL is a single helper call
//! that moves a host page at a time with `memmove`, instead of a softmmu store per 8 bytes.

use core::arch::asm;

use kernel::mm::page::Page;

/// Pages stored one by one before copying starts (one 4 KiB page of struct pages).
const SEED_PAGES: usize = 64;
/// Largest copy per MVCL, in struct pages (64 KiB: the source stays in the host's cache).
const MOVE_PAGES: usize = 1024;

/// Sets every page of `pages` to `template`.
pub fn fill_pages(pages: &mut [Page], template: &Page) {
    let seed = pages.len().min(SEED_PAGES);
    kernel::mm::memmap::fill_pages(&mut pages[..seed], template);
    let mut done = seed;
    while done < pages.len() {
        let n = done.min(pages.len() - done).min(MOVE_PAGES);
        let (written, rest) = pages.split_at_mut(done);
        move_pages(&mut rest[..n], &written[..n]);
        done += n;
    }
}

/// `dst.copy_from_slice(src)` as one MVCL (lengths below 16 MiB, operands disjoint).
fn move_pages(dst: &mut [Page], src: &[Page]) {
    let bytes = core::mem::size_of_val(dst);
    assert!(bytes == core::mem::size_of_val(src) && bytes < 1 << 24);
    // SAFETY: MVCL moves `bytes` bytes from r4 to r2 (lengths in r3 and r5, 24 bits, pad
    // byte 0 unused as the lengths are equal) and updates the four registers, declared
    // clobbered. The slices are valid for `bytes` bytes, and they cannot overlap (one is
    // borrowed mutably, the other shared), so the move is not refused (cc 3) and writes
    // nothing outside `dst`.
    unsafe {
        asm!(
            "mvcl %r2, %r4",
            inout("r2") dst.as_mut_ptr() => _,
            inout("r3") bytes => _,
            inout("r4") src.as_ptr() => _,
            inout("r5") bytes => _,
            options(nostack),
        );
    }
}
