//! The x86_64 side of the loader: serial console, CPU features, firmware tables, the
//! GDT the kernel is entered with, platform quiescing and the hand-off trampoline.

mod fwcfg;
mod handoff;
mod io;
mod platform;

pub use fwcfg::cmdline_override;
pub use handoff::{Handoff, enter, trampoline_page};
pub use io::Serial;
pub use platform::quiesce;

use alloc::string::String;
use core::arch::x86_64::__cpuid;

use boot::elf::EM_X86_64;
use uefi::system;
use uefi::table::cfg::ConfigTableEntry;

use super::arena::Arena;

/// `e_machine` of the kernels this loader boots.
pub const ELF_MACHINE: u16 = EM_X86_64;

/// What the CPU offers for the hand-off tables.
#[derive(Clone, Copy, Debug)]
pub struct Features {
    /// 1 GiB pages (CPUID 0x80000001 EDX bit 26).
    pub gib_pages: bool,
    /// No-execute (CPUID 0x80000001 EDX bit 20).
    pub nx: bool,
}

/// Reads the CPU features that shape the page tables.
pub fn features() -> Features {
    let max = __cpuid(0x8000_0000).eax;
    let edx = if max >= 0x8000_0001 {
        __cpuid(0x8000_0001).edx
    } else {
        0
    };
    Features {
        gib_pages: edx & (1 << 26) != 0,
        nx: edx & (1 << 20) != 0,
    }
}

/// The RSDP from the UEFI configuration table (ACPI 2.0 preferred), physical.
pub fn rsdp() -> Option<u64> {
    system::with_config_table(|t| {
        let find = |g| t.iter().find(|e| e.guid == g).map(|e| e.address as u64);
        find(ConfigTableEntry::ACPI2_GUID).or_else(|| find(ConfigTableEntry::ACPI_GUID))
    })
}

/// Copies physical memory at `pa` into `buf` (identity-mapped under UEFI).
pub fn read_phys(pa: u64, buf: &mut [u8]) {
    // SAFETY: firmware tables (ACPI) are in memory the firmware identity-maps; reads
    // have no side effects there.
    unsafe { core::ptr::copy_nonoverlapping(pa as *const u8, buf.as_mut_ptr(), buf.len()) };
}

/// Builds the protocol's GDT (null, 16/32/64-bit code and data; 64-bit code is 0x28,
/// data 0x30) in the arena; returns the physical address of a GDTR whose base is the
/// table's HHDM address.
pub fn build_gdt(a: &mut Arena) -> u64 {
    const GDT: [u64; 7] = [
        0,
        0x0000_9a00_0000_ffff, // 16-bit code
        0x0000_9200_0000_ffff, // 16-bit data
        0x00cf_9a00_0000_ffff, // 32-bit code
        0x00cf_9200_0000_ffff, // 32-bit data
        0x00af_9a00_0000_ffff, // 64-bit code
        0x00cf_9200_0000_ffff, // 64-bit data
    ];
    let table = a.put(GDT);
    a.put(Gdtr {
        limit: (core::mem::size_of_val(&GDT) - 1) as u16,
        base: boot::protocol::HHDM_X86_64_4LEVEL + table,
    })
}

#[repr(C, packed)]
struct Gdtr {
    limit: u16,
    base: u64,
}

/// Refuses CPUs in a state the 4-level hand-off cannot handle.
pub fn check_entry_cpu() -> Result<(), String> {
    if io::cr4() & (1 << 12) != 0 {
        return Err(String::from(
            "firmware runs with 5-level paging (LA57); only 4-level is implemented",
        ));
    }
    Ok(())
}

/// Tells QEMU's isa-debug-exit that the boot failed (status 1), if the device exists.
pub fn fail_exit() {
    io::outl(0xf4, 0x11);
}

/// Stops this CPU.
pub fn halt() -> ! {
    loop {
        io::hlt();
    }
}
