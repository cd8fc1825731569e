//! The aarch64 kernel executable: the `arch-aarch64` library provides the Limine entry
//! point (`aarch64_start`), this file only links it in.
//!
//! On the host this builds to a stub that explains how to build the real thing, so
//! workspace-wide host commands (`cargo test`, `cargo clippy`) work unchanged.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(target_os = "none")]
use arch_aarch64 as _;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "this is the aarch64 kernel; build and boot it with `cargo xtask run --arch aarch64`"
    );
}
