//! The Limine requests every Limine port makes (crate `limine` 0.6, base revision 6),
//! between the start and end markers, and reading their responses into a [`Handover`].
//! The protocol is the same on x86_64 and aarch64; the one per-arch value, the paging
//! mode, is the crate's `PagingMode::MIN` (4-level on both). A port adds a request of
//! its own (aarch64: the device tree) as a `static` in the same `.limine_requests`
//! section, which the linker scripts keep between the markers.
//!
//! Reading is silent ([`gather`]), since on aarch64 the console UART is not mapped until
//! the kernel's own tables are up; [`Handover::print`] writes the `limine:` records once
//! the console exists.

use ::limine::memmap::{self, Entry};
use ::limine::paging::PagingMode;
use ::limine::request::{
    BootloaderInfoRequest, ExecutableAddressRequest, ExecutableCmdlineRequest,
    ExecutableFileRequest, FirmwareTypeRequest, HhdmRequest, MemmapRequest, PagingModeRequest,
    RsdpRequest, StackSizeRequest,
};
use ::limine::{BaseRevision as Tag, RequestsEndMarker, RequestsStartMarker};

use super::{
    BaseRevision, CmdlineRecord, CmdlineSource, Missing, choose_cmdline, firmware_name, physical,
};
use crate::boot_info::{MemKind, MemRegion, MemoryMap};
use crate::{kprint, kprintln};

/// Stack the kernel asks for (the protocol's minimum is 64 KiB).
pub const STACK_SIZE: u64 = 128 * 1024;

#[used]
#[unsafe(link_section = ".limine_requests_start")]
static START: RequestsStartMarker = RequestsStartMarker::new();

#[used]
#[unsafe(link_section = ".limine_requests")]
static BASE_REVISION: Tag = Tag::new();

#[used]
#[unsafe(link_section = ".limine_requests")]
static BOOTLOADER_INFO: BootloaderInfoRequest = BootloaderInfoRequest::new();

#[used]
#[unsafe(link_section = ".limine_requests")]
static HHDM: HhdmRequest = HhdmRequest::new();

#[used]
#[unsafe(link_section = ".limine_requests")]
static MEMMAP: MemmapRequest = MemmapRequest::new();

#[used]
#[unsafe(link_section = ".limine_requests")]
static EXECUTABLE_ADDRESS: ExecutableAddressRequest = ExecutableAddressRequest::new();

#[used]
#[unsafe(link_section = ".limine_requests")]
static RSDP: RsdpRequest = RsdpRequest::new();

#[used]
#[unsafe(link_section = ".limine_requests")]
static CMDLINE: ExecutableCmdlineRequest = ExecutableCmdlineRequest::new();

/// Limine before 9.0 hands the command line only in the executable file response.
#[used]
#[unsafe(link_section = ".limine_requests")]
static EXECUTABLE_FILE: ExecutableFileRequest = ExecutableFileRequest::new();

#[used]
#[unsafe(link_section = ".limine_requests")]
static STACK: StackSizeRequest = StackSizeRequest::new(STACK_SIZE);

#[used]
#[unsafe(link_section = ".limine_requests")]
static PAGING: PagingModeRequest = PagingModeRequest::new_exact(PagingMode::MIN);

#[used]
#[unsafe(link_section = ".limine_requests")]
static FIRMWARE: FirmwareTypeRequest = FirmwareTypeRequest::new();

#[used]
#[unsafe(link_section = ".limine_requests_end")]
static END: RequestsEndMarker = RequestsEndMarker::new();

/// What the loader handed over.
pub struct Handover {
    /// HHDM offset.
    pub hhdm: u64,
    /// The memory map, converted.
    pub memory: MemoryMap,
    /// The memory map as the loader gave it.
    pub entries: &'static [&'static Entry],
    /// `(physical, virtual)` base of the kernel image, if reported.
    pub exec: Option<(u64, u64)>,
    /// Physical address of the RSDP, if reported.
    pub rsdp: Option<u64>,
    /// The command line ("" if not reported).
    pub cmdline: &'static str,
    /// The response the command line came from.
    pub cmdline_source: CmdlineSource,
    /// The loader's name (`unknown` without the bootloader-info response).
    pub loader: &'static str,
}

/// Reads every response (silently).
pub fn gather() -> Result<Handover, Missing> {
    let hhdm = HHDM.response().ok_or(Missing::Hhdm)?.offset;
    let map = MEMMAP.response().ok_or(Missing::Memmap)?;
    let (cmdline, cmdline_source) = choose_cmdline(
        CMDLINE.response().map(|r| r.cmdline()),
        EXECUTABLE_FILE
            .response()
            .map(|r| r.executable_file().cmdline()),
    );
    Ok(Handover {
        hhdm,
        memory: convert(map.entries()),
        entries: map.entries(),
        exec: EXECUTABLE_ADDRESS
            .response()
            .map(|r| (r.physical_base, r.virtual_base)),
        rsdp: RSDP.response().map(|r| physical(r.address as u64, hhdm)),
        cmdline,
        cmdline_source,
        loader: BOOTLOADER_INFO.response().map_or("unknown", |r| r.name()),
    })
}

/// The `limine: base_revision` record, and the warning for an older loader.
pub fn print_revision() {
    let revision = BaseRevision {
        requested: Tag::MAX_SUPPORTED,
        used: BASE_REVISION.actual_revision(),
        supported: BASE_REVISION.is_supported(),
    };
    kprintln!("{}", revision.record());
    if let Some(warning) = revision.warning() {
        kprintln!("{warning}");
    }
}

impl Handover {
    /// The `limine:` records: base revision, loader, executable placement (with the
    /// port's own address responses `extra`, e.g. `("dtb", ..)`), the responses that
    /// are missing, and where the command line came from.
    pub fn print(&self, extra: &[(&'static str, Option<u64>)]) {
        print_revision();
        let version = BOOTLOADER_INFO.response().map_or("", |r| r.version());
        kprintln!(
            "limine: loader=\"{} {version}\" hhdm={:#x} memmap_entries={} firmware={} paging={}",
            self.loader,
            self.hhdm,
            self.entries.len(),
            firmware_name(FIRMWARE.response().map(|r| r.firmware_type)),
            match PAGING.response().map(|r| r.mode) {
                Some(PagingMode::MIN) => "4level",
                Some(PagingMode::MAX) => "5level",
                None => "unreported",
            }
        );
        if let Some((phys, virt)) = self.exec {
            kprint!(
                "limine: executable phys={phys:#x} virt={virt:#x} rsdp={:#x}",
                self.rsdp.unwrap_or(0)
            );
            for (name, address) in extra {
                kprint!(" {name}={:#x}", address.unwrap_or(0));
            }
            kprintln!();
        }
        let generic = [
            ("bootloader-info", BOOTLOADER_INFO.response().is_none()),
            ("executable-address", self.exec.is_none()),
            ("rsdp", self.rsdp.is_none()),
        ];
        let own = extra
            .iter()
            .map(|&(name, address)| (name, address.is_none()));
        let rest = [
            ("executable-cmdline", CMDLINE.response().is_none()),
            ("stack-size", STACK.response().is_none()),
            ("paging-mode", PAGING.response().is_none()),
            ("firmware-type", FIRMWARE.response().is_none()),
        ];
        let mut missing = (generic.into_iter().chain(own).chain(rest))
            .filter(|m| m.1)
            .peekable();
        if missing.peek().is_some() {
            kprint!("limine: missing responses:");
            missing.for_each(|(name, _)| kprint!(" {name}"));
            kprintln!();
        }
        kprintln!("{}", CmdlineRecord(self.cmdline, self.cmdline_source));
    }

    /// The physical ranges the kernel's HHDM maps (see [`hhdm_maps`]).
    pub fn hhdm_ranges(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.entries
            .iter()
            .filter(|e| hhdm_maps(e.type_))
            .map(|e| (e.base, e.base + e.length))
    }
}

fn convert(entries: &[&Entry]) -> MemoryMap {
    let mut map = MemoryMap::new();
    for e in entries {
        let kind = match e.type_ {
            memmap::MEMMAP_USABLE => MemKind::Usable,
            memmap::MEMMAP_ACPI_RECLAIMABLE => MemKind::AcpiReclaimable,
            memmap::MEMMAP_ACPI_NVS => MemKind::AcpiNvs,
            memmap::MEMMAP_BAD_MEMORY => MemKind::Bad,
            memmap::MEMMAP_BOOTLOADER_RECLAIMABLE => MemKind::LoaderReclaimable,
            memmap::MEMMAP_EXECUTABLE_AND_MODULES => MemKind::Kernel,
            memmap::MEMMAP_FRAMEBUFFER => MemKind::Framebuffer,
            memmap::MEMMAP_MAPPED_RESERVED => MemKind::ReservedMapped,
            _ => MemKind::Reserved,
        };
        map.push(MemRegion {
            start: e.base,
            end: e.base + e.length,
            kind,
        });
    }
    map
}

/// Whether the kernel's HHDM maps a Limine entry type: RAM and firmware data
/// (RESERVED_MAPPED included), never RESERVED or BAD_MEMORY.
pub fn hhdm_maps(typ: u64) -> bool {
    !matches!(typ, memmap::MEMMAP_RESERVED | memmap::MEMMAP_BAD_MEMORY)
}
