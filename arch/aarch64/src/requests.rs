//! The Limine requests (crate `limine` 0.6, base revision 6) between the start and end
//! markers, and reading their responses. Reading happens before the console exists
//! (the UART is MMIO, which the loader's HHDM does not map), so [`gather`] is silent
//! and [`Handover::print`] reports afterwards.

use ::limine::memmap::{self, Entry};
use ::limine::paging::PagingMode;
use ::limine::request::{
    BootloaderInfoRequest, DtbRequest, ExecutableAddressRequest, ExecutableCmdlineRequest,
    ExecutableFileRequest, FirmwareTypeRequest, HhdmRequest, MemmapRequest, PagingModeRequest,
    RsdpRequest, StackSizeRequest,
};
use ::limine::{BaseRevision, RequestsEndMarker, RequestsStartMarker};
use kernel::boot_info::{MemKind, MemRegion, MemoryMap};
use kernel::firmware::limine;
use kernel::kprintln;

/// Stack the kernel asks for (the protocol's minimum is 64 KiB).
pub const STACK_SIZE: u64 = 128 * 1024;

#[used]
#[unsafe(link_section = ".limine_requests_start")]
static START: RequestsStartMarker = RequestsStartMarker::new();

#[used]
#[unsafe(link_section = ".limine_requests")]
static BASE_REVISION: BaseRevision = BaseRevision::new();

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
static DTB: DtbRequest = DtbRequest::new();

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
static PAGING: PagingModeRequest = PagingModeRequest::new_exact(PagingMode::AARCH64_4LVL);

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
    /// `(physical, virtual)` base of the kernel image.
    pub exec: (u64, u64),
    /// Physical address of the RSDP, if reported.
    pub rsdp: Option<u64>,
    /// Physical address of the DTB, if reported.
    pub dtb: Option<u64>,
    /// The command line ("" if not reported).
    pub cmdline: &'static str,
    /// The response the command line came from.
    pub cmdline_source: limine::CmdlineSource,
    /// The loader's name.
    pub loader: &'static str,
}

/// Reads every response; `Err` names an indispensable one that is missing (HHDM,
/// memory map, executable address: without them no page tables can be built).
pub fn gather() -> Result<Handover, &'static str> {
    let hhdm = HHDM.response().ok_or("hhdm")?.offset;
    let map = MEMMAP.response().ok_or("memmap")?;
    let exec = EXECUTABLE_ADDRESS
        .response()
        .map(|r| (r.physical_base, r.virtual_base))
        .ok_or("executable-address")?;
    let phys = |a: u64| if a >= hhdm { a - hhdm } else { a };
    let (cmdline, cmdline_source) = limine::choose_cmdline(
        CMDLINE.response().map(|r| r.cmdline()),
        EXECUTABLE_FILE
            .response()
            .map(|r| r.executable_file().cmdline()),
    );
    Ok(Handover {
        hhdm,
        memory: convert(map.entries()),
        entries: map.entries(),
        exec,
        rsdp: RSDP.response().map(|r| phys(r.address as u64)),
        dtb: DTB.response().map(|r| phys(r.dtb_ptr as u64)),
        cmdline,
        cmdline_source,
        loader: BOOTLOADER_INFO.response().map_or("unknown", |r| r.name()),
    })
}

impl Handover {
    /// The `limine:` records.
    pub fn print(&self) {
        let revision = limine::BaseRevision {
            requested: BaseRevision::MAX_SUPPORTED,
            used: BASE_REVISION.actual_revision(),
            supported: BASE_REVISION.is_supported(),
        };
        kprintln!("{}", revision.record());
        if let Some(warning) = revision.warning() {
            kprintln!("{warning}");
        }
        let version = BOOTLOADER_INFO.response().map_or("", |r| r.version());
        kprintln!(
            "limine: loader=\"{} {version}\" hhdm={:#x} memmap_entries={} firmware={} paging={}",
            self.loader,
            self.hhdm,
            self.entries.len(),
            match FIRMWARE.response().map(|r| r.firmware_type) {
                Some(2) => "efi64",
                Some(_) => "other",
                None => "unreported",
            },
            match PAGING.response().map(|r| r.mode) {
                Some(PagingMode::AARCH64_4LVL) => "4level",
                Some(_) => "other",
                None => "unreported",
            }
        );
        kprintln!(
            "limine: executable phys={:#x} virt={:#x} rsdp={:#x} dtb={:#x}",
            self.exec.0,
            self.exec.1,
            self.rsdp.unwrap_or(0),
            self.dtb.unwrap_or(0)
        );
        let missing = [
            ("bootloader-info", BOOTLOADER_INFO.response().is_none()),
            ("rsdp", self.rsdp.is_none()),
            ("dtb", self.dtb.is_none()),
            ("executable-cmdline", CMDLINE.response().is_none()),
            ("stack-size", STACK.response().is_none()),
            ("paging-mode", PAGING.response().is_none()),
            ("firmware-type", FIRMWARE.response().is_none()),
        ];
        if missing.iter().any(|m| m.1) {
            kernel::kprint!("limine: missing responses:");
            for (name, _) in missing.iter().filter(|m| m.1) {
                kernel::kprint!(" {name}");
            }
            kprintln!();
        }
        kprintln!(
            "{}",
            limine::CmdlineRecord(self.cmdline, self.cmdline_source)
        );
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

impl Handover {
    /// The physical ranges the kernel's HHDM maps (see [`hhdm_maps`]).
    pub fn hhdm_ranges(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.entries
            .iter()
            .filter(|e| hhdm_maps(e.type_))
            .map(|e| (e.base, e.base + e.length))
    }
}
