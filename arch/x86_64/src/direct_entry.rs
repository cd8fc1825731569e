//! The PVH way in (QEMU `-kernel kernel`): the `XEN_ELFNOTE_PHYS32_ENTRY` note that makes
//! QEMU's x86 loader take this ELF, and the 32-bit trampoline it enters.
//!
//! QEMU loads every `PT_LOAD` at its physical address (`KERNEL_PHYS` onwards, see
//! `linker.ld`), and its PVH option ROM jumps to the note's address in 32-bit protected
//! mode without paging, EBX holding the physical address of `hvm_start_info` (the x86/HVM
//! direct boot ABI). The trampoline, running at physical addresses:
//!
//! 1. builds temporary tables in `.bss`: the low 4 GiB identity-mapped with 2 MiB pages
//!    (so the start info, the memory map and the ACPI tables can be read), and 1 GiB
//!    from `KERNEL_PHYS` at the link address `KERNEL_VIRT`;
//! 2. enables PAE, EFER.LME and paging, loads a two-descriptor GDT and far-jumps to
//!    64-bit code;
//! 3. jumps to the link address, takes the boot stack and calls
//!    [`crate::direct::x86_64_pvh_main`] with the start info's address.
//!
//! From there the kernel builds its own tables exactly as after a Limine boot.

/// Link address of the image (`KERNEL_VIRT` in `linker.ld`).
pub const KERNEL_VIRT: u64 = 0xffff_ffff_8000_0000;
/// Physical load address of the image on the PVH path (`KERNEL_PHYS` in `linker.ld`);
/// 2 MiB-aligned so the trampoline maps it with 2 MiB pages.
pub const KERNEL_PHYS: u64 = 0x20_0000;
/// `physical - virtual` of every image address, as the wrapping offset the assembler
/// adds to a symbol.
pub const TO_PHYS: u64 = KERNEL_PHYS.wrapping_sub(KERNEL_VIRT);
/// `XEN_ELFNOTE_PHYS32_ENTRY` (Xen's `public/elfnote.h`).
pub const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;

/// Bytes of the boot stack the trampoline hands to Rust.
#[cfg(target_os = "none")]
const STACK_BYTES: usize = 128 * 1024;
/// Temporary table pages: PML4, low PDPT, high PDPT, four low PDs, one high PD.
#[cfg(target_os = "none")]
const TABLE_PAGES: usize = 8;

#[cfg(target_os = "none")]
core::arch::global_asm!(
    r#"
    .section .pvh_note, "a", @note
    .balign 4
    .long 4
    .long 8
    .long {note_type}
    .asciz "Xen"
    .balign 4
    .quad x86_64_pvh_start + {to_phys}
    .balign 4

    .section .rodata.pvh_gdt, "a"
    .balign 8
x86_64_pvh_gdt:
    .quad 0
    .quad 0x00af9b000000ffff
    .quad 0x00cf93000000ffff
x86_64_pvh_gdtr:
    .word 23
    .long x86_64_pvh_gdt + {to_phys}

    .section .text.pvh, "ax"
    .code32
    .global x86_64_pvh_start
x86_64_pvh_start:
    cli
    cld
    movl %ebx, %esi
    movl ${tables} + {to_phys}, %ebp
    movl %ebp, %edi
    xorl %eax, %eax
    movl ${table_dwords}, %ecx
    rep stosl
    leal 0x1003(%ebp), %eax
    movl %eax, 0(%ebp)
    leal 0x2003(%ebp), %eax
    movl %eax, 511 * 8(%ebp)
    leal 0x3003(%ebp), %eax
    movl %eax, 0x1000(%ebp)
    leal 0x4003(%ebp), %eax
    movl %eax, 0x1008(%ebp)
    leal 0x5003(%ebp), %eax
    movl %eax, 0x1010(%ebp)
    leal 0x6003(%ebp), %eax
    movl %eax, 0x1018(%ebp)
    leal 0x7003(%ebp), %eax
    movl %eax, 0x2000 + 510 * 8(%ebp)
    leal 0x3000(%ebp), %edi
    movl $0x83, %eax
    movl $2048, %ecx
1:  movl %eax, (%edi)
    addl $0x200000, %eax
    addl $8, %edi
    loop 1b
    leal 0x7000(%ebp), %edi
    movl ${kernel_phys} + 0x83, %eax
    movl $512, %ecx
2:  movl %eax, (%edi)
    addl $0x200000, %eax
    addl $8, %edi
    loop 2b
    movl %cr4, %eax
    orl $0x20, %eax
    movl %eax, %cr4
    movl %ebp, %cr3
    movl $0xc0000080, %ecx
    rdmsr
    orl $0x100, %eax
    wrmsr
    movl %cr0, %eax
    orl $0x80000001, %eax
    movl %eax, %cr0
    lgdt x86_64_pvh_gdtr + {to_phys}
    ljmp $0x08, $x86_64_pvh_long + {to_phys}

    .code64
x86_64_pvh_long:
    movl $0x10, %eax
    movl %eax, %ds
    movl %eax, %es
    movl %eax, %ss
    movl %eax, %fs
    movl %eax, %gs
    movabsq $x86_64_pvh_high, %rax
    jmp *%rax

x86_64_pvh_high:
    leaq {stack} + {stack_bytes}(%rip), %rsp
    xorl %ebp, %ebp
    movl %esi, %edi
    call x86_64_pvh_main
3:  hlt
    jmp 3b
    .text
    "#,
    note_type = const XEN_ELFNOTE_PHYS32_ENTRY,
    to_phys = const TO_PHYS,
    kernel_phys = const KERNEL_PHYS,
    tables = sym PVH_TABLES,
    table_dwords = const TABLE_PAGES * 1024,
    stack = sym PVH_STACK,
    stack_bytes = const STACK_BYTES,
    options(att_syntax),
);

#[cfg(target_os = "none")]
#[repr(C, align(4096))]
struct Tables([u8; TABLE_PAGES * 4096]);

/// The trampoline's page tables (used until [`crate::kpt::switch`] loads the kernel's).
#[cfg(target_os = "none")]
static mut PVH_TABLES: Tables = Tables([0; TABLE_PAGES * 4096]);

#[cfg(target_os = "none")]
#[repr(C, align(16))]
struct Stack([u8; STACK_BYTES]);

/// The kernel stack on the PVH path (the Limine path runs on the loader's).
#[cfg(target_os = "none")]
static mut PVH_STACK: Stack = Stack([0; STACK_BYTES]);

#[cfg(test)]
mod tests {
    use super::*;

    /// `linker.ld` and this file must agree on where the image lives.
    #[test]
    fn linker_script_and_trampoline_agree_on_the_load_address() {
        let script = include_str!("../linker.ld");
        let value = |name: &str| {
            let line = script
                .lines()
                .find(|l| l.trim_start().starts_with(&format!("{name} =")))
                .unwrap_or_else(|| panic!("no {name} in linker.ld"));
            let hex = line.split('=').nth(1).unwrap().trim().trim_end_matches(';');
            u64::from_str_radix(hex.trim_start_matches("0x"), 16).unwrap()
        };
        assert_eq!(value("KERNEL_VIRT"), KERNEL_VIRT);
        assert_eq!(value("KERNEL_PHYS"), KERNEL_PHYS);
        assert_eq!(KERNEL_PHYS % (2 << 20), 0, "2 MiB pages map the image");
        assert_eq!(KERNEL_VIRT.wrapping_add(TO_PHYS), KERNEL_PHYS);
    }
}
