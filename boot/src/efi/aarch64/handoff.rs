//! The jump into the kernel at EL1. The loader runs on AAVMF's identity map; the
//! trampoline page is identity-mapped in the new TTBR0 tables too, so the switch of
//! MAIR, TCR, TTBR0 and TTBR1 can happen in one go: the firmware's write-back index
//! (3) keeps its meaning in the new MAIR and the new tables map the page write-back
//! (index 0), so instruction fetches see the same memory type whichever context is in
//! effect until the ISB. Then the TLB is invalidated, SCTLR_EL1 and CPACR_EL1 take the
//! protocol values, VBAR_EL1 is zeroed, and an `eret` enters the kernel at EL1t
//! (SPSR 0x3c4: DAIF masked) on SP_EL0 = the kernel stack, with x0-x30 zero.

/// Everything the trampoline needs, read into registers before the switch.
#[repr(C)]
pub struct Handoff {
    /// TTBR0_EL1 (identity map of the trampoline).
    pub ttbr0: u64,
    /// TTBR1_EL1 (HHDM and kernel).
    pub ttbr1: u64,
    /// TCR_EL1.
    pub tcr: u64,
    /// MAIR_EL1.
    pub mair: u64,
    /// SCTLR_EL1.
    pub sctlr: u64,
    /// Kernel entry point.
    pub entry: u64,
    /// Top of the kernel stack (virtual, in the HHDM).
    pub stack_top: u64,
    /// CPACR_EL1 (0 for base revision 6: FP/SIMD trapped).
    pub cpacr: u64,
}

/// MAIR for the switch: Attr0 = 0xff (normal write-back, what the protocol fixes),
/// Attr1 = 0x00 (device-nGnRnE; no framebuffer is handed over), Attr2/Attr3 as AAVMF
/// has them (0xbb write-through, 0xff write-back) so its live tables keep their
/// meaning until the switch completes.
pub const MAIR: u64 = 0xffbb_00ff;

/// SCTLR_EL1 of base revision 6 (Limine's `LIMINE_SCTLR`): M, C, I, SA, SA0 and the
/// RES1 bits.
pub const SCTLR: u64 = 0x30d0_199d;

core::arch::global_asm!(
    r#"
    .section .text.hotmem_handoff, "ax"
    .p2align 12
    .global hotmem_handoff_a64
hotmem_handoff_a64:
    msr daifset, #0xf
    msr spsel, #1
    ldp x1, x2, [x0, #0]
    ldp x3, x4, [x0, #16]
    ldp x5, x6, [x0, #32]
    ldp x7, x8, [x0, #48]
    dsb ish
    msr mair_el1, x4
    msr tcr_el1, x3
    msr ttbr0_el1, x1
    msr ttbr1_el1, x2
    isb
    tlbi vmalle1
    dsb ish
    isb
    msr sctlr_el1, x5
    isb
    msr vbar_el1, xzr
    msr cpacr_el1, x8
    msr sp_el0, x7
    msr elr_el1, x6
    mov x9, #0x3c4
    msr spsr_el1, x9
    isb
    mov x0, xzr
    mov x1, xzr
    mov x2, xzr
    mov x3, xzr
    mov x4, xzr
    mov x5, xzr
    mov x6, xzr
    mov x7, xzr
    mov x8, xzr
    mov x9, xzr
    mov x10, xzr
    mov x11, xzr
    mov x12, xzr
    mov x13, xzr
    mov x14, xzr
    mov x15, xzr
    mov x16, xzr
    mov x17, xzr
    mov x18, xzr
    mov x19, xzr
    mov x20, xzr
    mov x21, xzr
    mov x22, xzr
    mov x23, xzr
    mov x24, xzr
    mov x25, xzr
    mov x26, xzr
    mov x27, xzr
    mov x28, xzr
    mov x29, xzr
    mov x30, xzr
    eret
    .p2align 12
hotmem_handoff_a64_end:
    "#
);

unsafe extern "C" {
    fn hotmem_handoff_a64(h: *const Handoff) -> !;
}

/// Page-aligned start of the trampoline (it is identity-mapped, two pages).
pub fn trampoline_page() -> u64 {
    (hotmem_handoff_a64 as *const () as u64) & !0xfff
}

/// Makes the loaded kernel visible to instruction fetch: clean `[start, start + len)`
/// to the point of unification, then invalidate the instruction cache.
pub fn sync_icache(start: u64, len: u64) {
    let ctr = super::io::sysreg!("ctr_el0");
    let line = 4u64 << ((ctr >> 16) & 0xf);
    let mut a = start & !(line - 1);
    while a < start + len {
        // SAFETY: cleaning a cache line by address has no architectural effect on the
        // data; `a` is inside the identity-mapped kernel block.
        unsafe { core::arch::asm!("dc cvau, {}", in(reg) a, options(nostack, preserves_flags)) };
        a += line;
    }
    // SAFETY: barriers and I-cache invalidation only affect caches, not data.
    unsafe {
        core::arch::asm!(
            "dsb ish",
            "ic iallu",
            "dsb ish",
            "isb",
            options(nostack, preserves_flags)
        )
    };
}

/// Switches to the kernel's address space and enters it. Never returns.
pub fn enter(h: &Handoff) -> ! {
    // SAFETY: `h` describes complete tables that map the trampoline (identity, in
    // TTBR0), the stack and the kernel (TTBR1); boot services are gone and the
    // trampoline masks interrupts, so nothing else runs while the address space changes.
    unsafe { hotmem_handoff_a64(h) }
}
