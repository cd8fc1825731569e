//! Reading `limine.conf` and the kernel from the loader's own volume, placing the
//! kernel's segments in one physically contiguous block, and negotiating the base
//! revision with the tag found in it.

use alloc::string::String;
use alloc::vec::Vec;

use boot::conf::{self, Entry};
use boot::elf::{self, Image};
use boot::memmap::KERNEL_MEMORY_TYPE;
use boot::protocol::{MIN_STACK, REQ_EXTRA, id};
use boot::revision::{self, Negotiated};
use boot::scan::{self, Scan};
use uefi::boot::{self as bs, AllocateType, MemoryType};
use uefi::fs::FileSystem;
use uefi::{CString16, boot as uboot};

use super::{arch, err, say};

/// Where the config is looked for, first hit wins (Limine's order, plus `/boot`).
const CONF_PATHS: [&str; 5] = [
    "\\EFI\\BOOT\\limine.conf",
    "\\boot\\limine\\limine.conf",
    "\\boot\\limine.conf",
    "\\limine\\limine.conf",
    "\\limine.conf",
];

/// The loaded kernel and what the scan found in it.
pub struct Kernel {
    /// Path on the boot volume (`/`-separated).
    pub path: String,
    /// Command line handed over.
    pub cmdline: String,
    /// The parsed ELF.
    pub image: Image,
    /// The whole ELF file, kept for the Executable File response.
    pub file: &'static [u8],
    /// Physical base of the loaded block.
    pub phys: u64,
    /// Virtual base (the span start).
    pub vbase: u64,
    /// Bytes in the block.
    pub len: u64,
    /// Entry point (ELF `e_entry`, or the Entry Point request's).
    pub entry: u64,
    /// Requests found.
    pub scan: Scan,
    /// Base revision in use.
    pub revision: Negotiated,
    /// Stack size to give the kernel.
    pub stack_size: u64,
}

impl Kernel {
    /// The loaded block (identity-mapped by the firmware).
    pub fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: `phys..phys+len` was allocated for the kernel by `load` and is
        // identity-mapped while boot services run (and afterwards until the jump).
        unsafe { core::slice::from_raw_parts_mut(self.phys as *mut u8, self.len as usize) }
    }

    /// Reads the `u64` at byte `off` of the block.
    pub fn word(&mut self, off: usize) -> u64 {
        scan::word(self.bytes(), off)
    }
}

/// Reads the config and the kernel, loads and scans it.
pub fn load() -> Result<Kernel, String> {
    let proto = bs::get_image_file_system(uboot::image_handle())
        .map_err(|e| err("opening the boot volume", e))?;
    let mut fs = FileSystem::new(proto);
    let (conf_path, text) = read_conf(&mut fs)?;
    let config = conf::parse(&text).map_err(|e| alloc::format!("{conf_path}: {e}"))?;
    let entry: Entry = config.default_entry().clone();
    let cmdline = match arch::cmdline_override() {
        Some(c) => {
            say!(
                "hotmem-boot: cmdline from fw_cfg {}",
                boot::fwcfg::CMDLINE_FILE
            );
            c
        }
        None => entry.cmdline.clone(),
    };
    say!(
        "hotmem-boot: {conf_path}: entry \"{}\" path {} cmdline \"{cmdline}\"",
        entry.name,
        entry.path
    );
    let file = read(&mut fs, &entry.path.replace('/', "\\"))?.leak();
    let image =
        elf::parse(file, arch::ELF_MACHINE).map_err(|e| alloc::format!("{}: {e}", entry.path))?;
    let (vbase, vend) = image.span();
    let len = vend - vbase;
    let block = bs::allocate_pages(
        AllocateType::AnyPages,
        MemoryType::custom(KERNEL_MEMORY_TYPE),
        (len / 4096) as usize,
    )
    .map_err(|e| err("allocating the kernel block", e))?;
    let mut k = Kernel {
        path: entry.path,
        cmdline,
        entry: image.entry,
        image,
        file,
        phys: block.as_ptr() as u64,
        vbase,
        len,
        scan: Scan::default(),
        revision: revision::negotiate(Some(revision::MAX)).map_err(|e| err("revision", e))?,
        stack_size: MIN_STACK,
    };
    let image = k.image.clone();
    image
        .load(file, k.bytes(), arch::ELF_MACHINE)
        .map_err(|e| alloc::format!("{}: {e}", k.path))?;
    let scan_len = image.scan_len();
    k.scan = scan::scan(&k.bytes()[..scan_len]).map_err(|d| err("duplicate request", d))?;
    negotiate(&mut k)?;
    if let Some(r) = k.scan.find(id::STACK_SIZE) {
        let off = r.offset + REQ_EXTRA;
        k.stack_size = k.word(off).max(MIN_STACK).next_multiple_of(4096);
    }
    if let Some(r) = k.scan.find(id::ENTRY_POINT) {
        let off = r.offset + REQ_EXTRA;
        k.entry = k.word(off);
    }
    say!(
        "hotmem-boot: kernel phys={:#x} virt={:#x} size={:#x} requests={} markers={}/{}",
        k.phys,
        k.vbase,
        k.len,
        k.scan.requests.len(),
        u8::from(k.scan.start_marker),
        u8::from(k.scan.end_marker)
    );
    Ok(k)
}

/// Applies the base-revision rules and writes the tag back.
fn negotiate(k: &mut Kernel) -> Result<(), String> {
    let tag = k.scan.base_revision;
    k.revision = revision::negotiate(tag.map(|(_, r)| r)).map_err(|e| err("base revision", e))?;
    if let Some((off, requested)) = tag {
        let used = k.revision.used.0;
        scan::set_word(k.bytes(), off + 8, used);
        if k.revision.supported {
            scan::set_word(k.bytes(), off + 16, 0);
        }
        say!("hotmem-boot: base revision requested={requested} used={used}");
    }
    Ok(())
}

fn read_conf(fs: &mut FileSystem) -> Result<(&'static str, String), String> {
    for p in CONF_PATHS {
        if let Ok(bytes) = read(fs, p) {
            let text = String::from_utf8(bytes).map_err(|_| alloc::format!("{p}: not UTF-8"))?;
            return Ok((p, text));
        }
    }
    Err(alloc::format!(
        "no limine.conf found (looked in {})",
        CONF_PATHS.join(", ")
    ))
}

fn read(fs: &mut FileSystem, path: &str) -> Result<Vec<u8>, String> {
    let p = CString16::try_from(path).map_err(|e| err(path, e))?;
    fs.read(p.as_ref())
        .map_err(|e| alloc::format!("reading {path}: {e}"))
}
