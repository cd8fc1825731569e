//! Booting through real Limine (x86_64 and aarch64, UEFI) when a Limine data directory with
//! `BOOTX64.EFI` / `BOOTAA64.EFI` is found (`LIMINE_DIR`, `limine --print-datadir`, the
//! usual prefixes); each test says plainly that it skipped otherwise. The ESP is laid out in
//! `target/esp-limine/<arch>/`, apart from the one the other tests boot. The kernel command
//! line reaches the kernel through the ESP's `limine.conf` (Limine does not read fw_cfg),
//! and the kernel takes it from whichever response the Limine release serves.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use qemu::accel::{self, AccelChoice};
use qemu::arch::BootKind;
use qemu::esp::{EspSpec, LoaderKind};
use qemu::{Arch, BootImage, Machine, Outcome, Profile, RunOptions};
use tests::{BOOT_READY, BOOT_TIMEOUT, COMMAND_TIMEOUT, PROMPT, line, selected};

const APPEND: &str = "loglevel=debug limine.test=1";

/// The Limine-booted image of `arch`, or `None` (after saying why) when the test skips.
fn limine_image(arch: Arch) -> Result<Option<BootImage>> {
    if !selected(arch) {
        eprintln!("skipped: {arch} not in HOTMEM_ARCHES");
        return Ok(None);
    }
    let BootKind::Uefi(loader) = arch.boot_kind() else {
        return Ok(None);
    };
    let Some(dir) = qemu::esp::find_limine(None, loader.efi_name) else {
        eprintln!(
            "skipped: no Limine with {} found (set LIMINE_DIR to a Limine data directory)",
            loader.efi_name
        );
        return Ok(None);
    };
    let base = tests::image(arch)?;
    let target = qemu::cargo::target_dir();
    let ours: PathBuf = target.join(loader.triple).join("debug/boot.efi");
    let conf = qemu::cargo::workspace_root().join("boot/limine.conf");
    let spec = EspSpec {
        efi_name: loader.efi_name,
        our_loader: &ours,
        kernel: &base.kernel,
        conf: &conf,
        limine_dir: Some(&dir),
    };
    let esp = qemu::esp::build_esp(&target.join("esp-limine").join(arch.name()), &spec)?;
    ensure!(esp.loader == LoaderKind::Limine(dir.clone()));
    eprintln!("booting {arch} through Limine from {}", dir.display());
    Ok(Some(BootImage {
        arch,
        kernel: base.kernel,
        esp: Some(esp.dir),
        loader: Some(esp.loader),
    }))
}

/// Boots `image` on `profile` with [`APPEND`], checks what the kernel saw, powers off.
fn boot_through_limine(profile: &Profile, image: BootImage) -> Result<()> {
    let mut opts = RunOptions::new(image);
    opts.append = Some(APPEND.to_string());
    opts.accel = accel::resolve(AccelChoice::Auto, &opts.image)?;
    opts.timeout = Duration::from_secs(120);
    let mut m = Machine::spawn(profile, &opts)?;
    let boot = m.expect(BOOT_READY, BOOT_TIMEOUT * 2)?;
    m.expect(PROMPT, COMMAND_TIMEOUT)?;
    let loader = line(&boot, "limine: loader=")?;
    ensure!(loader.to_ascii_lowercase().contains("limine"), "{loader}");
    ensure!(
        !loader.contains("hotmem-boot"),
        "our loader booted: {loader}"
    );
    // Limine >= 9.0 serves the executable-cmdline response, older ones only the file's.
    let source = line(&boot, "limine: cmdline source=")?;
    ensure!(
        source.contains("source=executable-cmdline") || source.contains("source=executable-file"),
        "{source}"
    );
    ensure!(
        source.ends_with(&format!("bytes={}", APPEND.len())),
        "{source}"
    );
    let seen = boot
        .lines()
        .find(|l| l.contains("kernel: cmdline: "))
        .context("no cmdline log line")?;
    ensure!(seen.ends_with(APPEND), "the kernel saw {seen:?}");
    m.send_line("poweroff")?;
    let outcome = m.wait_exit(Duration::from_secs(30));
    qemu::machine::ensure_outcome(&m, outcome, Outcome::Pass)
}

#[test]
fn x86_64_boots_through_real_limine_with_the_command_line() -> Result<()> {
    let Some(image) = limine_image(Arch::X86_64)? else {
        return Ok(());
    };
    boot_through_limine(&Profile::new(Arch::X86_64), image)
}

#[test]
fn aarch64_boots_through_real_limine_with_acpi_and_with_a_device_tree() -> Result<()> {
    let Some(image) = limine_image(Arch::Aarch64)? else {
        return Ok(());
    };
    boot_through_limine(&Profile::new(Arch::Aarch64), image.clone())?;
    boot_through_limine(&Profile::new(Arch::Aarch64).with_device_tree(), image)
}
