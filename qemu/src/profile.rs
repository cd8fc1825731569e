//! Machine profiles, assembled in Rust: what each arch's machine looks like (machine type,
//! memory, console wiring, exit device, firmware or direct `-kernel` boot) plus the
//! per-run options, turned into one QEMU command line by [`command`].

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::accel::Accel;
use crate::arch::{Arch, BootKind, BootPath};
use crate::cargo::BootImage;
use crate::host::qemu_binary;

pub const KIB: u64 = 1 << 10;
pub const MIB: u64 = 1 << 20;
pub const GIB: u64 = 1 << 30;

/// The `-m` option: boot RAM, and the ceiling (RAM plus device memory) for hotplug.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Memory {
    pub ram: u64,
    pub maxmem: Option<u64>,
    /// DIMM slots (x86_64/aarch64 pc-dimm and nvdimm; unused on s390x).
    pub slots: Option<u32>,
}

impl Memory {
    /// Just RAM, no hotplug space.
    pub const fn ram(ram: u64) -> Memory {
        Memory {
            ram,
            maxmem: None,
            slots: None,
        }
    }

    pub const fn with_maxmem(self, maxmem: u64) -> Memory {
        Memory {
            maxmem: Some(maxmem),
            ..self
        }
    }

    pub const fn with_slots(self, slots: u32) -> Memory {
        Memory {
            slots: Some(slots),
            ..self
        }
    }

    /// The value of `-m`, e.g. `512M,maxmem=2G`.
    pub fn arg(&self) -> String {
        let mut arg = size_arg(self.ram);
        if let Some(slots) = self.slots {
            arg += &format!(",slots={slots}");
        }
        if let Some(max) = self.maxmem {
            arg += &format!(",maxmem={}", size_arg(max));
        }
        arg
    }
}

/// A size in QEMU's suffix notation, using the largest unit that divides it.
pub fn size_arg(bytes: u64) -> String {
    match bytes {
        0 => "0".to_string(),
        b if b % GIB == 0 => format!("{}G", b / GIB),
        b if b % MIB == 0 => format!("{}M", b / MIB),
        b if b % KIB == 0 => format!("{}K", b / KIB),
        b => b.to_string(),
    }
}

/// One arch's machine: everything but the kernel and the run's choices.
#[derive(Clone, Debug)]
pub struct Profile {
    pub arch: Arch,
    /// `-machine` value, options included.
    pub machine: String,
    /// `-cpu` under TCG (`None`: QEMU's default model). KVM always uses `host`.
    pub tcg_cpu: Option<String>,
    pub memory: Memory,
    /// Extra arguments (objects, devices) appended after the profile's own.
    pub args: Vec<String>,
    /// Firmware and a loader, or QEMU `-kernel` ([`Arch::default_boot`] unless set).
    pub boot: BootPath,
}

impl Profile {
    /// The default machine of `arch` (qemu-hotplug.md §7, s390x.md §6).
    pub fn new(arch: Arch) -> Profile {
        let (machine, tcg_cpu, memory) = match arch {
            Arch::X86_64 => (
                "q35,nvdimm=on",
                Some("max"),
                Memory::ram(512 * MIB).with_slots(4).with_maxmem(8 * GIB),
            ),
            Arch::Aarch64 => (
                "virt,nvdimm=on",
                Some("cortex-a57"),
                Memory::ram(GIB).with_slots(4).with_maxmem(8 * GIB),
            ),
            Arch::S390x => (
                "s390-ccw-virtio",
                None,
                Memory::ram(512 * MIB).with_maxmem(2 * GIB),
            ),
        };
        Profile {
            arch,
            machine: machine.to_string(),
            tcg_cpu: tcg_cpu.map(str::to_string),
            memory,
            args: Vec::new(),
            boot: arch.default_boot(),
        }
    }

    /// The same machine entered another way (`--boot limine|direct`).
    pub fn with_boot(mut self, boot: BootPath) -> Profile {
        self.boot = boot;
        self
    }

    pub fn with_memory(mut self, memory: Memory) -> Profile {
        self.memory = memory;
        self
    }

    /// The same machine described by a device tree only (`-M ...,acpi=off`): aarch64
    /// `virt` then has no ACPI tables and AAVMF installs the DTB as an EFI config table.
    pub fn with_device_tree(mut self) -> Profile {
        self.machine.push_str(",acpi=off");
        self
    }

    /// The memory-hotplug machine of `cargo xtask run --hotplug`: room for hot-added
    /// memory (`maxmem`, DIMM slots and `nvdimm=on` where they exist) and a cold-plugged
    /// virtio-mem device `vm0` of 2 GiB at requested size 0.
    pub fn with_hotplug(self) -> Profile {
        let arch = self.arch;
        let memory = match arch {
            Arch::S390x => self.memory.with_maxmem(4 * GIB),
            Arch::X86_64 | Arch::Aarch64 => self.memory.with_slots(4).with_maxmem(8 * GIB),
        };
        let driver = crate::hotplug::virtio_mem_driver(arch);
        self.with_memory(memory)
            .with_object(format!("memory-backend-ram,id=vmem0,size={}", 2 * GIB))
            .with_device(format!("{driver},id=vm0,memdev=vmem0,requested-size=0"))
    }

    /// Appends raw QEMU arguments (the extra-args hook).
    pub fn with_args<S: Into<String>>(mut self, args: impl IntoIterator<Item = S>) -> Profile {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Appends `-object <spec>`, e.g. `memory-backend-ram,id=mem0,size=1G`.
    pub fn with_object(self, spec: impl Into<String>) -> Profile {
        self.with_args(["-object".to_string(), spec.into()])
    }

    /// Appends `-device <spec>`, e.g. `virtio-mem-ccw,id=vm0,memdev=mem0`.
    pub fn with_device(self, spec: impl Into<String>) -> Profile {
        self.with_args(["-device".to_string(), spec.into()])
    }
}

/// Where the console goes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ConsoleMode {
    /// stdin/stdout are pipes owned by a [`crate::Machine`].
    #[default]
    Piped,
    /// The terminal, muxed with the HMP monitor (Ctrl-A c switches).
    Interactive,
}

/// The choices of one run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub image: BootImage,
    /// Kernel command line (`-append`; on UEFI ports the fw_cfg file `opt/hotmem/cmdline`).
    pub append: Option<String>,
    pub accel: Accel,
    pub console: ConsoleMode,
    /// Unix socket for QMP.
    pub qmp: Option<PathBuf>,
    /// Wait for gdb on :1234 before the first instruction (`-s -S`).
    pub gdb: bool,
    /// Overall limit; the machine is killed when it passes.
    pub timeout: Duration,
    /// Copy the console to stderr as it arrives (also enabled by `HOTMEM_ECHO=1`).
    pub echo: bool,
    /// Raw arguments appended last.
    pub extra_args: Vec<String>,
    /// Also write the console to this file (`cargo xtask qmp info` reads the kernel's
    /// records from it).
    pub console_log: Option<PathBuf>,
    /// Boot this Linux kernel instead of `image` (same machine; see [`crate::linux`]).
    pub linux: Option<crate::linux::DirectLinux>,
}

impl RunOptions {
    /// TCG, piped console, no QMP, 60 s, echo per `HOTMEM_ECHO`.
    pub fn new(image: BootImage) -> RunOptions {
        RunOptions {
            image,
            append: None,
            accel: Accel::Tcg,
            console: ConsoleMode::Piped,
            qmp: None,
            gdb: false,
            timeout: Duration::from_secs(60),
            echo: std::env::var_os("HOTMEM_ECHO").is_some_and(|v| v == "1"),
            extra_args: Vec::new(),
            console_log: None,
            linux: None,
        }
    }
}

/// The full QEMU command for `profile` and `opts` (stdio is left to the caller).
pub fn command(profile: &Profile, opts: &RunOptions) -> Result<Command> {
    let arch = profile.arch;
    if opts.image.arch != arch {
        bail!("image is for {}, profile for {arch}", opts.image.arch);
    }
    let mut cmd = Command::new(qemu_binary(arch));
    cmd.args(["-machine", &profile.machine, "-accel", opts.accel.name()]);
    match (opts.accel, &profile.tcg_cpu) {
        (Accel::Kvm, _) => cmd.args(["-cpu", "host"]),
        (Accel::Tcg, Some(cpu)) => cmd.args(["-cpu", cpu]),
        (Accel::Tcg, None) => &mut cmd,
    };
    cmd.args(["-m", &profile.memory.arg(), "-nodefaults", "-no-reboot"]);
    cmd.args(display_args(arch));
    cmd.args(console_args(
        arch,
        opts.console,
        opts.console_log.as_deref(),
    ));
    cmd.args(exit_device_args(arch));
    match &opts.linux {
        Some(linux) => crate::linux::boot_args(&mut cmd, arch, linux, opts.append.as_deref())?,
        None => boot_args(&mut cmd, profile.boot, opts)?,
    }
    if let Some(qmp) = &opts.qmp {
        cmd.arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", qmp.display()));
    }
    if opts.gdb {
        cmd.args(["-s", "-S"]);
    }
    cmd.args(&profile.args).args(&opts.extra_args);
    Ok(cmd)
}

fn display_args(arch: Arch) -> &'static [&'static str] {
    match arch {
        Arch::S390x => &["-nographic"],
        Arch::X86_64 | Arch::Aarch64 => &["-display", "none"],
    }
}

/// Console `con0` on stdio, wired to the arch's console device, optionally logged.
fn console_args(arch: Arch, mode: ConsoleMode, log: Option<&Path>) -> Vec<String> {
    let mut chardev = match mode {
        ConsoleMode::Piped => "stdio,id=con0".to_string(),
        ConsoleMode::Interactive => "stdio,id=con0,mux=on,signal=off".to_string(),
    };
    if let Some(log) = log {
        chardev.push_str(&format!(",logfile={},logappend=off", log.display()));
    }
    let mut args = vec!["-chardev".to_string(), chardev];
    let device: [&str; 2] = match arch {
        Arch::S390x => ["-device", "sclpconsole,chardev=con0"],
        Arch::X86_64 | Arch::Aarch64 => ["-serial", "chardev:con0"],
    };
    args.extend(device.map(String::from));
    if mode == ConsoleMode::Interactive {
        args.extend(["-mon", "chardev=con0,mode=readline"].map(String::from));
    }
    args
}

/// How the guest ends QEMU (DESIGN.md §3); s390x needs nothing (disabled-wait PSW).
fn exit_device_args(arch: Arch) -> &'static [&'static str] {
    match arch {
        Arch::X86_64 => &["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"],
        Arch::Aarch64 => &["-semihosting-config", "enable=on,target=native"],
        Arch::S390x => &[],
    }
}

/// The way in: `-kernel` (the ELF for PVH and IPL, the flat arm64 `Image` made from the
/// ELF on aarch64) or firmware in pflash with the ESP.
fn boot_args(cmd: &mut Command, boot: BootPath, opts: &RunOptions) -> Result<()> {
    let image = &opts.image;
    image.arch.ensure_boot(boot)?;
    match (boot, image.arch.boot_kind()) {
        (BootPath::Direct, _) => {
            let kernel = match image.arch {
                Arch::Aarch64 => crate::image::arm64_image(&image.kernel)?,
                Arch::X86_64 | Arch::S390x => image.kernel.clone(),
            };
            cmd.arg("-kernel").arg(kernel);
            if let Some(append) = &opts.append {
                cmd.args(["-append", append]);
            }
        }
        (BootPath::Limine, BootKind::DirectKernel) => {
            bail!("{} has no UEFI loader", image.arch)
        }
        (BootPath::Limine, BootKind::Uefi(loader)) => {
            let firmware = find_firmware(loader.firmware).with_context(|| {
                format!(
                    "UEFI firmware missing (apt-get install {})",
                    loader.firmware_package
                )
            })?;
            let esp = image.esp.as_ref().context("UEFI port without an ESP")?;
            cmd.arg("-drive").arg(format!(
                "if=pflash,format=raw,readonly=on,file={}",
                firmware.display()
            ));
            cmd.arg("-drive").arg(format!(
                "if=none,id=esp,format=raw,file=fat:rw:{}",
                esp.display()
            ));
            cmd.args(["-device", "virtio-blk-pci,drive=esp"]);
            if let Some(append) = &opts.append {
                cmd.arg("-fw_cfg")
                    .arg(format!("name=opt/hotmem/cmdline,string={append}"));
            }
        }
    }
    Ok(())
}

/// The first firmware image of `candidates` that exists.
pub fn find_firmware(candidates: &[&str]) -> Option<PathBuf> {
    candidates
        .iter()
        .map(Path::new)
        .find(|p| p.is_file())
        .map(Path::to_path_buf)
}

#[cfg(test)]
#[path = "profile_tests.rs"]
mod tests;
