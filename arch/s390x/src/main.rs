//! The s390x kernel executable: `entry.S` plus the `arch-s390x` library.
//!
//! On the host this builds to a stub that explains how to build the real thing, so
//! workspace-wide host commands (`cargo test`, `cargo clippy`) work unchanged.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(target_os = "none")]
core::arch::global_asm!(include_str!("entry.S"));

#[cfg(target_os = "none")]
use arch_s390x as _;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("this is the s390x kernel; build and boot it with `cargo xtask run --arch s390x`");
}
