//! Hostile input at the shell and the protection audit, shared by every arch's tests.
//!
//! [`check_hostile_shell`] types malformed commands (each must answer with exactly one
//! `error:` line) and 4 KiB of seeded garbage, then checks the kernel still answers and
//! its memory counters did not move. [`check_protection`] runs `protect` and checks every
//! target's mapping and live behaviour field by field, then touches the vmemmap hole with
//! `peek`, `walk` and `jump` and text with `poke`.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use qemu::Machine;

use crate::{COMMAND_TIMEOUT, PROMPT, fields, line, shell};

/// Commands that must each be answered by exactly one `error:` line (or, for a
/// well-formed request the hotplug engine refuses, one `hotplug: refuse` record).
pub const MALFORMED: &[&str] = &[
    "frobnicate",
    "MEM",
    "mem extra",
    "exit",
    "exit 256",
    "exit -1",
    "altmap",
    "altmap x",
    "altmap 99",
    "walk",
    "walk 0xzz",
    "page",
    "page 0xffffffffffffffff",
    "probe",
    "probe 0x1",
    "probe 0x1 0x1",
    "unprobe 0 0",
    "alloc",
    "alloc 0",
    "alloc -1",
    "alloc 1 2 3",
    "inject",
    "inject buddy",
    "inject bogus 1",
    "inject buddy x",
    "inject buddy 1 sometimes",
    "bench sideways",
    "peek",
    "peek 0x3",
    "poke 0x1000",
    "poke 0x1000 zz",
    "jump",
    "jump nowhere",
];

/// Boots `profile` and runs [`check_protection`] then [`check_hostile_shell`], and powers
/// off (the whole suite for an arch with nothing to hot-add first).
pub fn boot_and_check(profile: &qemu::Profile, timeout: Duration) -> Result<()> {
    let mut m = crate::boot_to_prompt(profile, "", timeout)?;
    check_protection(&mut m, false)?;
    check_hostile_shell(&mut m)?;
    m.send_line("poweroff")?;
    let outcome = m.wait_exit(Duration::from_secs(30));
    qemu::machine::ensure_outcome(&m, outcome, qemu::Outcome::Pass)
}

/// The `mem.mm` record: the counters nothing in a hostile sequence may change.
fn mm_line(m: &mut Machine) -> Result<String> {
    let mem = shell(m, "mem")?;
    Ok(line(&mem, "mem.mm ")?.to_string())
}

/// Every malformed command gets one `error:` line; 4 KiB of garbage is survived; the
/// memory counters are unchanged afterwards.
pub fn check_hostile_shell(m: &mut Machine) -> Result<()> {
    let before = mm_line(m)?;
    for command in MALFORMED {
        let out = shell(m, command)?;
        // The first line is the echo of what was typed.
        let answer: Vec<&str> = out
            .lines()
            .skip(1)
            .filter(|l| !l.trim().is_empty())
            .collect();
        let one_line = answer.len() == 1
            && (answer[0].starts_with("error: ") || answer[0].starts_with("hotplug: refuse "));
        ensure!(
            one_line,
            "{command:?} was not answered by exactly one error line:\n{out}"
        );
    }
    let mark = m.console().len();
    type_garbage(m, 4096, 0x9e37_79b9_7f4a_7c15)?;
    // Whatever the garbage left half-typed is abandoned with ^C; then a known command,
    // matched on its output (the garbage printed prompts of its own).
    m.send_line("\u{3}")?;
    m.send_line("cmdline")?;
    m.expect("cmdline: ", COMMAND_TIMEOUT)?;
    m.expect(PROMPT, COMMAND_TIMEOUT)?;
    // The garbage reached the shell: its lines were refused, none was run.
    let answered = m.console()[mark..].to_string();
    let refusals = answered.lines().filter(|l| l.contains("error: ")).count();
    ensure!(refusals > 0, "no refusal of the garbage:\n{answered}");
    let after = mm_line(m)?;
    ensure!(
        after == before,
        "hostile input changed the memory counters:\n{before}\n{after}"
    );
    Ok(())
}

/// Types `len` seeded pseudo-random bytes: every value but 0x01 (QEMU's console mux
/// escape, a host feature, not kernel input), CR and LF included, so the kernel sees
/// overlong lines, escape sequences, control bytes, invalid UTF-8 and junk commands.
fn type_garbage(m: &mut Machine, len: usize, seed: u64) -> Result<()> {
    let mut state = seed;
    let mut bytes = Vec::with_capacity(len);
    while bytes.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let b = (state >> 32) as u8;
        if b != 0x01 {
            bytes.push(b);
        }
    }
    for chunk in bytes.chunks(256) {
        m.send_bytes(chunk)?;
        std::thread::sleep(Duration::from_millis(20));
    }
    // Let the kernel drain what the UART holds before the marker command.
    std::thread::sleep(Duration::from_millis(500));
    Ok(())
}

/// Runs `protect` and checks each target, then touches the hole and text directly.
/// `memmap_last` asks for a second memmap target (after a hot-add).
pub fn check_protection(m: &mut Machine, memmap_last: bool) -> Result<()> {
    let out = shell(m, "protect")?;
    let mut wanted = vec![
        "text",
        "rodata",
        "data",
        "heap",
        "stack",
        "memmap",
        "vmemmap-hole",
    ];
    if memmap_last {
        wanted.push("memmap.last");
    }
    let mut hole = None;
    let mut text = None;
    let mut memmap = None;
    for what in &wanted {
        let rec = fields(line(&out, &format!("protect: what={what} "))?);
        let get = |k: &str| rec.get(k).copied().unwrap_or("?");
        let expect: &[(&str, &str)] = match *what {
            "text" => &[
                ("writable", "0"),
                ("executable", "1"),
                ("read", "ok"),
                ("write", "fault"),
            ],
            "rodata" => &[
                ("writable", "0"),
                ("executable", "0"),
                ("read", "ok"),
                ("write", "fault"),
                ("jump", "fault"),
            ],
            "vmemmap-hole" => &[("want", "---"), ("walk", "NotMapped")],
            _ => &[
                ("writable", "1"),
                ("executable", "0"),
                ("read", "ok"),
                ("write", "ok"),
                ("jump", "fault"),
            ],
        };
        for (k, v) in expect {
            ensure!(get(k) == *v, "{what}: {k}={} (want {v}):\n{out}", get(k));
        }
        let record = line(&out, &format!("protect: what={what} "))?;
        ensure!(record.ends_with("result=pass"), "{record}");
        match *what {
            // peek and poke take doubleword-aligned addresses.
            "text" => text = Some(format!("{:#x}", crate::number(&rec, "va")? & !7)),
            "memmap" => memmap = Some(get("va").to_string()),
            "vmemmap-hole" => {
                ensure!(record.contains("read=fault("), "{record}");
                hole = Some(get("va").to_string());
            }
            _ => {}
        }
    }
    let summary = fields(line(&out, "protect.summary ")?);
    ensure!(
        summary.get("failed") == Some(&"0") && summary.get("nx") == Some(&"1"),
        "{out}"
    );
    let hole = hole.context("no hole")?;
    let peek = shell(m, &format!("peek {hole}"))?;
    ensure!(line(&peek, "peek va=")?.contains(" fault="), "{peek}");
    let walk = shell(m, &format!("walk {hole}"))?;
    ensure!(line(&walk, "walk.result ")?.contains(" fault="), "{walk}");
    let text = text.context("no text")?;
    let value = {
        let out = shell(m, &format!("peek {text}"))?;
        let rec = fields(line(&out, "peek va=")?);
        rec.get("value").context("text read faulted")?.to_string()
    };
    let poke = shell(m, &format!("poke {text} {value}"))?;
    ensure!(
        line(&poke, "poke va=")?.contains(" fault="),
        "text was writable: {poke}"
    );
    let refused = shell(m, &format!("jump {text}"))?;
    line(&refused, "error: jump: ")?;
    let memmap = memmap.context("no memmap")?;
    let jump = shell(m, &format!("jump {memmap}"))?;
    ensure!(line(&jump, "jump va=")?.contains(" fault="), "{jump}");
    Ok(())
}

/// Boots with `selftest=vmemmap` (an unguarded read of the struct page of the first frame
/// past the last present section): the run must fail with status 2 and the exception
/// report must name the vmemmap and that frame.
pub fn check_vmemmap_touch(profile: &qemu::Profile, timeout: Duration) -> Result<()> {
    let mut m = crate::boot(profile, "selftest=vmemmap", timeout)?;
    let outcome = m.wait_exit(timeout);
    qemu::machine::ensure_outcome(&m, outcome, qemu::Outcome::Fail(2))?;
    let console = m.console();
    // A log line: after its timestamp and level.
    let start = console
        .lines()
        .find(|l| l.contains("selftest=vmemmap: reading"))
        .context("no selftest line")?;
    let pfn = start
        .split_whitespace()
        .skip_while(|w| *w != "pfn")
        .nth(1)
        .context("no pfn in the selftest line")?;
    let named = console
        .lines()
        .filter(|l| l.starts_with("exception: ") && l.contains(" in=vmemmap "))
        .collect::<Vec<_>>();
    ensure!(
        named.len() == 1,
        "want one vmemmap exception line:\n{console}"
    );
    let rec = fields(named[0]);
    ensure!(
        rec.get("pfn") == Some(&pfn),
        "pfn {pfn} not named:\n{console}"
    );
    Ok(())
}
