//! NVDIMM hot-add on x86 (qemu-hotplug.md §2.3, §2.4): GPE0 bit 4 says the FIT changed;
//! the FIT is read without AML through QEMU's DSM mailbox (I/O port 0x0a18: write the
//! physical address of a RAM page below 4 GiB, QEMU answers in the same page), parsed
//! with `kernel::firmware::nfit`, and every persistent-memory SPA range not seen before
//! becomes an `Event::AddDevice` (no `_OST` exists for NVDIMMs).

use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;

use kernel::firmware::nfit;
use kernel::heap::fallible::try_collect;
use kernel::hotplug::engine::HotplugError;
use kernel::hotplug::event::{Event, EventSource, Via};
use x86_64::instructions::port::Port;

use crate::{kpt, sci};

/// The DSM mailbox port.
pub const DSM_PORT: u16 = 0x0a18;
/// QEMU's reserved root handle and the "Read FIT" function.
const ROOT_HANDLE: u32 = 0x10000;
const FN_READ_FIT: u32 = 1;
/// Reply status: the FIT changed while it was read (restart at 0).
const FIT_CHANGED: u32 = 0x100;
#[repr(C, align(4096))]
struct MailboxPage([u8; 4096]);

/// The mailbox page: in the kernel image's `.bss`, which the loader placed in RAM.
static mut PAGE: MailboxPage = MailboxPage([0; 4096]);

/// Why the FIT could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FitError {
    /// The mailbox page is not below 4 GiB (or its address is unknown).
    PageAbove4G,
    /// Nothing answered at the port (no `nvdimm=on`).
    NoMailbox,
    /// QEMU returned this status.
    Status(u32),
    /// The FIT kept changing or never ended.
    Unstable,
    /// The kernel heap refused room for the FIT (or its ranges).
    NoMemory,
}

/// One DSM call: the reply's status, its data appended to `out`; `Ok(None)` when nothing
/// answered.
fn call(pa: u32, offset: u32, out: &mut Vec<u8>) -> Result<Option<u32>, FitError> {
    let page = &raw mut PAGE;
    let request = [ROOT_HANDLE, 1, FN_READ_FIT, offset];
    // SAFETY: PAGE is only touched here, from the shell loop (one CPU, no interrupt
    // handler uses it); QEMU reads and writes it synchronously inside the port write.
    unsafe {
        let p = page.cast::<u32>();
        for (i, w) in request.iter().enumerate() {
            core::ptr::write_volatile(p.add(i), *w);
        }
        Port::<u32>::new(DSM_PORT).write(pa);
        // A reply is at most one page long, so an untouched request means no mailbox.
        let len = core::ptr::read_volatile(p);
        if len == ROOT_HANDLE {
            return Ok(None);
        }
        let status = core::ptr::read_volatile(p.add(1));
        let n = (len as usize).clamp(8, 4096);
        if status == 0 {
            out.try_reserve(n - 8).map_err(|_| FitError::NoMemory)?;
            out.extend_from_slice(core::slice::from_raw_parts(page.cast::<u8>().add(8), n - 8));
        }
        Ok(Some(status))
    }
}

/// Reads the whole FIT through the mailbox.
pub fn read_fit() -> Result<Vec<u8>, FitError> {
    let pa = kpt::image_pa(&raw const PAGE as u64).ok_or(FitError::PageAbove4G)?;
    let pa = u32::try_from(pa).map_err(|_| FitError::PageAbove4G)?;
    let mut fit = Vec::new();
    for _ in 0..64 {
        let before = fit.len();
        let status = call(pa, before as u32, &mut fit)?.ok_or(FitError::NoMailbox)?;
        match status {
            0 if fit.len() == before => return Ok(fit),
            0 => {}
            FIT_CHANGED => fit.clear(),
            other => return Err(FitError::Status(other)),
        }
    }
    Err(FitError::Unstable)
}

/// The NVDIMM hot-add source.
pub struct NvdimmFit {
    seen: Vec<Range<u64>>,
    reads: u64,
    added: u64,
    last_error: Option<FitError>,
}

impl NvdimmFit {
    /// Reads the FIT once: ranges already there (cold-plugged, handled by the regions
    /// code at boot) are not events. `None` when no mailbox answers. Needs GPE0 (the
    /// SCI or GPE polling): the FIT is not re-read on every idle poll.
    pub fn probe() -> Option<Self> {
        let fit = match read_fit() {
            Ok(fit) => fit,
            Err(e) => {
                log::info!("nvdimm: no FIT mailbox at {DSM_PORT:#x}: {e:?}");
                return None;
            }
        };
        let seen = pmem(&fit).into_iter().map(|(_, r)| r).collect::<Vec<_>>();
        log::info!(
            "nvdimm: fit bytes={} ranges={} mailbox={DSM_PORT:#x}",
            fit.len(),
            seen.len()
        );
        Some(NvdimmFit {
            seen,
            reads: 1,
            added: 0,
            last_error: None,
        })
    }
}

/// The persistent-memory SPA ranges of a FIT, with their range index.
fn pmem(fit: &[u8]) -> Vec<(u16, Range<u64>)> {
    let ranges = nfit::parse_structures(fit).and_then(|n| {
        try_collect(n.pmem().map(|s| (s.index, s.base..s.base + s.length)))
            .map_err(|_| nfit::NfitError::NoMemory)
    });
    ranges.unwrap_or_else(|e| {
        log::warn!("nvdimm: FIT ignored: {e}");
        Vec::new()
    })
}

impl EventSource for NvdimmFit {
    fn name(&self) -> &str {
        "acpi-nvdimm"
    }

    fn poll(&mut self, out: &mut Vec<Event>) {
        if !sci::take(sci::GPE_NVDIMM) {
            return;
        }
        self.reads += 1;
        let fit = match read_fit() {
            Ok(fit) => fit,
            Err(e) => {
                self.last_error = Some(e);
                log::warn!("nvdimm: FIT read failed: {e:?}");
                return;
            }
        };
        for (index, range) in pmem(&fit) {
            if self.seen.contains(&range) {
                continue;
            }
            // Room first: a range not recorded as seen is found again by the next read.
            if self.seen.try_reserve(1).is_err() || out.try_reserve(1).is_err() {
                self.last_error = Some(FitError::NoMemory);
                log::warn!("nvdimm: no heap room for FIT range {range:#x?}; ignored");
                break;
            }
            self.seen.push(range.clone());
            out.push(Event::AddDevice {
                range,
                via: Via::Nvdimm { range_index: index },
            });
        }
    }

    fn complete(&mut self, event: &Event, result: &Result<(), HotplugError>) {
        if let (Event::AddDevice { .. }, Ok(())) = (event, result) {
            self.added += 1;
        }
    }

    fn describe(&self, out: &mut dyn fmt::Write) -> fmt::Result {
        write!(
            out,
            "hotplug.source name=acpi-nvdimm mailbox={DSM_PORT:#x} gpe.bit=4 fit.reads={} ranges={} added={} ",
            self.reads,
            self.seen.len(),
            self.added
        )?;
        if let Some(e) = self.last_error {
            write!(out, "error={e:?} ")?;
        }
        sci::describe(out)?;
        writeln!(out)
    }
}
