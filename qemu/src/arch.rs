//! The three target architectures and everything that is fixed per arch: target triple,
//! QEMU binary, kernel crate, cargo arguments and the UEFI loader (where there is one).
//!
//! Adding a port means filling in its row here; the launcher and xtask read nothing else.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{Result, bail};

/// A guest architecture.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Arch {
    X86_64,
    Aarch64,
    S390x,
}

/// How a port's kernel gets into the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootKind {
    /// QEMU loads the ELF itself (`-kernel`).
    DirectKernel,
    /// UEFI firmware boots our loader from an ESP directory, which loads the kernel.
    Uefi(UefiLoader),
}

/// Which way in a run takes (`--boot limine|direct`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BootPath {
    /// UEFI firmware, then our Limine-protocol loader or Limine (x86_64, aarch64).
    Limine,
    /// QEMU `-kernel`: PVH on x86_64, the arm64 `Image` with a DTB on aarch64, IPL on
    /// s390x.
    Direct,
}

impl BootPath {
    /// Both, in the order summaries list them.
    pub const ALL: [BootPath; 2] = [BootPath::Limine, BootPath::Direct];

    /// `limine` or `direct`.
    pub fn name(self) -> &'static str {
        match self {
            BootPath::Limine => "limine",
            BootPath::Direct => "direct",
        }
    }
}

impl fmt::Display for BootPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for BootPath {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "limine" => Ok(BootPath::Limine),
            "direct" => Ok(BootPath::Direct),
            _ => bail!("unknown boot path {s:?} (expected limine or direct)"),
        }
    }
}

/// The UEFI side of a port: the `boot` crate built for a UEFI target, and its firmware.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UefiLoader {
    /// Cargo package of the loader.
    pub crate_name: &'static str,
    /// UEFI target triple.
    pub triple: &'static str,
    /// File name under `EFI/BOOT/` on the ESP.
    pub efi_name: &'static str,
    /// Firmware code images, first existing one wins.
    pub firmware: &'static [&'static str],
    /// Debian packages that provide the firmware.
    pub firmware_package: &'static str,
}

impl Arch {
    /// Every arch, in the order tests and summaries list them.
    pub const ALL: [Arch; 3] = [Arch::X86_64, Arch::Aarch64, Arch::S390x];

    /// The name used on the command line, in paths and in env vars (lower case).
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
            Arch::S390x => "s390x",
        }
    }

    /// Bare-metal target triple of the kernel.
    pub fn triple(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-unknown-none",
            Arch::Aarch64 => "aarch64-unknown-none-softfloat",
            Arch::S390x => "s390x-unknown-none-softfloat",
        }
    }

    /// Cargo package that owns the `kernel` binary.
    pub fn kernel_crate(self) -> &'static str {
        match self {
            Arch::X86_64 => "arch-x86_64",
            Arch::Aarch64 => "arch-aarch64",
            Arch::S390x => "arch-s390x",
        }
    }

    /// Default QEMU binary name (see [`crate::host::qemu_binary`] for overrides).
    pub fn qemu_binary_name(self) -> &'static str {
        match self {
            Arch::X86_64 => "qemu-system-x86_64",
            Arch::Aarch64 => "qemu-system-aarch64",
            Arch::S390x => "qemu-system-s390x",
        }
    }

    /// Debian package that ships [`Arch::qemu_binary_name`].
    pub fn qemu_package(self) -> &'static str {
        match self {
            Arch::X86_64 => "qemu-system-x86",
            Arch::Aarch64 => "qemu-system-arm",
            Arch::S390x => "qemu-system-s390x",
        }
    }

    /// Arguments after `cargo build` that build this arch's kernel (without `--release`).
    pub fn kernel_build_args(self) -> Vec<&'static str> {
        let mut args = vec!["-p", self.kernel_crate(), "--bin", "kernel"];
        args.extend(["--target", self.triple()]);
        if self.needs_build_std() {
            args.extend([
                "-Zbuild-std=core,alloc",
                "-Zbuild-std-features=compiler-builtins-mem",
            ]);
        }
        args
    }

    /// s390x has no prebuilt `core` for the pinned nightly, so it is built from rust-src.
    fn needs_build_std(self) -> bool {
        matches!(self, Arch::S390x)
    }

    /// Boot path of this arch (DESIGN.md §4).
    pub fn boot_kind(self) -> BootKind {
        match self {
            Arch::X86_64 => BootKind::Uefi(UefiLoader {
                crate_name: "boot",
                triple: "x86_64-unknown-uefi",
                efi_name: "BOOTX64.EFI",
                firmware: &[
                    "/usr/share/OVMF/OVMF_CODE_4M.fd",
                    "/usr/share/OVMF/OVMF_CODE.fd",
                    "/usr/share/qemu/OVMF.fd",
                ],
                firmware_package: "ovmf",
            }),
            Arch::Aarch64 => BootKind::Uefi(UefiLoader {
                crate_name: "boot",
                triple: "aarch64-unknown-uefi",
                efi_name: "BOOTAA64.EFI",
                firmware: &[
                    "/usr/share/AAVMF/AAVMF_CODE.fd",
                    "/usr/share/qemu-efi-aarch64/QEMU_EFI.fd",
                ],
                firmware_package: "qemu-efi-aarch64",
            }),
            Arch::S390x => BootKind::DirectKernel,
        }
    }

    /// The boot path a run takes unless told otherwise: Limine where it exists (how the
    /// kernel is meant to boot), IPL on s390x.
    pub fn default_boot(self) -> BootPath {
        match self.boot_kind() {
            BootKind::Uefi(_) => BootPath::Limine,
            BootKind::DirectKernel => BootPath::Direct,
        }
    }

    /// The boot paths this arch has (s390x: IPL only; Limine does not exist there).
    pub fn boot_paths(self) -> &'static [BootPath] {
        match self.boot_kind() {
            BootKind::Uefi(_) => &BootPath::ALL,
            BootKind::DirectKernel => &[BootPath::Direct],
        }
    }

    /// Fails with a one-line message when `boot` does not exist on this arch.
    pub fn ensure_boot(self, boot: BootPath) -> Result<()> {
        if !self.boot_paths().contains(&boot) {
            bail!("{self} boots only by IPL (--boot direct): Limine does not exist for {self}");
        }
        Ok(())
    }

    /// The `loader=` word of the kernel's `boot: ready` record on the direct path.
    pub fn direct_loader(self) -> &'static str {
        match self {
            Arch::X86_64 => "pvh",
            Arch::Aarch64 => "linux-image",
            Arch::S390x => "qemu-ipl",
        }
    }

    /// The tracking issue of a port that is not written yet, for error messages.
    fn port_issue(self) -> Option<u32> {
        match self {
            Arch::X86_64 => Some(3),
            Arch::Aarch64 | Arch::S390x => None,
        }
    }

    /// Whether the port's kernel binary exists in this checkout (`arch/<a>/src/main.rs`).
    pub fn is_ported(self, workspace: &Path) -> bool {
        self.kernel_main(workspace).is_file()
    }

    /// Fails with a one-line message when the port is missing from this checkout.
    pub fn ensure_ported(self, workspace: &Path) -> Result<()> {
        if self.is_ported(workspace) {
            return Ok(());
        }
        match self.port_issue() {
            Some(n) => bail!("{self} port not built yet (issue {n})"),
            None => bail!(
                "{self} port not built yet ({} is missing)",
                self.kernel_main(workspace).display()
            ),
        }
    }

    fn kernel_main(self, workspace: &Path) -> PathBuf {
        workspace.join("arch").join(self.name()).join("src/main.rs")
    }

    /// Where cargo leaves the kernel ELF.
    pub fn kernel_path(self, target_dir: &Path, release: bool) -> PathBuf {
        let profile = if release { "release" } else { "debug" };
        target_dir.join(self.triple()).join(profile).join("kernel")
    }

    /// Name of the env var through which xtask hands the kernel ELF to the tests.
    pub fn kernel_env_var(self) -> String {
        format!("HOTMEM_KERNEL_{}", self.name().to_uppercase())
    }

    /// Whether KVM could run this guest on this host at all (same ISA).
    pub fn is_host_arch(self) -> bool {
        std::env::consts::ARCH == self.name()
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Arch {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "x86_64" | "x86-64" | "amd64" => Ok(Arch::X86_64),
            "aarch64" | "arm64" => Ok(Arch::Aarch64),
            "s390x" => Ok(Arch::S390x),
            _ => bail!("unknown arch {s:?} (expected x86_64, aarch64 or s390x)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for arch in Arch::ALL {
            assert_eq!(arch.name().parse::<Arch>().unwrap(), arch);
        }
        assert!("riscv64".parse::<Arch>().is_err());
    }

    #[test]
    fn s390x_build_uses_build_std() {
        let args = Arch::S390x.kernel_build_args().join(" ");
        assert_eq!(
            args,
            "-p arch-s390x --bin kernel --target s390x-unknown-none-softfloat \
             -Zbuild-std=core,alloc -Zbuild-std-features=compiler-builtins-mem"
        );
        assert!(
            !Arch::X86_64
                .kernel_build_args()
                .join(" ")
                .contains("build-std")
        );
    }

    #[test]
    fn missing_port_message_is_one_line() {
        let err = Arch::X86_64
            .ensure_ported(Path::new("/nonexistent"))
            .unwrap_err();
        assert_eq!(err.to_string(), "x86_64 port not built yet (issue 3)");
    }

    #[test]
    fn boot_paths_per_arch() {
        assert_eq!(Arch::X86_64.default_boot(), BootPath::Limine);
        assert_eq!(Arch::S390x.default_boot(), BootPath::Direct);
        assert!(Arch::Aarch64.ensure_boot(BootPath::Direct).is_ok());
        let err = Arch::S390x.ensure_boot(BootPath::Limine).unwrap_err();
        assert_eq!(
            err.to_string(),
            "s390x boots only by IPL (--boot direct): Limine does not exist for s390x"
        );
        assert_eq!("Direct".parse::<BootPath>().unwrap(), BootPath::Direct);
        assert!("grub".parse::<BootPath>().is_err());
    }

    #[test]
    fn kernel_path_and_env_var() {
        let p = Arch::S390x.kernel_path(Path::new("/t"), false);
        assert_eq!(p, Path::new("/t/s390x-unknown-none-softfloat/debug/kernel"));
        assert_eq!(Arch::S390x.kernel_env_var(), "HOTMEM_KERNEL_S390X");
    }
}
