//! The rules a request must keep to be added (listed in the module docs of
//! [`region`](super)): range, alignment, RAM, hotplug windows, overlap, Linux's 16 MiB
//! namespace floor and the pfn layout, each failure one [`Reason`].

use core::ops::Range;

use super::{
    Conflict, MAX_ALIGN, MIN_DEVICE_SIZE, Reason, RegionRequest, RegionSet, SUBSECTION, Source,
};
use crate::mm::addr::PAGE_SIZE;
use crate::mm::nvdimm::{NdPfnLayout, NvdimmError, nd_pfn_init};

impl RegionSet {
    /// The rules of the module docs, in order; `Ok` carries the pfn layout of a device
    /// region (`None` for a window).
    pub(super) fn check(&self, req: &RegionRequest) -> Result<Option<NdPfnLayout>, Reason> {
        let limit = 1u64 << self.arch.max_phys_bits;
        if req.size == 0 {
            return Err(Reason::ZeroSize);
        }
        let end = match req.start.checked_add(req.size) {
            Some(end) if end <= limit => end,
            _ => return Err(Reason::OutOfRange { limit }),
        };
        check_alignment(req)?;
        let range = req.start..end;
        if matches!(req.source, Source::MemmapParam { .. }) {
            if let Some(first_bad) = first_uncovered(&self.usable, &range) {
                return Err(Reason::OutsideRam { first_bad });
            }
        } else {
            if let Some(ram) = self.ram.iter().find(|r| overlaps(r, &range)) {
                return Err(Reason::Overlap(Conflict::Ram { range: ram.clone() }));
            }
            let windows = self.windows().count();
            if matches!(req.source, Source::Nfit { .. })
                && windows > 0
                && !self
                    .windows()
                    .any(|w| w.start <= range.start && range.end <= w.end())
            {
                return Err(Reason::OutsideHotplugWindow { windows });
            }
        }
        let rivals = self
            .regions
            .iter()
            .filter(|r| r.kind.is_device() == req.kind.is_device());
        if let Some(other) = rivals.clone().find(|r| overlaps(&r.range(), &range)) {
            return Err(Reason::Overlap(Conflict::Region {
                id: other.id,
                range: other.range(),
            }));
        }
        if !req.kind.is_device() {
            return Ok(None);
        }
        if req.size < MIN_DEVICE_SIZE {
            return Err(Reason::UnderMinimum {
                minimum: MIN_DEVICE_SIZE,
            });
        }
        match nd_pfn_init(req.start, req.size, req.align) {
            Ok(layout) => Ok(Some(layout)),
            Err(NvdimmError::TooSmall { dataoff, usable }) => {
                Err(Reason::TooSmall { dataoff, usable })
            }
            Err(NvdimmError::StartMisaligned { start, align }) => Err(Reason::Unaligned {
                what: "start",
                value: start,
                align,
            }),
            Err(NvdimmError::BadAlign(value)) => Err(Reason::Unaligned {
                what: "align",
                value,
                align: MAX_ALIGN,
            }),
        }
    }
}

fn check_alignment(req: &RegionRequest) -> Result<(), Reason> {
    if !req.start.is_multiple_of(SUBSECTION) {
        return Err(Reason::Unaligned {
            what: "start",
            value: req.start,
            align: SUBSECTION,
        });
    }
    let nfit = matches!(req.source, Source::Nfit { .. });
    if !nfit && !req.size.is_multiple_of(SUBSECTION) {
        return Err(Reason::Unaligned {
            what: "size",
            value: req.size,
            align: SUBSECTION,
        });
    }
    if !req.align.is_power_of_two() || !(PAGE_SIZE..=MAX_ALIGN).contains(&req.align) {
        return Err(Reason::Unaligned {
            what: "align",
            value: req.align,
            align: MAX_ALIGN,
        });
    }
    Ok(())
}

fn overlaps(a: &Range<u64>, b: &Range<u64>) -> bool {
    a.start < b.end && b.start < a.end
}

/// The first byte of `range` not covered by `spans` (sorted, merged), if any.
fn first_uncovered(spans: &[Range<u64>], range: &Range<u64>) -> Option<u64> {
    let mut pos = range.start;
    for span in spans {
        if span.end <= pos {
            continue;
        }
        if span.start > pos {
            break;
        }
        pos = span.end;
        if pos >= range.end {
            return None;
        }
    }
    Some(pos)
}
