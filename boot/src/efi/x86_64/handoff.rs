//! The jump into the kernel. The trampoline runs identity-mapped in the new tables
//! only long enough to reach its own HHDM alias; then it loads the protocol GDT (through
//! its HHDM address), drops the identity slot, reloads CS = 0x28 and the data segments
//! = 0x30, sets the strict revision-5 state when asked, puts a zero return address on
//! the kernel stack, clears every GPR and returns into the entry point.

/// Everything the trampoline needs, read from memory before CR3 changes.
#[repr(C)]
pub struct Handoff {
    /// PML4 physical address.
    pub cr3: u64,
    /// Physical address of the PML4 slot of the trampoline's identity map.
    pub identity_slot: u64,
    /// HHDM offset.
    pub hhdm: u64,
    /// Kernel entry point.
    pub entry: u64,
    /// Top of the kernel stack (virtual, in the HHDM).
    pub stack_top: u64,
    /// Physical address of the GDTR (its base already an HHDM address).
    pub gdtr: u64,
    /// Non-zero: revision-5 CR0/CR4/IDTR/LDTR state.
    pub strict: u64,
    /// Non-zero: the CPU has NX (informational; EFER is set before).
    pub nx: u64,
}

core::arch::global_asm!(
    r#"
    .section .text.hotmem_handoff, "ax"
    .p2align 12
    .global hotmem_handoff
hotmem_handoff:
    cli
    cld
    mov r8,  [rdi + 0]
    mov r9,  [rdi + 8]
    mov r10, [rdi + 16]
    mov r11, [rdi + 24]
    mov r12, [rdi + 32]
    mov r13, [rdi + 40]
    mov r14, [rdi + 48]
    mov cr3, r8
    lea rax, [rip + 2f]
    add rax, r10
    jmp rax
2:
    add r13, r10
    lgdt [r13]
    add r9, r10
    mov qword ptr [r9], 0
    mov rax, cr3
    mov cr3, rax
    mov rsp, r12
    push 0x28
    lea rax, [rip + 3f]
    push rax
    retfq
3:
    mov ax, 0x30
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov fs, ax
    mov gs, ax
    test r14, r14
    jz 4f
    mov eax, 0x80010011
    mov cr0, rax
    mov rax, cr4
    and eax, 0x1000
    or eax, 0x20
    mov cr4, rax
    push 0
    push 0
    lidt [rsp]
    add rsp, 16
    xor eax, eax
    lldt ax
4:
    mov rsp, r12
    push 0
    push r11
    push 2
    popfq
    xor eax, eax
    xor ebx, ebx
    xor ecx, ecx
    xor edx, edx
    xor esi, esi
    xor edi, edi
    xor ebp, ebp
    xor r8d, r8d
    xor r9d, r9d
    xor r10d, r10d
    xor r11d, r11d
    xor r12d, r12d
    xor r13d, r13d
    xor r14d, r14d
    xor r15d, r15d
    ret
    .p2align 12
hotmem_handoff_end:
    "#
);

unsafe extern "sysv64" {
    fn hotmem_handoff(h: *const Handoff) -> !;
}

/// Page-aligned start of the trampoline (it is mapped identity, two pages).
pub fn trampoline_page() -> u64 {
    (hotmem_handoff as *const () as u64) & !0xfff
}

/// Switches to the kernel's address space and enters it. Never returns.
pub fn enter(h: &Handoff) -> ! {
    // SAFETY: `h` describes complete tables that map the trampoline (identity and
    // HHDM), the GDT, the stack and the kernel; boot services are gone and interrupts
    // are masked, so nothing else runs while the address space changes.
    unsafe { hotmem_handoff(h) }
}
