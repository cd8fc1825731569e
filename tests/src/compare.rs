//! One machine, two ways in: the same profile booted through UEFI firmware and the
//! Limine-protocol loader, and directly (QEMU `-kernel`), must give the kernel the same
//! view of the machine. What each boot prints for `mem`, `firmware` and `regions` is
//! compared record by record:
//!
//! - `regions`: every line identical (region table and map);
//! - `firmware`: the summary record identical except for where the firmware put its
//!   description (`rsdp`, `rev`: SeaBIOS hands QEMU's ACPI 1.0 RSDP on, OVMF installs its
//!   own 2.0 one; `dtb`, `size`) and for `bootargs` (the direct boot's command line
//!   travels in the DTB), every `firmware.*` detail record identical (`firmware.bootargs`
//!   aside);
//! - `mem`: the same `max_phys` and the same present sections (`mem.mm sections`), RAM
//!   totals at most `-m`, and RAM and present pages within `slack` of each other:
//!   firmware keeps different amounts and kinds of RAM for itself (OVMF and AAVMF more
//!   than SeaBIOS and QEMU's own DTB boot), so the `mem.region` lists, and with them
//!   the holes in a section's memmap, differ.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Result, ensure};
use qemu::arch::BootPath;
use qemu::{Machine, Outcome, Profile};

use crate::{boot_to_prompt, fields, line, number, shell};

/// Keys of the `firmware` record that say where the description lies, not what it says.
const PLACEMENT_KEYS: [&str; 5] = ["rsdp", "rev", "dtb", "size", "bootargs"];

/// What one boot printed.
#[derive(Clone, Debug)]
pub struct View {
    /// The way in.
    pub boot: BootPath,
    /// `loader=` of `boot: ready`.
    pub loader: String,
    /// Output of `mem`.
    pub mem: String,
    /// Output of `firmware`.
    pub firmware: String,
    /// Output of `regions`.
    pub regions: String,
}

/// Boots `profile` by `boot` with `append` and records its view, then powers it off.
pub fn view(profile: &Profile, boot: BootPath, append: &str, timeout: Duration) -> Result<View> {
    let profile = profile.clone().with_boot(boot);
    let mut m = boot_to_prompt(&profile, append, timeout)?;
    let console = m.console();
    let loader = fields(line(&console, "boot: ready ")?)
        .get("loader")
        .map(|l| l.to_string())
        .unwrap_or_default();
    let view = View {
        boot,
        loader,
        mem: shell(&mut m, "mem")?,
        firmware: shell(&mut m, "firmware")?,
        regions: shell(&mut m, "regions")?,
    };
    power_off(m)?;
    Ok(view)
}

fn power_off(mut m: Machine) -> Result<()> {
    m.send_line("poweroff")?;
    let outcome = m.wait_exit(Duration::from_secs(30));
    qemu::machine::ensure_outcome(&m, outcome, Outcome::Pass)
}

/// Checks that the two views agree (see the module documentation); `ram` is `-m`,
/// `slack` the most the two boots' RAM totals may differ by.
pub fn agree(limine: &View, direct: &View, ram: u64, slack: u64) -> Result<()> {
    let both = || format!("--- limine\n{limine:#?}\n--- direct\n{direct:#?}");
    ensure!(
        records(&limine.regions, "") == records(&direct.regions, ""),
        "regions differ:\n{}",
        both()
    );
    let (fl, fd) = (
        fields(line(&limine.firmware, "firmware ")?),
        fields(line(&direct.firmware, "firmware ")?),
    );
    let strip = |f: &HashMap<&str, &str>| -> Vec<(String, String)> {
        let mut kv: Vec<(String, String)> = f
            .iter()
            .filter(|(k, _)| !PLACEMENT_KEYS.contains(k))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        kv.sort();
        kv
    };
    ensure!(
        strip(&fl) == strip(&fd),
        "firmware records differ:\n{}",
        both()
    );
    let details = |text: &str| -> Vec<String> {
        records(text, "firmware.")
            .into_iter()
            .filter(|l| !l.starts_with("firmware.bootargs"))
            .collect()
    };
    ensure!(
        details(&limine.firmware) == details(&direct.firmware),
        "firmware detail records differ:\n{}",
        both()
    );
    let (ml, md) = (mem_figures(&limine.mem)?, mem_figures(&direct.mem)?);
    ensure!(
        ml.max_phys == md.max_phys
            && ml.sections == md.sections
            && ml.present.abs_diff(md.present) * 4096 <= slack,
        "mem differs: limine {ml:?}, direct {md:?}\n{}",
        both()
    );
    ensure!(
        ml.ram <= ram && md.ram <= ram && ml.ram.abs_diff(md.ram) <= slack,
        "RAM: limine {}, direct {}: not within {slack} of each other below -m {ram}\n{}",
        ml.ram,
        md.ram,
        both()
    );
    Ok(())
}

/// The lines of `text` starting with `prefix`, trimmed.
fn records(text: &str, prefix: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && l.starts_with(prefix))
        .map(str::to_string)
        .collect()
}

/// The `mem` figures both boots must share, and the RAM total.
#[derive(Debug, PartialEq, Eq)]
struct MemFigures {
    max_phys: u64,
    sections: u64,
    present: u64,
    ram: u64,
}

fn mem_figures(mem: &str) -> Result<MemFigures> {
    let total = fields(line(mem, "mem.total ")?);
    let mm = fields(line(mem, "mem.mm ")?);
    Ok(MemFigures {
        max_phys: number(&total, "max_phys")?,
        sections: number(&mm, "sections")?,
        present: number(&mm, "present")?,
        ram: number(&total, "ram")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(boot: BootPath, mem: &str, firmware: &str) -> View {
        View {
            boot,
            loader: String::new(),
            mem: mem.into(),
            firmware: firmware.into(),
            regions: "ID START\n0 0x100000000 0x3e0000000 hotplug-window\n".into(),
        }
    }

    const MEM_L: &str = "mem.region start=0x0 end=0xa0000 kind=usable\n\
        mem.region start=0x1f4ec000 end=0x1f6ec000 kind=reserved\n\
        mem.region start=0x1ff78000 end=0x20000000 kind=acpi-nvs\n\
        mem.region start=0x100000 end=0x1ff00000 kind=usable\n\
        mem.total ram=530186240 max_phys=0xffffffffff\n\
        mem.mm managed=1 free=1 sections=4 present=131072 memmap.pages=2048 vmemmap.leaves=4\n";
    const MEM_D: &str = "mem.region start=0x0 end=0x9fc00 kind=usable\n\
        mem.region start=0x100000 end=0x1ffdf000 kind=usable\n\
        mem.region start=0x1ffdf000 end=0x20000000 kind=reserved\n\
        mem.total ram=536341504 max_phys=0xffffffffff\n\
        mem.mm managed=2 free=2 sections=4 present=131072 memmap.pages=2048 vmemmap.leaves=4\n";

    #[test]
    fn placement_differences_are_allowed_and_others_are_not() {
        let fw_l = "firmware kind=acpi rsdp=0x1f77d014 rev=2 tables=7\nfirmware.srat start=0x0\n";
        let fw_d = "firmware kind=acpi rsdp=0xf5250 rev=0 tables=7\nfirmware.srat start=0x0\n";
        let (l, d) = (
            v(BootPath::Limine, MEM_L, fw_l),
            v(BootPath::Direct, MEM_D, fw_d),
        );
        agree(&l, &d, 512 << 20, 32 << 20).unwrap();
        let other = v(
            BootPath::Direct,
            MEM_D,
            &fw_d.replace("tables=7", "tables=6"),
        );
        assert!(agree(&l, &other, 512 << 20, 32 << 20).is_err());
        let moved = v(
            BootPath::Direct,
            &MEM_D.replace("sections=4", "sections=3"),
            fw_d,
        );
        assert!(agree(&l, &moved, 512 << 20, 32 << 20).is_err());
        let mut regions = d.clone();
        regions.regions.push_str("1 0x40000000 pmem\n");
        assert!(agree(&l, &regions, 512 << 20, 32 << 20).is_err());
        assert!(
            agree(&l, &d, 512 << 20, 1 << 20).is_err(),
            "OVMF's 6 MiB over the slack"
        );
    }
}
