//! Filling in the responses: each known request gets a response in loader memory and
//! its `response` pointer set to the response's HHDM address. Unknown or unsupported
//! requests keep their NULL pointer, as the protocol says.
//!
//! Served: bootloader info, executable cmdline, firmware type, stack size, HHDM, paging
//! mode (4-level only), memory map, entry point, executable file, RSDP, executable
//! address.

use alloc::string::String;

use boot::protocol::{self as p, REQ_EXTRA, REQ_RESPONSE, id};

use super::arena::Arena;
use super::load::Kernel;
use super::say;
use super::steps::rsdp;

/// What must still be filled after ExitBootServices.
pub struct Plan {
    /// Physical address of the memory-map response, if requested.
    memmap: Option<u64>,
}

/// Fills every response that does not depend on the final memory map.
pub fn fill(k: &mut Kernel, a: &mut Arena, hhdm: u64) -> Result<Plan, String> {
    let rev = k.revision.used;
    let mut plan = Plan { memmap: None };
    let requests = k.scan.requests.clone();
    let mut served = String::new();
    let mut missing = String::new();
    for r in &requests {
        let resp = match r.id {
            id::BOOTLOADER_INFO => {
                let name = a.cstr(boot::LOADER_NAME);
                let version = a.cstr(boot::LOADER_VERSION);
                a.put(p::BootloaderInfo {
                    revision: 0,
                    name: hhdm + name,
                    version: hhdm + version,
                })
            }
            id::EXECUTABLE_CMDLINE => {
                let s = a.cstr(&k.cmdline);
                a.put(p::OneWord {
                    revision: 0,
                    value: hhdm + s,
                })
            }
            id::FIRMWARE_TYPE => a.put(p::OneWord {
                revision: 0,
                value: p::FIRMWARE_EFI64,
            }),
            id::STACK_SIZE | id::ENTRY_POINT => a.put(p::RevisionOnly { revision: 0 }),
            id::HHDM => a.put(p::OneWord {
                revision: 0,
                value: hhdm,
            }),
            id::PAGING_MODE => {
                // Request revision 1 adds max_mode and min_mode after mode.
                let min = if r.revision >= 1 {
                    k.word(r.offset + REQ_EXTRA + 16)
                } else {
                    0
                };
                if min > 0 {
                    return Err(String::from(
                        "kernel requires 5-level paging, which this loader lacks",
                    ));
                }
                a.put(p::OneWord {
                    revision: 0,
                    value: 0,
                })
            }
            id::MEMMAP => {
                let at = a.put(p::Memmap {
                    revision: 0,
                    entry_count: 0,
                    entries: 0,
                });
                plan.memmap = Some(at);
                at
            }
            id::EXECUTABLE_FILE => {
                let path = a.cstr(&k.path);
                let string = a.cstr(&k.cmdline);
                let file = a.put(p::File {
                    revision: 0,
                    address: hhdm + k.file.as_ptr() as u64,
                    size: k.file.len() as u64,
                    path: hhdm + path,
                    string: hhdm + string,
                    media_type: 0,
                    unused: 0,
                    tftp_ip: 0,
                    tftp_port: 0,
                    partition_index: 0,
                    mbr_disk_id: 0,
                    gpt_disk_uuid: [0; 16],
                    gpt_part_uuid: [0; 16],
                    part_uuid: [0; 16],
                });
                a.put(p::ExecutableFile {
                    revision: 0,
                    file: hhdm + file,
                })
            }
            id::RSDP => match rsdp() {
                Some(rsdp) => {
                    let value = if rev.rsdp_is_physical() {
                        rsdp
                    } else {
                        hhdm + rsdp
                    };
                    a.put(p::OneWord { revision: 0, value })
                }
                None => {
                    note(&mut missing, "rsdp(no ACPI)");
                    continue;
                }
            },
            id::EXECUTABLE_ADDRESS => a.put(p::ExecutableAddress {
                revision: 0,
                physical_base: k.phys,
                virtual_base: k.vbase,
            }),
            other => {
                note(
                    &mut missing,
                    &alloc::format!("{:016x}-{:016x}", other[0], other[1]),
                );
                continue;
            }
        };
        note(&mut served, id::name(r.id).unwrap_or("?"));
        let at = r.offset + REQ_RESPONSE;
        boot::scan::set_word(k.bytes(), at, hhdm + resp);
    }
    say!("hotmem-boot: served [{served}]");
    if !missing.is_empty() {
        say!("hotmem-boot: left NULL [{missing}]");
    }
    Ok(plan)
}

/// Fills the memory-map response from the final map (after ExitBootServices).
pub fn memmap(plan: &Plan, _a: &mut Arena, map: &[p::MemmapEntry], ptrs: &mut [u64], hhdm: u64) {
    let Some(resp) = plan.memmap else { return };
    for (slot, e) in ptrs.iter_mut().zip(map) {
        *slot = hhdm + core::ptr::from_ref(e) as u64;
    }
    // SAFETY: `resp` is the Memmap response placed in the loader arena by `fill`.
    let r = unsafe { &mut *(resp as *mut p::Memmap) };
    r.entry_count = map.len() as u64;
    r.entries = hhdm + ptrs.as_ptr() as u64;
}

fn note(list: &mut String, s: &str) {
    if !list.is_empty() {
        list.push(' ');
    }
    list.push_str(s);
}
