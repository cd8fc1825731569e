/*
 * s390x entry and interrupt stubs.
 *
 * QEMU starts us at 0x10000 in 64-bit mode with DAT off, every interrupt class masked
 * and a zeroed lowcore. Before any Rust runs: install the new PSWs (so a program check
 * reports itself instead of hanging), set up the stack and clear BSS.
 */
    .section .text.entry, "ax"
    .globl _start
_start:
    larl    %r1, new_psws
    mvc     0x1a0(96), 0(%r1)          /* restart, external, SVC, program, mcck, I/O */

    larl    %r2, __bss_start
    larl    %r3, __bss_end
1:  clgr    %r2, %r3
    jhe     2f
    xc      0(256,%r2), 0(%r2)
    aghi    %r2, 256
    j       1b
2:
    larl    %r15, __stack_top
    aghi    %r15, -160
    xgr     %r14, %r14
    brasl   %r14, s390x_rust_start
3:  j       3b

    .section .text, "ax"

/*
 * Program check. If Rust armed a recovery address (probing an instruction that may
 * not exist), resume there with the registers of the faulting context. Otherwise
 * report and stop.
 */
    .globl s390x_pgm_stub
s390x_pgm_stub:
    stmg    %r0, %r15, 0x200
    larl    %r1, s390x_pgm_recovery
    lg      %r2, 0(%r1)
    ltgr    %r2, %r2
    jz      1f
    mvghi   0(%r1), 0
    stg     %r2, 0x158                 /* program old PSW: address word */
    lmg     %r0, %r15, 0x200
    lpswe   0x150
1:  lghi    %r2, 3
    j       fatal_interrupt

/*
 * External interrupt. We only ever open the external mask in `cpu::sleep_us`, whose
 * enabled wait the clock comparator ends: push the comparator out of reach, and resume
 * the interrupted context with the wait bit and the external mask cleared.
 */
ext_stub:
    stmg    %r0, %r15, 0x200
    larl    %r1, ckc_never
    sckc    0(%r1)
    ni      0x130, 0xfe                /* old PSW: external mask off */
    ni      0x131, 0xfd                /* old PSW: wait bit off */
    lmg     %r0, %r15, 0x200
    lpswe   0x130
svc_stub:
    stmg    %r0, %r15, 0x200
    lghi    %r2, 2
    j       fatal_interrupt
mcck_stub:
    stmg    %r0, %r15, 0x200
    lghi    %r2, 4
    j       fatal_interrupt
io_stub:
    stmg    %r0, %r15, 0x200
    lghi    %r2, 5
    j       fatal_interrupt
restart_stub:
    stmg    %r0, %r15, 0x200
    lghi    %r2, 0
    j       fatal_interrupt

/* A second fault while reporting the first ends the machine at once. */
fatal_interrupt:
    larl    %r1, nested_fault_psw
    mvc     0x1d0(16), 0(%r1)
    larl    %r15, __exc_stack_top
    aghi    %r15, -160
    brasl   %r14, s390x_fatal_interrupt
4:  j       4b

    .section .rodata, "a"
    .balign 8
new_psws:
    .quad 0x0000000180000000, restart_stub
    .quad 0x0000000180000000, ext_stub
    .quad 0x0000000180000000, svc_stub
    .quad 0x0000000180000000, s390x_pgm_stub
    .quad 0x0000000180000000, mcck_stub
    .quad 0x0000000180000000, io_stub
ckc_never:
    .quad 0xffffffffffffffff
nested_fault_psw:
    .quad 0x0002000180000000, 0xdead
