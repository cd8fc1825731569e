//! The figures' values and how both sides' text is read: a value shown one way and
//! judged on a key, our console's `key=value` fields, numbers and ranges.

use std::collections::HashMap;

/// A figure's displayed text and the key equality is judged on.
pub(super) struct Value {
    pub(super) shown: String,
    pub(super) key: String,
}

pub(super) fn hex(v: u64) -> Value {
    let shown = format!("{v:#x}");
    Value {
        key: shown.clone(),
        shown,
    }
}

pub(super) fn text(s: &str) -> Value {
    Value {
        shown: s.to_string(),
        key: s.to_string(),
    }
}

/// `refused (ENXIO)`: judged on `refused` only.
pub(super) fn with_detail(key: &str, detail: &str) -> Value {
    Value {
        shown: format!("{key} ({detail})"),
        key: key.to_string(),
    }
}

pub(super) fn missing() -> Value {
    text("-")
}

/// `key=value` fields of one of our console lines.
pub(super) fn fields(line: &str) -> HashMap<&str, &str> {
    line.split_whitespace()
        .filter_map(|w| w.split_once('='))
        .collect()
}

pub(super) fn num(f: &HashMap<&str, &str>, key: &str) -> Option<u64> {
    let t = f.get(key)?;
    match t.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => t.parse().ok(),
    }
}

pub(super) fn lines_with<'a>(
    text: &'a str,
    prefix: &'a str,
) -> impl Iterator<Item = HashMap<&'a str, &'a str>> + 'a {
    text.lines()
        .map(str::trim)
        .filter(move |l| l.starts_with(prefix))
        .map(fields)
}

/// `0x1-0x2` → (1, 2).
pub(super) fn range_field(text: &str) -> Option<(u64, u64)> {
    let (a, b) = text.split_once('-')?;
    let parse = |t: &str| u64::from_str_radix(t.strip_prefix("0x")?, 16).ok();
    Some((parse(a)?, parse(b)?))
}
