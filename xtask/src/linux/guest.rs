//! A running Linux guest, driven like our kernel is: booted in a profile's machine with
//! its console on pipes, asked for records (`dump`), watched for hot-add (`linux: uevent`
//! and `linux: online` lines carry the guest's uptime in ms), powered off with the same
//! `@@EXIT` sentinel. `compare` uses it; a benchmark can too (boot, hot-add through
//! [`LinuxGuest::qmp`], then [`LinuxGuest::wait_online`]).

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use qemu::accel::{self, AccelChoice};
use qemu::linux::DirectLinux;
use qemu::{BootImage, Machine, Outcome, Profile, Qmp, RunOptions};

use super::kit::Kit;
use super::online::OnlineWatch;

/// How long a Linux boot under TCG may take to reach `linux: ready`.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(240);
/// How long one `dump` may take.
const DUMP_TIMEOUT: Duration = Duration::from_secs(60);

/// One `key=value` record line: its kind (`linux.memory`, `linux:`) and its fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub kind: String,
    pub fields: BTreeMap<String, String>,
}

impl Record {
    /// Parses `kind k=v k=v ...` (words without `=` after the kind are kept as `word`).
    pub fn parse(line: &str) -> Option<Record> {
        let mut words = line.split_whitespace();
        let kind = words.next()?;
        if !kind.starts_with("linux") {
            return None;
        }
        let mut fields = BTreeMap::new();
        for word in words {
            match word.split_once('=') {
                Some((k, v)) => fields.insert(k.to_string(), v.to_string()),
                None => fields.insert("word".to_string(), word.to_string()),
            };
        }
        Some(Record {
            kind: kind.trim_end_matches(':').to_string(),
            fields,
        })
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields.get(key).map(String::as_str)
    }

    /// A field as a number (decimal or 0x hex).
    pub fn num(&self, key: &str) -> Option<u64> {
        let text = self.get(key)?;
        match text.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => text.parse().ok(),
        }
    }
}

/// The records of one `dump` (or of the boot), in console order.
#[derive(Clone, Debug, Default)]
pub struct Records(pub Vec<Record>);

impl Records {
    pub fn parse(text: &str) -> Records {
        Records(
            text.lines()
                .filter_map(|l| Record::parse(l.trim()))
                .collect(),
        )
    }

    /// Records of one kind (`linux.memory`, `linux.nd.pfn`, ...).
    pub fn of<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Record> + 'a {
        self.0.iter().filter(move |r| r.kind == kind)
    }

    /// `linux:` event records whose first word is `event` (`fsdax`, `uevent`, ...).
    pub fn events<'a>(&'a self, event: &'a str) -> impl Iterator<Item = &'a Record> + 'a {
        self.0
            .iter()
            .filter(move |r| r.kind == "linux" && r.get("word") == Some(event))
    }

    /// `memory_block_size_bytes()`.
    pub fn block_size(&self) -> Option<u64> {
        self.of("linux.block").next()?.num("size")
    }

    /// A `/proc/vmstat` counter.
    pub fn vmstat(&self, key: &str) -> Option<u64> {
        self.of("linux.vmstat").next()?.num(key)
    }

    /// Bytes of `range` covered by memory blocks in `state`.
    pub fn block_bytes(&self, range: &Range<u64>, state: &str) -> u64 {
        self.of("linux.memory")
            .filter(|r| r.get("state") == Some(state))
            .filter_map(|r| Some(r.num("start")?..r.num("end")?))
            .map(|b| {
                b.end
                    .min(range.end)
                    .saturating_sub(b.start.max(range.start))
            })
            .sum()
    }
}

/// A Linux guest in a profile's machine.
pub struct LinuxGuest {
    machine: Machine,
    seq: u32,
    boot: Records,
}

impl LinuxGuest {
    /// Boots `kit` in `profile`'s machine (QMP on a fresh socket) and waits for
    /// `linux: ready`; `append` is added to the kernel command line.
    pub fn boot(kit: &Kit, profile: &Profile, append: Option<&str>) -> Result<LinuxGuest> {
        let image = BootImage {
            arch: kit.arch,
            kernel: kit.kernel.clone(),
            esp: None,
            loader: None,
        };
        let mut opts = RunOptions::new(image);
        opts.linux = Some(DirectLinux {
            kernel: kit.kernel.clone(),
            initrd: kit.initrd.clone(),
        });
        opts.append = Some(kit.cmdline(append));
        // TCG: the KVM probe (qemu::kvm) proves KVM with our image, not with Linux.
        opts.accel = accel::resolve(AccelChoice::Tcg, &opts.image)?;
        opts.timeout = Duration::from_secs(3600);
        opts.qmp = Some(qemu::machine::temp_qmp_path(&format!("linux-{}", kit.arch)));
        let mut machine = Machine::spawn(profile, &opts)?;
        let boot_log = machine.expect("linux: ready", BOOT_TIMEOUT)?;
        Ok(LinuxGuest {
            boot: Records::parse(&boot_log),
            machine,
            seq: 0,
        })
    }

    /// The records printed during boot (modules, fsdax conversions).
    pub fn boot_records(&self) -> &Records {
        &self.boot
    }

    /// A QMP client for this machine.
    pub fn qmp(&self) -> Result<Qmp> {
        self.machine.qmp()
    }

    /// Asks for every record and returns them (with any event lines printed meanwhile).
    pub fn dump(&mut self) -> Result<Records> {
        self.seq += 1;
        self.machine.send_line("dump")?;
        let end = format!("linux: dump end seq={}", self.seq);
        let text = self.machine.expect(&end, DUMP_TIMEOUT)?;
        Ok(Records::parse(&text))
    }

    /// Dumps until every memory block in `range` is online (hot-add seen and onlined) and
    /// returns that dump with `true`; returns the last dump with `false` when no block of
    /// `range` appeared within `appear` (Linux refused the add, e.g. a range that is not
    /// memory-block aligned) or not all were online within `timeout`.
    pub fn wait_online(
        &mut self,
        range: Range<u64>,
        appear: Duration,
        timeout: Duration,
    ) -> Result<(Records, bool)> {
        let start = Instant::now();
        loop {
            let records = self.dump()?;
            let online = records.block_bytes(&range, "online");
            if online == range.end - range.start {
                return Ok((records, true));
            }
            let present = online + records.block_bytes(&range, "offline");
            let waited = start.elapsed();
            if (present == 0 && waited >= appear) || waited >= timeout {
                return Ok((records, false));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Consumes the console until it has been quiet for `quiet`: lines printed late for an
    /// earlier step (a block's second `online` line, removal uevents) are not read as the
    /// next step's.
    pub fn settle(&mut self, quiet: Duration) {
        while self.machine.expect("\n", quiet).is_ok() {}
    }

    /// Reads the console line by line into `watch` until it reports its range online;
    /// returns the moment the completing line arrived. An error after `timeout` says how
    /// much of the range came online.
    pub fn watch_online(&mut self, watch: &mut OnlineWatch, timeout: Duration) -> Result<Instant> {
        let deadline = Instant::now() + timeout;
        while !watch.is_done() {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.machine.expect("\n", left).map_err(|e| {
                anyhow!(
                    "{:#x} of {:#x} bytes online: {e:#}",
                    watch.online_bytes(),
                    watch.want()
                )
            })?;
            if watch.feed(&line) {
                return Ok(Instant::now());
            }
        }
        Ok(Instant::now())
    }

    /// The kernel log lines that contain `needle` (the console `dmesg` command).
    pub fn dmesg_lines(&mut self, needle: &str) -> Result<Vec<String>> {
        self.machine.send_line("dmesg")?;
        let text = self.machine.expect("linux: dmesg end", DUMP_TIMEOUT)?;
        Ok(text
            .lines()
            .filter(|l| l.starts_with("linux.dmesg") && l.contains(needle))
            .map(str::to_string)
            .collect())
    }

    /// `poweroff`: the guest prints `@@EXIT status=0` and powers the machine off.
    pub fn poweroff(mut self) -> Result<()> {
        self.machine.send_line("poweroff")?;
        let outcome = self.machine.wait_exit(Duration::from_secs(60));
        if outcome != Outcome::Pass {
            bail!("Linux guest ended with {outcome}");
        }
        Ok(())
    }
}

impl Kit {
    /// The kernel command line: the console, no reboot on panic, then `extra`.
    pub fn cmdline(&self, extra: Option<&str>) -> String {
        let mut line = format!("{} panic=-1", self.console);
        if let Some(extra) = extra.filter(|e| !e.is_empty()) {
            line.push(' ');
            line.push_str(extra);
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_parse_and_sum_online_blocks() {
        let text = "noise\nlinux.block size=0x8000000 auto_online=online\n\
            linux.memory block=memory32 start=0x100000000 end=0x108000000 state=online zones=Movable\n\
            linux.memory block=memory33 start=0x108000000 end=0x110000000 state=offline zones=Normal\n\
            linux.vmstat nr_memmap_pages=1536 nr_memmap_boot_pages=2048 \n\
            linux: fsdax region=region0 namespace=namespace0.0 state=failed step=namespace error=ENXIO\n";
        let r = Records::parse(text);
        assert_eq!(r.block_size(), Some(0x800_0000));
        assert_eq!(r.vmstat("nr_memmap_pages"), Some(1536));
        assert_eq!(r.vmstat("nr_memmap_boot_pages"), Some(2048));
        let range = 0x1_0000_0000..0x1_1000_0000;
        assert_eq!(r.block_bytes(&range, "online"), 0x800_0000);
        assert_eq!(r.block_bytes(&range, "offline"), 0x800_0000);
        let fsdax: Vec<_> = r.events("fsdax").collect();
        assert_eq!(fsdax.len(), 1);
        assert_eq!(fsdax[0].get("error"), Some("ENXIO"));
    }
}
