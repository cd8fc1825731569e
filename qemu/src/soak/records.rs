//! Reading the kernel's console: `key=value` words, numbers and ranges, the engine's
//! `hotplug: KIND range=..` records, the alarm lines that end a soak, and the bytes a
//! cycle's records added inside a window.

use std::collections::HashMap;

use anyhow::{Context, Result};

use super::{PAGE, PROMPT};

/// The `key=value` words of a line.
pub(super) fn fields(line: &str) -> HashMap<&str, &str> {
    line.split_whitespace()
        .filter_map(|w| w.split_once('='))
        .collect()
}

/// Decimal or `0x` hexadecimal.
pub(super) fn parse_number(text: &str) -> Option<u64> {
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

pub(super) fn number(f: &HashMap<&str, &str>, key: &str, line: &str) -> Result<u64> {
    f.get(key)
        .and_then(|t| parse_number(t))
        .with_context(|| format!("no number {key}= in {line:?}"))
}

/// A `lo-hi` range of two hexadecimal numbers.
pub(super) fn parse_range(text: &str) -> Option<(u64, u64)> {
    let (lo, hi) = text.split_once('-')?;
    Some((parse_number(lo)?, parse_number(hi)?))
}

pub(super) fn opt(v: Option<u64>) -> String {
    v.map_or("-".to_string(), |v| v.to_string())
}

pub(super) fn find_line<'a>(text: &'a str, prefix: &str) -> Result<&'a str> {
    text.lines()
        .map(str::trim)
        .find(|l| l.starts_with(prefix))
        .with_context(|| format!("no {prefix:?} line in:\n{text}"))
}

/// One `hotplug: KIND range=A-B ...` record of the engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// `add`, `online`, `offline`, `remove`, ...
    pub kind: String,
    pub start: u64,
    pub end: u64,
    /// `pages=` (online and offline records).
    pub pages: Option<u64>,
}

impl Record {
    pub fn parse(line: &str) -> Option<Record> {
        let rest = line.trim().strip_prefix("hotplug: ")?;
        let kind = rest.split_whitespace().next()?.to_string();
        let word = |key: &str| rest.split_whitespace().find_map(|w| w.strip_prefix(key));
        let (start, end) = parse_range(word("range=")?)?;
        let pages = word("pages=").and_then(parse_number);
        Some(Record {
            kind,
            start,
            end,
            pages,
        })
    }
}

/// Lines that end a soak wherever they appear: a refused add or remove, a virtio-mem
/// driver that stopped or failed, an error-level log line, a panic or CPU exception.
pub fn is_alarm(line: &str) -> bool {
    let line = line.trim().trim_start_matches(PROMPT);
    [
        "hotplug: refuse",
        "virtio-mem: stop",
        "virtio-mem: error",
        "virtio-mem: refused",
        "] ERROR ",
        "exception:",
        "@@EXIT",
        // A hot-add's full verification (after its online record) failed.
        " result=fail",
    ]
    .iter()
    .any(|p| line.contains(p))
        || line.starts_with("panic")
}

/// Net bytes onlined inside `window` by `records` (the pages of `online` records minus
/// those of `offline` records; a remove's own `offline` record counts what it took).
pub fn net_bytes(records: &[Record], window: (u64, u64)) -> i128 {
    records
        .iter()
        .filter(|r| r.start >= window.0 && r.end <= window.1)
        .map(|r| {
            let bytes = i128::from(r.pages.unwrap_or(0) * PAGE);
            match r.kind.as_str() {
                "online" => bytes,
                "offline" => -bytes,
                _ => 0,
            }
        })
        .sum()
}
