//! The Limine requests (crate `limine` 0.6, base revision 6) between the start and end
//! markers, and reading their responses into what the boot code needs. A missing
//! response is printed; only the HHDM and the memory map are indispensable.

use ::limine::memmap::{self, Entry};
use ::limine::paging::PagingMode;
use ::limine::request::{
    BootloaderInfoRequest, ExecutableAddressRequest, ExecutableCmdlineRequest,
    ExecutableFileRequest, FirmwareTypeRequest, HhdmRequest, MemmapRequest, PagingModeRequest,
    RsdpRequest, StackSizeRequest,
};
use ::limine::{BaseRevision, RequestsEndMarker, RequestsStartMarker};
use kernel::boot_info::{MemKind, MemRegion, MemoryMap};
use kernel::firmware::limine;
use kernel::{console, kprintln};
use spin::Once;

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
static PAGING: PagingModeRequest = PagingModeRequest::new_exact(PagingMode::X86_64_4LVL);

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
    /// `"<name> <version>"` of the loader.
    pub loader: &'static str,
}

/// Reads every response, prints the `limine:` records, and stops the run (status 1)
/// when the HHDM or the memory map is missing.
pub fn gather() -> Handover {
    report_revision();
    let mut missing = Missing::default();
    let loader = loader_name(&mut missing);
    let Some(hhdm) = HHDM.response().map(|r| r.offset) else {
        kprintln!("limine: fatal: no HHDM response, cannot reach physical memory");
        console::exit(1);
    };
    let Some(map) = MEMMAP.response() else {
        kprintln!("limine: fatal: no memory-map response, RAM unknown");
        console::exit(1);
    };
    let memory = convert(map.entries());
    let exec = EXECUTABLE_ADDRESS
        .response()
        .map(|r| (r.physical_base, r.virtual_base));
    missing.note(exec.is_none(), "executable-address");
    let rsdp = RSDP.response().map(|r| {
        let a = r.address as u64;
        // Physical under base revision 3 only, an HHDM address otherwise.
        if a >= hhdm { a - hhdm } else { a }
    });
    missing.note(rsdp.is_none(), "rsdp");
    let (cmdline, source) = limine::choose_cmdline(
        CMDLINE.response().map(|r| r.cmdline()),
        EXECUTABLE_FILE
            .response()
            .map(|r| r.executable_file().cmdline()),
    );
    missing.note(CMDLINE.response().is_none(), "executable-cmdline");
    missing.note(STACK.response().is_none(), "stack-size");
    let paging = PAGING.response().map(|r| r.mode);
    missing.note(paging.is_none(), "paging-mode");
    let firmware = FIRMWARE.response().map(|r| r.firmware_type);
    missing.note(firmware.is_none(), "firmware-type");
    kprintln!(
        "limine: loader=\"{loader}\" hhdm={hhdm:#x} memmap_entries={} firmware={} paging={}",
        map.entries().len(),
        firmware_name(firmware),
        match paging {
            Some(PagingMode::X86_64_4LVL) => "4level",
            Some(PagingMode::X86_64_5LVL) => "5level",
            None => "unreported",
        }
    );
    if let Some((p, v)) = exec {
        kprintln!(
            "limine: executable phys={p:#x} virt={v:#x} rsdp={:#x}",
            rsdp.unwrap_or(0)
        );
    }
    missing.print();
    kprintln!("{}", limine::CmdlineRecord(cmdline, source));
    Handover {
        hhdm,
        memory,
        entries: map.entries(),
        exec,
        rsdp,
        cmdline,
        loader,
    }
}

/// The `limine: base_revision` record, and the warning for an older loader.
fn report_revision() {
    let revision = limine::BaseRevision {
        requested: BaseRevision::MAX_SUPPORTED,
        used: BASE_REVISION.actual_revision(),
        supported: BASE_REVISION.is_supported(),
    };
    kprintln!("{}", revision.record());
    if let Some(warning) = revision.warning() {
        kprintln!("{warning}");
    }
}

/// Names of requests that got no response.
#[derive(Default)]
struct Missing {
    names: [&'static str; 12],
    len: usize,
}

impl Missing {
    fn note(&mut self, missing: bool, name: &'static str) {
        if missing && self.len < self.names.len() {
            self.names[self.len] = name;
            self.len += 1;
        }
    }

    fn print(&self) {
        if self.len > 0 {
            kprintln!(
                "limine: missing responses: {}",
                Joined(&self.names[..self.len])
            );
        }
    }
}

struct Joined<'a>(&'a [&'a str]);

impl core::fmt::Display for Joined<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(s)?;
        }
        Ok(())
    }
}

/// `"<name> <version>"`, kept in a static buffer for the kernel's `&'static str`.
fn loader_name(missing: &mut Missing) -> &'static str {
    struct Name {
        buf: [u8; 96],
        len: usize,
    }
    static NAME: Once<Name> = Once::new();
    let Some(info) = BOOTLOADER_INFO.response() else {
        missing.note(true, "bootloader-info");
        return "unknown (no bootloader-info response)";
    };
    let n = NAME.call_once(|| {
        let mut n = Name {
            buf: [0; 96],
            len: 0,
        };
        for part in [info.name(), " ", info.version()] {
            let take = part.len().min(n.buf.len() - n.len);
            n.buf[n.len..n.len + take].copy_from_slice(&part.as_bytes()[..take]);
            n.len += take;
        }
        n
    });
    core::str::from_utf8(&n.buf[..n.len]).unwrap_or("?")
}

fn firmware_name(t: Option<u64>) -> &'static str {
    match t {
        Some(0) => "x86bios",
        Some(1) => "efi32",
        Some(2) => "efi64",
        Some(3) => "sbi",
        Some(_) => "other",
        None => "unreported",
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

/// Whether a Limine entry type is mapped in the kernel's own HHDM: everything that is
/// RAM or firmware data (RESERVED_MAPPED included), never RESERVED or BAD_MEMORY.
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
