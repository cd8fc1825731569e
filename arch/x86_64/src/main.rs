//! The x86_64 kernel executable: the `arch-x86_64` library provides the Limine entry
//! point (`x86_64_kernel_entry`), this file only links it in.
//!
//! On the host this builds to a stub that explains how to build the real thing, so
//! workspace-wide host commands (`cargo test`, `cargo clippy`) work unchanged.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(target_os = "none")]
use arch_x86_64 as _;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("this is the x86_64 kernel; build and boot it with `cargo xtask run --arch x86_64`");
}
