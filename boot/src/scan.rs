//! Finding the base-revision tag and the requests in a loaded kernel image.
//!
//! As Limine does: walk the loaded bytes (never `.bss`) in 8-byte steps; the tag may sit
//! anywhere; requests count only between the *last* start marker and the *first* end
//! marker after it (a start marker discards what was found before it). A second request
//! with the same ID is an error, as in Limine.

use alloc::vec::Vec;

use crate::protocol::{COMMON_MAGIC, END_MARKER, REQ_REVISION, START_MARKER};
use crate::revision::TAG_MAGIC;

/// A request found in the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Found {
    /// Byte offset of the request in the image.
    pub offset: usize,
    /// The feature ID (last two words).
    pub id: [u64; 2],
    /// The request's revision.
    pub revision: u64,
}

/// What the scan found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scan {
    /// Offset of the base-revision tag and the revision it asks for.
    pub base_revision: Option<(usize, u64)>,
    /// Requests between the markers, in image order.
    pub requests: Vec<Found>,
    /// Whether a start marker was seen.
    pub start_marker: bool,
    /// Whether an end marker was seen.
    pub end_marker: bool,
}

impl Scan {
    /// The request with feature `id`, if the kernel made one.
    pub fn find(&self, id: [u64; 2]) -> Option<&Found> {
        self.requests.iter().find(|r| r.id == id)
    }
}

/// Two requests with one ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Duplicate {
    /// The feature ID.
    pub id: [u64; 2],
    /// Offset of the second one.
    pub offset: usize,
}

/// Reads the little-endian `u64` at byte `off` (which must be in bounds).
pub fn word(image: &[u8], off: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&image[off..off + 8]);
    u64::from_le_bytes(b)
}

/// Writes the little-endian `u64` `v` at byte `off`.
pub fn set_word(image: &mut [u8], off: usize, v: u64) {
    image[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

/// Scans `image` (the loaded bytes up to the start of `.bss`, 8-byte aligned at 0).
pub fn scan(image: &[u8]) -> Result<Scan, Duplicate> {
    let mut out = Scan::default();
    let w = |off: usize, n: usize| off + 8 * n <= image.len();
    let at = |off: usize, i: usize| word(image, off + 8 * i);
    let mut off = 0;
    while w(off, 1) {
        if w(off, 3)
            && out.base_revision.is_none()
            && at(off, 0) == TAG_MAGIC[0]
            && at(off, 1) == TAG_MAGIC[1]
        {
            out.base_revision = Some((off, at(off, 2)));
        } else if w(off, 4) && (0..4).all(|i| at(off, i) == START_MARKER[i]) {
            out.start_marker = true;
            out.requests.clear();
            off += 32;
            continue;
        } else if w(off, 2) && at(off, 0) == END_MARKER[0] && at(off, 1) == END_MARKER[1] {
            out.end_marker = true;
            break;
        } else if w(off, 6) && at(off, 0) == COMMON_MAGIC[0] && at(off, 1) == COMMON_MAGIC[1] {
            let found = Found {
                offset: off,
                id: [at(off, 2), at(off, 3)],
                revision: word(image, off + REQ_REVISION),
            };
            if out.requests.iter().any(|r| r.id == found.id) {
                return Err(Duplicate {
                    id: found.id,
                    offset: off,
                });
            }
            out.requests.push(found);
            off += 48;
            continue;
        }
        off += 8;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::id;

    fn push(img: &mut Vec<u8>, words: &[u64]) -> usize {
        let off = img.len();
        for w in words {
            img.extend_from_slice(&w.to_le_bytes());
        }
        off
    }

    fn request(img: &mut Vec<u8>, id: [u64; 2], rev: u64) -> usize {
        push(
            img,
            &[COMMON_MAGIC[0], COMMON_MAGIC[1], id[0], id[1], rev, 0],
        )
    }

    #[test]
    fn finds_tag_and_requests_between_markers() {
        let mut img = Vec::new();
        push(&mut img, &[1, 2, 3]);
        let before = request(&mut img, id::RSDP, 0);
        push(&mut img, &START_MARKER);
        let tag = push(&mut img, &[TAG_MAGIC[0], TAG_MAGIC[1], 6]);
        let hhdm = request(&mut img, id::HHDM, 0);
        let pm = request(&mut img, id::PAGING_MODE, 1);
        push(&mut img, &[0, 0]);
        push(&mut img, &END_MARKER);
        request(&mut img, id::MEMMAP, 0);
        let s = scan(&img).unwrap();
        assert_eq!(s.base_revision, Some((tag, 6)));
        assert!(s.start_marker && s.end_marker);
        let offs: Vec<_> = s.requests.iter().map(|r| r.offset).collect();
        assert_eq!(offs, [hhdm, pm]);
        assert_eq!(s.find(id::PAGING_MODE).unwrap().revision, 1);
        assert!(
            s.find(id::RSDP).is_none(),
            "request at {before} precedes the start marker"
        );
        assert!(
            s.find(id::MEMMAP).is_none(),
            "requests after the end marker are ignored"
        );
    }

    #[test]
    fn last_start_marker_wins_and_no_markers_means_everything() {
        let mut img = Vec::new();
        push(&mut img, &START_MARKER);
        request(&mut img, id::RSDP, 0);
        push(&mut img, &START_MARKER);
        request(&mut img, id::HHDM, 0);
        let s = scan(&img).unwrap();
        assert_eq!(s.requests.len(), 1);
        assert_eq!(s.requests[0].id, id::HHDM);

        let mut img = Vec::new();
        request(&mut img, id::MEMMAP, 0);
        let s = scan(&img).unwrap();
        assert!(!s.start_marker && s.requests.len() == 1);
        assert_eq!(s.base_revision, None);
    }

    #[test]
    fn duplicate_ids_are_rejected() {
        let mut img = Vec::new();
        request(&mut img, id::HHDM, 0);
        let second = request(&mut img, id::HHDM, 0);
        assert_eq!(
            scan(&img),
            Err(Duplicate {
                id: id::HHDM,
                offset: second
            })
        );
    }

    #[test]
    fn truncated_structures_at_the_end_are_ignored() {
        let mut img = Vec::new();
        push(&mut img, &[COMMON_MAGIC[0], COMMON_MAGIC[1], 5]);
        push(&mut img, &[TAG_MAGIC[0], TAG_MAGIC[1]]);
        let s = scan(&img).unwrap();
        assert!(s.requests.is_empty() && s.base_revision.is_none());
    }

    #[test]
    fn words_round_trip() {
        let mut img = vec![0u8; 16];
        set_word(&mut img, 8, 0x1122_3344_5566_7788);
        assert_eq!(word(&img, 8), 0x1122_3344_5566_7788);
        assert_eq!(img[8], 0x88);
    }
}
