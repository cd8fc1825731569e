//! The first instructions and the exception vectors.
//!
//! The loader enters at EL1t (EL1 on SP_EL0, the loader's stack) with DAIF masked, or
//! at EL2 with VHE, where the `_EL1` register names reach the EL2 registers. Before any
//! Rust runs the entry selects SP_EL1 on a stack in `.bss` and points VBAR_EL1 at the
//! vectors, so every fault from then on is reported.
//!
//! Every vector saves x0-x30 and jumps to [`crate::exceptions`] with its index (0-15:
//! {current EL with SP0, current EL with SPx, lower EL AArch64, lower EL AArch32} x
//! {sync, IRQ, FIQ, SError}), where the exception is fatal. The one exception that
//! returns is an IRQ taken at EL1 on SP_EL1 (vector 5, PSTATE.I is cleared only once the
//! GIC is set up): `aarch64_irq_entry` saves x0-x30, ELR_EL1 and SPSR_EL1, calls
//! `gic::aarch64_irq` and restores everything before `eret`.

/// Bytes of the boot stack (SP_EL1).
pub const STACK_BYTES: usize = 128 * 1024;

// Asm because none of this can be Rust, so aarch64-cpu cannot help: the entry runs
// before any stack exists (it selects SP_EL1 and sets VBAR_EL1 first), the vectors are
// fixed 0x80-byte slots in a 2 KiB-aligned table, and the IRQ path saves and restores
// every register, ELR_EL1 and SPSR_EL1 around the Rust handler and ends in `eret`.
core::arch::global_asm!(
    r#"
    .section .text.entry, "ax"
    .global aarch64_start
aarch64_start:
    adrp x9, {stack}
    add x9, x9, :lo12:{stack}
    add x9, x9, #{stack_bytes} & 0xfff
    add x9, x9, #{stack_bytes} & ~0xfff
    msr spsel, #1
    mov sp, x9
    adrp x9, aarch64_vectors
    add x9, x9, :lo12:aarch64_vectors
    msr vbar_el1, x9
    isb
    mov x29, xzr
    mov x30, xzr
    bl aarch64_kernel_entry
1:  wfe
    b 1b

    .macro vector kind
    .balign 0x80
    sub sp, sp, #256
    stp x0, x1, [sp, #0]
    stp x2, x3, [sp, #16]
    stp x4, x5, [sp, #32]
    stp x6, x7, [sp, #48]
    stp x8, x9, [sp, #64]
    stp x10, x11, [sp, #80]
    stp x12, x13, [sp, #96]
    stp x14, x15, [sp, #112]
    stp x16, x17, [sp, #128]
    stp x18, x19, [sp, #144]
    stp x20, x21, [sp, #160]
    stp x22, x23, [sp, #176]
    stp x24, x25, [sp, #192]
    stp x26, x27, [sp, #208]
    stp x28, x29, [sp, #224]
    str x30, [sp, #240]
    mov x0, #\kind
    mov x1, sp
    b aarch64_exception
    .endm

    .macro irq_vector
    .balign 0x80
    b aarch64_irq_entry
    .endm

    .section .text.vectors, "ax"
    .balign 2048
    .global aarch64_vectors
aarch64_vectors:
    vector 0
    vector 1
    vector 2
    vector 3
    vector 4
    irq_vector
    vector 6
    vector 7
    vector 8
    vector 9
    vector 10
    vector 11
    vector 12
    vector 13
    vector 14
    vector 15

    .section .text, "ax"
aarch64_irq_entry:
    sub sp, sp, #272
    stp x0, x1, [sp, #0]
    stp x2, x3, [sp, #16]
    stp x4, x5, [sp, #32]
    stp x6, x7, [sp, #48]
    stp x8, x9, [sp, #64]
    stp x10, x11, [sp, #80]
    stp x12, x13, [sp, #96]
    stp x14, x15, [sp, #112]
    stp x16, x17, [sp, #128]
    stp x18, x19, [sp, #144]
    stp x20, x21, [sp, #160]
    stp x22, x23, [sp, #176]
    stp x24, x25, [sp, #192]
    stp x26, x27, [sp, #208]
    stp x28, x29, [sp, #224]
    mrs x9, elr_el1
    mrs x10, spsr_el1
    stp x30, x9, [sp, #240]
    str x10, [sp, #256]
    bl aarch64_irq
    ldr x10, [sp, #256]
    ldp x30, x9, [sp, #240]
    msr elr_el1, x9
    msr spsr_el1, x10
    ldp x0, x1, [sp, #0]
    ldp x2, x3, [sp, #16]
    ldp x4, x5, [sp, #32]
    ldp x6, x7, [sp, #48]
    ldp x8, x9, [sp, #64]
    ldp x10, x11, [sp, #80]
    ldp x12, x13, [sp, #96]
    ldp x14, x15, [sp, #112]
    ldp x16, x17, [sp, #128]
    ldp x18, x19, [sp, #144]
    ldp x20, x21, [sp, #160]
    ldp x22, x23, [sp, #176]
    ldp x24, x25, [sp, #192]
    ldp x26, x27, [sp, #208]
    ldp x28, x29, [sp, #224]
    add sp, sp, #272
    eret
    "#,
    stack = sym BOOT_STACK,
    stack_bytes = const STACK_BYTES,
);

#[repr(C, align(16))]
pub(crate) struct Stack([u8; STACK_BYTES]);

/// The boot stack: SP_EL1 for the kernel and its exception handlers (on either path).
pub(crate) static mut BOOT_STACK: Stack = Stack([0; STACK_BYTES]);
