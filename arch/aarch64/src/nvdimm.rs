//! The NVDIMM FIT read without AML through QEMU's DSM mailbox (qemu-hotplug.md §2.4):
//! a 32-bit MMIO register at 0x09090000 takes the physical address of a 4 KiB page below
//! 4 GiB; QEMU reads the request from the page and writes the reply into it inside the
//! register write. The page is a `.bss` page of the kernel image (loaded below 4 GiB).
//!
//! As an event source (`acpi-nvdimm`): on GED selector bit 0x4 the FIT is re-read and
//! every persistent-memory SPA range not seen before becomes an `AddDevice` event (the
//! engine makes it a ZONE_DEVICE region). NVDIMMs have no `_OST` and no hot-remove.

use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;

use kernel::firmware::nfit;
use kernel::hotplug::engine::HotplugError;
use kernel::hotplug::event::{Event, EventSource, Via};

use crate::kpt;
use crate::mmio::Mmio;

/// QEMU `virt`'s DSM mailbox (`base_memmap[VIRT_NVDIMM_ACPI]`), with `nvdimm=on` only.
pub const DSM_MAILBOX: u64 = 0x0909_0000;
/// The QEMU-reserved root handle, revision 1, function 1: "Read FIT".
const ROOT_HANDLE: u32 = 0x1_0000;
const READ_FIT: u32 = 1;
/// Reply status: the FIT changed during the read; restart at offset 0.
const FIT_CHANGED: u32 = 0x100;
/// Restarts allowed before giving up.
const MAX_RESTARTS: u32 = 8;

#[repr(C, align(4096))]
struct DsmPage([u8; 4096]);

/// The request / reply page (only ever touched through raw pointers, volatile).
static mut DSM_PAGE: DsmPage = DsmPage([0; 4096]);

/// Why a FIT read failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FitError {
    /// The DSM page is not below 4 GiB (or its physical address is unknown).
    PageAbove4G,
    /// The reply reported `status` (3: bad offset).
    Status(u32),
    /// The FIT kept changing.
    Unstable,
    /// A reply length over the page.
    BadLength(u32),
    /// The kernel heap refused room for the FIT (or its ranges).
    NoMemory,
}

/// The mailbox and the FIT it serves.
pub struct FitReader {
    mailbox: Mmio,
    page_pa: u32,
    /// SPA range indexes already turned into events (or described at boot by the NFIT).
    seen: Vec<u16>,
    /// Reads done, for `describe`.
    pub reads: u64,
    /// Bytes of the last FIT read.
    pub last_len: usize,
    /// FIT reads that failed.
    pub errors: u64,
    /// Events produced.
    pub added: u64,
}

impl FitReader {
    /// The mailbox at [`DSM_MAILBOX`]; the persistent-memory ranges of the current FIT
    /// count as seen (the boot NFIT has them).
    ///
    /// # Safety
    /// The machine must have the DSM mailbox (`nvdimm=on`) mapped as device memory.
    pub unsafe fn new() -> Result<FitReader, FitError> {
        let page_va = &raw const DSM_PAGE as u64;
        let page_pa = kpt::image_pa(page_va)
            .and_then(|pa| u32::try_from(pa).ok())
            .ok_or(FitError::PageAbove4G)?;
        let mut reader = FitReader {
            // SAFETY: the caller's contract.
            mailbox: unsafe { Mmio::new(DSM_MAILBOX, 4) },
            page_pa,
            seen: Vec::new(),
            reads: 0,
            last_len: 0,
            errors: 0,
            added: 0,
        };
        let fit = reader.read_fit()?;
        if let Ok(parsed) = nfit::parse_structures(&fit) {
            reader.seen.extend(parsed.pmem().map(|s| s.index));
        }
        Ok(reader)
    }

    /// Reads the whole FIT (restarting when QEMU says it changed).
    pub fn read_fit(&mut self) -> Result<Vec<u8>, FitError> {
        let page = &raw mut DSM_PAGE as *mut u8;
        let mut fit = Vec::new();
        let mut restarts = 0;
        loop {
            let offset = fit.len() as u32;
            let request = [ROOT_HANDLE, 1, READ_FIT, offset];
            for (i, word) in request.iter().enumerate() {
                // SAFETY: the DSM page is 4 KiB of `.bss` used only here (one caller at
                // a time: the shell loop); i * 4 < 16.
                unsafe { page.add(i * 4).cast::<u32>().write_volatile(*word) };
            }
            self.mailbox.write32(0, self.page_pa);
            self.reads += 1;
            // SAFETY: as above; QEMU wrote the reply during the register write.
            let (len, status) = unsafe {
                (
                    page.cast::<u32>().read_volatile(),
                    page.add(4).cast::<u32>().read_volatile(),
                )
            };
            match status {
                0 => {}
                FIT_CHANGED if restarts < MAX_RESTARTS => {
                    restarts += 1;
                    fit.clear();
                    continue;
                }
                FIT_CHANGED => return Err(FitError::Unstable),
                other => return Err(FitError::Status(other)),
            }
            if !(8..=4096).contains(&len) {
                return Err(FitError::BadLength(len));
            }
            if len == 8 {
                break;
            }
            fit.try_reserve(len as usize - 8)
                .map_err(|_| FitError::NoMemory)?;
            for i in 8..len as usize {
                // SAFETY: as above; i < len <= 4096.
                fit.push(unsafe { page.add(i).read_volatile() });
            }
        }
        self.last_len = fit.len();
        Ok(fit)
    }

    /// Re-reads the FIT; each persistent-memory range not seen before becomes an
    /// `AddDevice` event. Returns the ranges that were new.
    pub fn rescan(&mut self, out: &mut Vec<Event>) -> Result<Vec<Range<u64>>, FitError> {
        let fit = self.read_fit()?;
        let parsed = nfit::parse_structures(&fit).map_err(|e| match e {
            nfit::NfitError::NoMemory => FitError::NoMemory,
            _ => FitError::Status(u32::MAX),
        })?;
        let mut new = Vec::new();
        for spa in parsed.pmem() {
            if !self.seen.contains(&spa.index) {
                // Room first: an index not recorded as seen is found again next time.
                if self.seen.try_reserve(1).is_err()
                    || new.try_reserve(1).is_err()
                    || out.try_reserve(1).is_err()
                {
                    return Err(FitError::NoMemory);
                }
                self.seen.push(spa.index);
                let range = spa.base..spa.base + spa.length;
                new.push(range.clone());
                out.push(Event::AddDevice {
                    range,
                    via: Via::Nvdimm {
                        range_index: spa.index,
                    },
                });
            }
        }
        Ok(new)
    }
}

impl EventSource for FitReader {
    fn name(&self) -> &str {
        "acpi-nvdimm"
    }

    fn poll(&mut self, out: &mut Vec<Event>) {
        if crate::ged::take(crate::ged::SEL_NVDIMM) {
            match self.rescan(out) {
                Ok(new) => self.added += new.len() as u64,
                Err(e) => {
                    self.errors += 1;
                    log::warn!("hotplug: nvdimm FIT read failed: {e:?}");
                }
            }
        }
    }

    fn complete(&mut self, _event: &Event, _result: &Result<(), HotplugError>) {}

    fn describe(&self, out: &mut dyn fmt::Write) -> fmt::Result {
        write!(
            out,
            "hotplug.source name=acpi-nvdimm mailbox={DSM_MAILBOX:#x} page={:#x} reads={} fit.bytes={} spa.known={} added={} errors={} ",
            self.page_pa,
            self.reads,
            self.last_len,
            self.seen.len(),
            self.added,
            self.errors
        )?;
        crate::ged::describe(out)?;
        writeln!(out)
    }
}
