//! `BOOTX64.EFI` / `BOOTAA64.EFI`: a UEFI application that boots a kernel through the
//! Limine protocol.
//!
//! The protocol logic lives in the `boot` library (host-tested); `efi/` is the firmware
//! glue and `efi/x86_64/`, `efi/aarch64/` the CPU-specific parts. On the host this
//! builds to a stub.
#![cfg_attr(target_os = "uefi", no_std)]
#![cfg_attr(target_os = "uefi", no_main)]

#[cfg(target_os = "uefi")]
extern crate alloc;

#[cfg(target_os = "uefi")]
mod efi;

#[cfg(not(target_os = "uefi"))]
fn main() {
    eprintln!(
        "this is the UEFI loader; build it with `--target x86_64-unknown-uefi` or `aarch64-unknown-uefi`"
    );
}
