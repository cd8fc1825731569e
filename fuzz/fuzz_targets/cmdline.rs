//! Fuzz target `cmdline`: the kernel command-line helpers (`kernel::firmware::cmdline`)
//! and the `memmap=` parser (`kernel::firmware::memmap_param`).
//!
//! The input (lossily UTF-8) is a command line. Checked against plain reference
//! implementations written here: the word split (quotes group spaces), `value` (last
//! `key=` wins, quotes trimmed) and `has_flag` for a few keys, and every `memmap=` item
//! (Linux `memparse` numbers, `SIZE!START` only, leading-zero decimals refused). Accepted
//! items round-trip through hex and decimal text; errors and records must format.
#![no_main]

use kernel::firmware::cmdline::{has_flag, value, words};
use kernel::firmware::memmap_param::{
    MemmapParams, Problem, items, parse_cmdline, parse_item, parse_size, parse_value,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let line: &str = &text;

    let got: Vec<&str> = words(line).collect();
    assert_eq!(got, ref_words(line), "words of {line:?}");
    check_word_slices(line, &got);

    let mut keys = vec!["memmap", "loglevel", "mem", ""];
    if let Some((k, _)) = got.first().and_then(|w| w.split_once('=')) {
        keys.push(k);
    }
    for key in keys {
        let expect = ref_words(line)
            .into_iter()
            .filter_map(|w| w.split_once('='))
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| v.trim_matches('"'))
            .next_back();
        assert_eq!(value(line, key), expect, "value({key:?})");
        let flag = ref_words(line).contains(&key);
        assert_eq!(has_flag(line, key), flag, "has_flag({key:?})");
    }
    if let Some(w) = got.last() {
        assert!(has_flag(line, w));
    }

    let ref_items: Vec<&str> = ref_words(line)
        .into_iter()
        .filter_map(|w| w.strip_prefix("memmap="))
        .flat_map(|v| v.trim_matches('"').split(','))
        .collect();
    let params = parse_cmdline(line);
    assert_eq!(params.ranges.len() + params.errors.len(), ref_items.len());
    let mut from_values = MemmapParams::default();
    for v in ref_words(line)
        .into_iter()
        .filter_map(|w| w.strip_prefix("memmap="))
    {
        parse_value(v.trim_matches('"'), &mut from_values);
    }
    assert_eq!(from_values, params, "parse_value per word == parse_cmdline");
    for (item, parsed) in ref_items.iter().zip(items(line)) {
        assert_eq!(parsed, parse_item(item));
        check_item(item);
    }
    // The whole input as one item and as a number, too.
    check_item(line);
    check_size(line);
});

/// Words: runs of non-space characters, where a double quote toggles a mode in which
/// spaces do not end the word.
fn ref_words(line: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = None;
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match (start, c) {
            (None, ' ') => {}
            (None, _) => {
                start = Some(i);
                quoted = c == '"';
            }
            (Some(s), ' ') if !quoted => {
                out.push(&line[s..i]);
                start = None;
            }
            (Some(_), '"') => quoted = !quoted,
            (Some(_), _) => {}
        }
    }
    if let Some(s) = start {
        out.push(&line[s..]);
    }
    out
}

/// The words are ordered, non-overlapping slices of `line` separated only by spaces.
fn check_word_slices(line: &str, words: &[&str]) {
    let base = line.as_ptr() as usize;
    let mut pos = 0;
    for w in words {
        assert!(!w.is_empty() && !w.starts_with(' '));
        let at = w.as_ptr() as usize - base;
        assert!(at >= pos && at + w.len() <= line.len());
        assert!(line[pos..at].bytes().all(|b| b == b' '), "gap before {w:?}");
        pos = at + w.len();
    }
    assert!(
        line[pos..].bytes().all(|b| b == b' '),
        "tail after the last word"
    );
}

/// Linux's `memparse` (with the leading-zero refusal): value and bytes consumed.
fn ref_size(text: &str) -> Result<(u64, usize), &'static str> {
    let b = text.as_bytes();
    let (radix, mut at) = if b.len() >= 2 && b[0] == b'0' && (b[1] == b'x' || b[1] == b'X') {
        (16u32, 2)
    } else {
        (10, 0)
    };
    let first = at;
    let mut value: Option<u64> = Some(0);
    while at < b.len() && (b[at] as char).is_digit(radix) {
        let d = u64::from((b[at] as char).to_digit(radix).expect("digit"));
        value = value
            .and_then(|v| v.checked_mul(u64::from(radix)))
            .and_then(|v| v.checked_add(d));
        at += 1;
    }
    if at == first {
        return Err("not-a-number");
    }
    if radix == 10 && at - first > 1 && b[first] == b'0' {
        return Err("leading-zero");
    }
    let value = value.ok_or("overflow")?;
    let shift = match b.get(at).map(u8::to_ascii_lowercase) {
        Some(b'k') => 10,
        Some(b'm') => 20,
        Some(b'g') => 30,
        Some(b't') => 40,
        Some(b'p') => 50,
        Some(b'e') => 60,
        _ => return Ok((value, at)),
    };
    if value > u64::MAX >> shift {
        return Err("overflow");
    }
    Ok((value << shift, at + 1))
}

fn check_size(text: &str) {
    let got = parse_size(text, "size");
    match (ref_size(text), &got) {
        (Ok((v, used)), Ok((gv, rest))) => {
            assert_eq!((v, &text[used..]), (*gv, *rest), "parse_size({text:?})");
        }
        (Err(code), Err(p)) => assert_eq!(code, p.code(), "parse_size({text:?})"),
        (r, _) => panic!("parse_size({text:?}) = {got:?}, reference {r:?}"),
    }
}

/// `SIZE!START` by the reference, with the code of the first problem otherwise.
fn ref_item(item: &str) -> Result<(u64, u64), &'static str> {
    if item.is_empty() {
        return Err("empty");
    }
    if item.starts_with("exactmap") {
        return Err("unsupported");
    }
    let (size, used) = ref_size(item)?;
    let rest = &item[used..];
    match rest.chars().next() {
        None | Some('@' | '#' | '$' | '%') => return Err("unsupported"),
        Some('!') => {}
        Some(_) => return Err("trailing-text"),
    }
    let (start, used) = ref_size(&rest[1..])?;
    if used != rest.len() - 1 {
        return Err("trailing-text");
    }
    start.checked_add(size).ok_or("wraps")?;
    Ok((start, size))
}

fn check_item(item: &str) {
    let got = parse_item(item);
    match (ref_item(item), &got) {
        (Ok((start, size)), Ok(req)) => {
            assert_eq!(
                (req.start, req.size, req.text.as_str()),
                (start, size, item)
            );
            assert_eq!(req.end(), start + size);
            for text in [format!("{size:#x}!{start:#x}"), format!("{size}!{start}")] {
                let again = parse_item(&text).expect("round trip");
                assert_eq!((again.start, again.size), (start, size), "{text}");
            }
        }
        (Err(code), Err(e)) => {
            assert_eq!(code, e.problem.code(), "parse_item({item:?}) = {e:?}");
            assert_eq!(e.text, item);
            let shown = e.to_string();
            assert!(shown.starts_with("memmap="), "{shown}");
            let record = e.record().to_string();
            assert!(record.starts_with("region: ignore source=memmap"));
            if let Problem::Trailing(rest) = &e.problem {
                assert!(item.ends_with(rest.as_str()));
            }
        }
        (r, _) => panic!("parse_item({item:?}) = {got:?}, reference {r:?}"),
    }
}
