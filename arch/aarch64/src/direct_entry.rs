//! The direct way in (QEMU `-kernel Image`): the arm64 Image header, and the code that
//! runs before the kernel is at its link address.
//!
//! QEMU loads a raw image with this header as a Linux kernel (2 MiB into RAM for a
//! `text_offset` of 0) and enters its first instruction with the MMU and caches off, at
//! EL1 (or EL2 with `virtualization=on`), x0 holding the DTB's physical address
//! (Documentation/arch/arm64/booting.rst). Then:
//!
//! 1. at EL2, drop to EL1 (AArch64, EL1 counter access, SCTLR_EL1 at its safe value);
//! 2. zero `.bss` and take the boot stack at its physical address;
//! 3. [`aarch64_direct_early`], still at physical addresses, builds temporary tables
//!    (TTBR0: the 1 GiB blocks holding the image and the DTB, identity; TTBR1: the image
//!    at its link address in 2 MiB blocks) and turns the MMU on;
//! 4. jump to the link address, take the stack and vectors there, and call
//!    `crate::direct::aarch64_direct_main`, which builds the kernel's own tables as after
//!    a Limine boot.

#[cfg(target_os = "none")]
use core::sync::atomic::{AtomicU64, Ordering};

#[cfg(target_os = "none")]
use aarch64_cpu::asm::barrier;
#[cfg(target_os = "none")]
use aarch64_cpu::registers::{
    ID_AA64MMFR0_EL1, MAIR_EL1, ReadWriteable, Readable, SCTLR_EL1, TCR_EL1, TTBR0_EL1, TTBR1_EL1,
    Writeable,
};

/// The Image header's `flags`: little-endian, 4 KiB pages, placeable anywhere in RAM.
pub const IMAGE_FLAGS: u64 = 0b1010;
/// Link address of the image (`. =` in `linker.ld`).
pub const KERNEL_VIRT: u64 = 0xffff_ffff_8000_0000;
/// The Image magic at header offset 0x38 ("ARM\x64").
pub const IMAGE_MAGIC: u32 = 0x644d_5241;

/// Block descriptor attributes of the temporary tables: valid block, AttrIndx 0 (normal
/// write-back), inner shareable, access flag; read-write, executable.
#[cfg(target_os = "none")]
const BLOCK: u64 = 0b01 | (3 << 8) | (1 << 10);
/// Table descriptor.
#[cfg(target_os = "none")]
const TABLE: u64 = 0b11;
/// Pages of temporary tables: L0 and L1 for TTBR0, L0, L1 and L2 for TTBR1.
#[cfg(target_os = "none")]
const PAGES: usize = 5;

#[cfg(target_os = "none")]
core::arch::global_asm!(
    r#"
    .section .text.head, "ax"
    .global aarch64_image_header
aarch64_image_header:
    b aarch64_direct_start
    .long 0
    .quad 0
    .quad __image_size
    .quad {flags}
    .quad 0
    .quad 0
    .quad 0
    .long {magic}
    .long 0

    .section .text.direct, "ax"
aarch64_direct_start:
    mov x19, x0
    mrs x20, currentel
    lsr x20, x20, #2
    cmp x20, #2
    b.ne 1f
    mov x9, #(1 << 31)
    msr hcr_el2, x9
    mov x9, #3
    msr cnthctl_el2, x9
    msr cntvoff_el2, xzr
    ldr x9, =0x30d00800
    msr sctlr_el1, x9
    mov x9, #0x3c5
    msr spsr_el2, x9
    adr x9, 1f
    msr elr_el2, x9
    isb
    eret
1:  adrp x9, __bss_start
    add x9, x9, :lo12:__bss_start
    adrp x10, __bss_end
    add x10, x10, :lo12:__bss_end
2:  cmp x9, x10
    b.hs 3f
    stp xzr, xzr, [x9], #16
    b 2b
3:  adrp x9, {stack}
    add x9, x9, :lo12:{stack}
    add x9, x9, #{stack_bytes} & 0xfff
    add x9, x9, #{stack_bytes} & ~0xfff
    msr spsel, #1
    mov sp, x9
    mov x0, x19
    adrp x1, aarch64_image_header
    add x1, x1, :lo12:aarch64_image_header
    mov x2, x20
    bl aarch64_direct_early
    ldr x9, =aarch64_direct_high
    br x9

aarch64_direct_high:
    adrp x9, {stack}
    add x9, x9, :lo12:{stack}
    add x9, x9, #{stack_bytes} & 0xfff
    add x9, x9, #{stack_bytes} & ~0xfff
    mov sp, x9
    adrp x9, aarch64_vectors
    add x9, x9, :lo12:aarch64_vectors
    msr vbar_el1, x9
    isb
    mov x0, x19
    mov x29, xzr
    mov x30, xzr
    bl aarch64_direct_main
4:  wfe
    b 4b
    .ltorg
    "#,
    flags = const IMAGE_FLAGS,
    magic = const IMAGE_MAGIC,
    stack = sym crate::entry::BOOT_STACK,
    stack_bytes = const crate::entry::STACK_BYTES,
);

#[cfg(target_os = "none")]
#[repr(C, align(4096))]
struct Tables([[u64; 512]; PAGES]);

/// The temporary tables (live until `kpt::build_and_switch` loads TTBR1 and turns TTBR0
/// walks off).
#[cfg(target_os = "none")]
static mut EARLY_TABLES: Tables = Tables([[0; 512]; PAGES]);

/// Physical base of the image, recorded by [`aarch64_direct_early`].
#[cfg(target_os = "none")]
static IMAGE_PA: AtomicU64 = AtomicU64::new(0);
/// The exception level QEMU entered at (2 means the entry dropped to EL1).
#[cfg(target_os = "none")]
static ENTRY_EL: AtomicU64 = AtomicU64::new(0);

/// Physical base of the image and the exception level QEMU entered at.
#[cfg(target_os = "none")]
pub fn placement() -> (u64, u64) {
    (
        IMAGE_PA.load(Ordering::Relaxed),
        ENTRY_EL.load(Ordering::Relaxed),
    )
}

/// Builds the temporary tables and turns the MMU on.
///
/// Runs at physical addresses with the MMU off: it touches only its arguments, statics
/// (reached PC-relative) and system registers, and must not panic (a panic message would
/// be reached through a link-time address that nothing maps yet).
#[cfg(target_os = "none")]
#[unsafe(no_mangle)]
extern "C" fn aarch64_direct_early(dtb: u64, image_pa: u64, entry_el: u64) {
    const GIB: u64 = 1 << 30;
    const L2_BLOCK: u64 = 2 << 20;
    IMAGE_PA.store(image_pa, Ordering::Relaxed);
    ENTRY_EL.store(entry_el, Ordering::Relaxed);
    let t = &raw mut EARLY_TABLES;
    let page = |i: usize| (t as u64) + (i as u64) * 4096;
    let set = |table: usize, index: u64, value: u64| {
        // SAFETY: `table` < PAGES and `index` < 512, so the write stays inside the
        // statics' tables; nothing else uses them before the MMU is on.
        unsafe { (&raw mut (*t).0[table][(index & 511) as usize]).write_volatile(value) }
    };
    // TTBR0: identity 1 GiB blocks for the image and the DTB.
    set(0, 0, page(1) | TABLE);
    for pa in [image_pa, dtb] {
        if pa < 512 * GIB {
            set(1, pa / GIB, (pa & !(GIB - 1)) | BLOCK);
        }
    }
    // TTBR1: the image at its link address (L0 511, L1 510), 2 MiB blocks.
    set(2, 511, page(3) | TABLE);
    set(3, 510, page(4) | TABLE);
    let size = image_size();
    for i in 0..size.div_ceil(L2_BLOCK).min(512) {
        set(4, i, (image_pa + i * L2_BLOCK) | BLOCK);
    }
    let ips = ID_AA64MMFR0_EL1.read(ID_AA64MMFR0_EL1::PARange).min(5);
    MAIR_EL1.set(crate::paging::MAIR_EL1);
    TCR_EL1.write(
        TCR_EL1::T0SZ.val(16)
            + TCR_EL1::T1SZ.val(16)
            + TCR_EL1::TG0::KiB_4
            + TCR_EL1::TG1::KiB_4
            + TCR_EL1::SH0::Inner
            + TCR_EL1::SH1::Inner
            + TCR_EL1::IRGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable
            + TCR_EL1::ORGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable
            + TCR_EL1::IRGN1::WriteBack_ReadAlloc_WriteAlloc_Cacheable
            + TCR_EL1::ORGN1::WriteBack_ReadAlloc_WriteAlloc_Cacheable
            + TCR_EL1::IPS.val(ips),
    );
    TTBR0_EL1.set(page(0));
    TTBR1_EL1.set(page(2));
    barrier::dsb(barrier::SY);
    barrier::isb(barrier::SY);
    // SAFETY: invalidates stale TLB entries before translation starts; no memory access.
    unsafe { core::arch::asm!("tlbi vmalle1", "dsb nsh", options(nostack)) };
    barrier::isb(barrier::SY);
    SCTLR_EL1.modify(SCTLR_EL1::M::Enable + SCTLR_EL1::C::Cacheable + SCTLR_EL1::I::Cacheable);
    barrier::isb(barrier::SY);
}

/// Bytes of the image, `.bss` included (the header's `image_size`).
#[cfg(target_os = "none")]
fn image_size() -> u64 {
    unsafe extern "C" {
        static __kernel_start: u8;
        static __kernel_end: u8;
    }
    // Both addresses are PC-relative here, so their difference holds at any placement.
    (&raw const __kernel_end as u64) - (&raw const __kernel_start as u64)
}
