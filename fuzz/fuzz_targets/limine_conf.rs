//! Fuzz target `limine_conf`: the loader's `limine.conf` parser (`boot::conf::parse`).
//!
//! The input (lossily UTF-8) is a config file. A parsed config has at least one entry, a
//! default inside the list, titles and command lines trimmed, and `boot():` paths that
//! are absolute, at least two bytes and hash-free; every entry line and error line points
//! at a real, non-comment line of the input (error line 0 means the whole file).
//! Metamorphic checks: a comment line put in front moves every line number by one and
//! changes nothing else; a comment line put at the end changes nothing; spelling the
//! `path:` key `kernel_path:` (the form every Limine 8.x to 12.x accepts) changes nothing.
#![no_main]

use boot::conf::{ConfError, Config, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let lines: Vec<&str> = text.lines().collect();
    let result = parse(&text);
    match &result {
        Ok(c) => check_config(c, &lines),
        Err(e) => check_error(e, &lines),
    }

    let prefixed = parse(&format!("# fuzz\n{text}"));
    assert_eq!(prefixed, shift(result.clone(), 1), "comment line in front");

    let suffixed = parse(&format!("{text}\n# fuzz"));
    assert_eq!(suffixed, result, "comment line at the end");

    let renamed = parse(&kernel_path_spelling(&text));
    assert_eq!(renamed, result, "`path:` spelled `kernel_path:`");
});

/// `text` with every option line keyed `path` (any case) rekeyed `kernel_path`.
fn kernel_path_spelling(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let body = line.trim_start();
        let indent = &line[..line.len() - body.len()];
        match body.split_once(':') {
            Some((key, value)) if key.trim().eq_ignore_ascii_case("path") => {
                out.push_str(indent);
                out.push_str("kernel_path:");
                out.push_str(value);
            }
            _ => out.push_str(line),
        }
    }
    out
}

fn is_real_line(lines: &[&str], line: usize) -> bool {
    line >= 1
        && lines.get(line - 1).is_some_and(|l| {
            let t = l.trim();
            !t.is_empty() && !t.starts_with('#')
        })
}

fn check_config(c: &Config, lines: &[&str]) {
    assert!(!c.entries.is_empty());
    assert!(c.default < c.entries.len());
    let _ = c.default_entry();
    for e in &c.entries {
        assert!(!e.name.is_empty() && e.name.trim() == e.name, "{e:?}");
        assert!(e.path.starts_with('/') && e.path.len() >= 2 && !e.path.contains('#'));
        assert_eq!(e.path.trim(), e.path);
        assert_eq!(e.cmdline.trim(), e.cmdline);
        assert!(!e.cmdline.contains('\n') && !e.path.contains('\n'));
        assert!(is_real_line(lines, e.line), "entry line {}", e.line);
        assert!(lines[e.line - 1].trim().starts_with('/'));
    }
    let lines_sorted = c.entries.windows(2).all(|w| w[0].line < w[1].line);
    assert!(lines_sorted, "entries in file order");
}

fn check_error(e: &ConfError, lines: &[&str]) {
    assert!(!e.msg.is_empty());
    assert!(e.line == 0 || is_real_line(lines, e.line), "{e}");
    let shown = e.to_string();
    assert!(
        shown.starts_with(&format!("limine.conf:{}: ", e.line)),
        "{shown}"
    );
}

/// `r` with every line number moved by `by` (line 0, the whole file, stays).
fn shift(r: Result<Config, ConfError>, by: usize) -> Result<Config, ConfError> {
    match r {
        Ok(mut c) => {
            c.entries.iter_mut().for_each(|e| e.line += by);
            Ok(c)
        }
        Err(mut e) => {
            if e.line != 0 {
                e.line += by;
            }
            Err(e)
        }
    }
}
