//! Booting a stock Linux kernel in the very machine of a profile (`cargo xtask linux`,
//! `cargo xtask compare`): the same machine type, CPU, memory, devices, firmware and ACPI
//! tables as [`crate::profile::command`] gives our kernel; only the boot medium differs.
//! UEFI ports keep their firmware in pflash and hand the kernel, initramfs and command line
//! to it through fw_cfg (`-kernel/-initrd/-append`, which OVMF and AAVMF boot before any
//! disk, through the kernel's EFI stub), so the firmware-built ACPI tables are the ones our
//! kernel sees; s390x IPLs the kernel directly as it does ours.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result};

use crate::arch::{Arch, BootKind};
use crate::profile::find_firmware;

/// A Linux kernel and initramfs to boot instead of our kernel.
#[derive(Clone, Debug)]
pub struct DirectLinux {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
}

/// The boot arguments for `linux` on `arch`, with `append` as its command line.
pub(crate) fn boot_args(
    cmd: &mut Command,
    arch: Arch,
    linux: &DirectLinux,
    append: Option<&str>,
) -> Result<()> {
    if let BootKind::Uefi(loader) = arch.boot_kind() {
        let firmware = find_firmware(loader.firmware).with_context(|| {
            format!(
                "UEFI firmware missing (apt-get install {})",
                loader.firmware_package
            )
        })?;
        cmd.arg("-drive").arg(format!(
            "if=pflash,format=raw,readonly=on,file={}",
            firmware.display()
        ));
    }
    cmd.arg("-kernel").arg(&linux.kernel);
    cmd.arg("-initrd").arg(&linux.initrd);
    if let Some(append) = append {
        cmd.args(["-append", append]);
    }
    Ok(())
}
