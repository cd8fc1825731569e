//! Limine protocol constants and the response layouts this loader writes.
//!
//! Layouts follow the protocol specification (all fields `u64`, pointers are HHDM
//! virtual addresses). A request is `id[4], revision, response`, then its own fields.

/// The common first two words of every request ID.
pub const COMMON_MAGIC: [u64; 2] = [0xc7b1dd30df4c8b88, 0x0a82e883a194f07b];

/// Requests-start marker.
pub const START_MARKER: [u64; 4] = [
    0xf6b8f4b39de7d1ae,
    0xfab91a6940fcb9cf,
    0x785c6ed015d3e316,
    0x181e920a7852b9d9,
];

/// Requests-end marker.
pub const END_MARKER: [u64; 2] = [0xadc0e0531bb10d03, 0x9572709f31764c62];

/// Byte offset of a request's `revision` field.
pub const REQ_REVISION: usize = 32;
/// Byte offset of a request's `response` pointer.
pub const REQ_RESPONSE: usize = 40;
/// Byte offset of the first request-specific field.
pub const REQ_EXTRA: usize = 48;

/// Request IDs (the last two words), one per feature the loader knows by name.
pub mod id {
    /// Bootloader Info.
    pub const BOOTLOADER_INFO: [u64; 2] = [0xf55038d8e2a1202f, 0x279426fcf5f59740];
    /// Executable Cmdline.
    pub const EXECUTABLE_CMDLINE: [u64; 2] = [0x4b161536e598651e, 0xb390ad4a2f1f303a];
    /// Firmware Type.
    pub const FIRMWARE_TYPE: [u64; 2] = [0x8c2f75d90bef28a8, 0x7045a4688eac00c3];
    /// Stack Size.
    pub const STACK_SIZE: [u64; 2] = [0x224ef0460a8e8926, 0xe1cb0fc25f46ea3d];
    /// HHDM.
    pub const HHDM: [u64; 2] = [0x48dcf1cb8ad2b852, 0x63984e959a98244b];
    /// Paging Mode.
    pub const PAGING_MODE: [u64; 2] = [0x95c1a0edab0944cb, 0xa4e5cb3842f7488a];
    /// Memory Map.
    pub const MEMMAP: [u64; 2] = [0x67cf3d9d378a806f, 0xe304acdfc50c3c62];
    /// Entry Point.
    pub const ENTRY_POINT: [u64; 2] = [0x13d86c035a1cd3e1, 0x2b0caa89d8f3026a];
    /// Executable File.
    pub const EXECUTABLE_FILE: [u64; 2] = [0xad97e90e83f1ed67, 0x31eb5d1c5ff23b69];
    /// RSDP.
    pub const RSDP: [u64; 2] = [0xc5e77b6b397e7b43, 0x27637845accdcf3c];
    /// Executable Address.
    pub const EXECUTABLE_ADDRESS: [u64; 2] = [0x71ba76863cc55f63, 0xb2644a48c516a487];

    /// A readable name for log lines; `None` for IDs this loader does not know.
    pub fn name(id: [u64; 2]) -> Option<&'static str> {
        Some(match id {
            BOOTLOADER_INFO => "bootloader-info",
            EXECUTABLE_CMDLINE => "executable-cmdline",
            FIRMWARE_TYPE => "firmware-type",
            STACK_SIZE => "stack-size",
            HHDM => "hhdm",
            PAGING_MODE => "paging-mode",
            MEMMAP => "memmap",
            ENTRY_POINT => "entry-point",
            EXECUTABLE_FILE => "executable-file",
            RSDP => "rsdp",
            EXECUTABLE_ADDRESS => "executable-address",
            _ => return None,
        })
    }
}

/// Limine memory-map entry types.
pub mod memtype {
    /// Free RAM.
    pub const USABLE: u64 = 0;
    /// Not to be touched.
    pub const RESERVED: u64 = 1;
    /// ACPI tables, reclaimable once parsed.
    pub const ACPI_RECLAIMABLE: u64 = 2;
    /// ACPI non-volatile storage.
    pub const ACPI_NVS: u64 = 3;
    /// Broken RAM.
    pub const BAD_MEMORY: u64 = 4;
    /// Loader data (responses, page tables, stack): reclaimable.
    pub const BOOTLOADER_RECLAIMABLE: u64 = 5;
    /// The kernel image (and modules).
    pub const EXECUTABLE_AND_MODULES: u64 = 6;
    /// A framebuffer.
    pub const FRAMEBUFFER: u64 = 7;
    /// Reserved but mapped in the HHDM (base revision 4 onwards).
    pub const RESERVED_MAPPED: u64 = 8;
}

/// Firmware type values of the Firmware Type response.
pub const FIRMWARE_EFI64: u64 = 2;

/// The default HHDM base with 4-level paging on x86_64.
pub const HHDM_X86_64_4LEVEL: u64 = 0xffff_8000_0000_0000;

/// Minimum stack the protocol guarantees.
pub const MIN_STACK: u64 = 64 * 1024;

/// One memory-map entry as the kernel sees it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemmapEntry {
    /// First byte.
    pub base: u64,
    /// Length in bytes.
    pub length: u64,
    /// A [`memtype`] value.
    pub typ: u64,
}

impl MemmapEntry {
    /// One past the last byte.
    pub const fn end(&self) -> u64 {
        self.base + self.length
    }
}

/// Bootloader Info response.
#[repr(C)]
pub struct BootloaderInfo {
    /// Response revision.
    pub revision: u64,
    /// C string.
    pub name: u64,
    /// C string.
    pub version: u64,
}

/// A response holding one `u64` after its revision (HHDM offset, firmware type, paging
/// mode, command-line pointer, RSDP address).
#[repr(C)]
pub struct OneWord {
    /// Response revision.
    pub revision: u64,
    /// The value.
    pub value: u64,
}

/// Responses that carry only their revision (Stack Size, Entry Point).
#[repr(C)]
pub struct RevisionOnly {
    /// Response revision.
    pub revision: u64,
}

/// Memory Map response.
#[repr(C)]
pub struct Memmap {
    /// Response revision.
    pub revision: u64,
    /// Number of entries.
    pub entry_count: u64,
    /// Pointer to an array of pointers to [`MemmapEntry`].
    pub entries: u64,
}

/// Executable Address response.
#[repr(C)]
pub struct ExecutableAddress {
    /// Response revision.
    pub revision: u64,
    /// Physical base of the image.
    pub physical_base: u64,
    /// Virtual base of the image.
    pub virtual_base: u64,
}

/// Executable File response.
#[repr(C)]
pub struct ExecutableFile {
    /// Response revision.
    pub revision: u64,
    /// Pointer to a [`File`].
    pub file: u64,
}

/// `limine_file` (112 bytes; offsets per the protocol, including `unused` at 44).
#[repr(C)]
pub struct File {
    /// Structure revision.
    pub revision: u64,
    /// Address of the file contents.
    pub address: u64,
    /// Size of the file.
    pub size: u64,
    /// C string: path on the boot volume.
    pub path: u64,
    /// C string: the command line.
    pub string: u64,
    /// Media type (0 generic).
    pub media_type: u32,
    /// Padding.
    pub unused: u32,
    /// TFTP server IP.
    pub tftp_ip: u32,
    /// TFTP port.
    pub tftp_port: u32,
    /// 1-based partition index, 0 unknown.
    pub partition_index: u32,
    /// MBR disk ID.
    pub mbr_disk_id: u32,
    /// GPT disk UUID.
    pub gpt_disk_uuid: [u8; 16],
    /// GPT partition UUID.
    pub gpt_part_uuid: [u8; 16],
    /// Filesystem UUID.
    pub part_uuid: [u8; 16],
}

const _: () = assert!(core::mem::size_of::<File>() == 112);
const _: () = assert!(core::mem::offset_of!(File, tftp_ip) == 48);
