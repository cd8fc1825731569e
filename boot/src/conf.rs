//! The subset of `limine.conf` this loader understands, with line-numbered errors.
//!
//! Syntax (Limine 8+): comment lines start with `#`; global options come first as
//! `key: value`; an entry starts with `/Title` (extra leading slashes mark sub-entries,
//! which are treated as plain entries); entry options follow as `key: value`. Option
//! names are case-insensitive. Understood: `protocol: limine`, `kernel_path:` (alias
//! `path:`) with a `boot():/...` resource, `cmdline:` (alias `kernel_cmdline:`), and the
//! global `default_entry:`. Other Limine options are accepted and ignored so a config
//! stays usable with real Limine; an unknown option is an error. `kernel_path:` is the
//! spelling to write: every Limine release from 8.x to 12.x takes it, while Limine before
//! 8.6 panics on a `path:`-only entry ("KERNEL_PATH not specified").

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

/// One boot entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Title after the leading slashes.
    pub name: String,
    /// Line number of the `/Title` line (1-based).
    pub line: usize,
    /// Path of the kernel on the boot volume, `/`-separated, starting with `/`.
    pub path: String,
    /// Command line handed to the kernel (may be empty).
    pub cmdline: String,
}

/// A parsed configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Entries in file order.
    pub entries: Vec<Entry>,
    /// Index into [`Config::entries`] of the entry to boot.
    pub default: usize,
}

impl Config {
    /// The entry to boot.
    pub fn default_entry(&self) -> &Entry {
        &self.entries[self.default]
    }
}

/// A parse error at a line (1-based; 0 means the file as a whole).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfError {
    /// Offending line, 1-based; 0 for whole-file problems.
    pub line: usize,
    /// What is wrong.
    pub msg: String,
}

impl fmt::Display for ConfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "limine.conf:{}: {}", self.line, self.msg)
    }
}

/// Options Limine knows that this loader accepts and ignores.
const IGNORED: &[&str] = &[
    "timeout",
    "quiet",
    "serial",
    "serial_baudrate",
    "verbose",
    "graphics",
    "wallpaper",
    "wallpaper_style",
    "backdrop",
    "editor_enabled",
    "hash_mismatch_panic",
    "randomise_memory",
    "remember_last_entry",
    "comment",
    "resolution",
    "textmode",
    "kaslr",
    "randomise_hhdm_base",
    "paging_mode",
    "max_paging_mode",
    "min_paging_mode",
    "dtb_path",
    "global_dtb",
    "if_arch",
    "if_fw_type",
];

/// Parses `text`; the result has at least one entry.
pub fn parse(text: &str) -> Result<Config, ConfError> {
    let mut entries: Vec<Partial> = Vec::new();
    let mut default_entry: Option<(usize, usize)> = None;
    for (idx, raw) in text.lines().enumerate() {
        let line = idx + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if let Some(title) = trimmed.strip_prefix('/') {
            let name = title.trim_start_matches('/').trim();
            if name.is_empty() {
                return Err(err(line, "entry title is empty"));
            }
            entries.push(Partial::new(name, line));
            continue;
        }
        let Some((key, value)) = trimmed.split_once(':') else {
            return Err(err(line, "expected `key: value` or `/Entry title`"));
        };
        let key = key.trim().to_ascii_lowercase();
        let value = value.trim();
        match (key.as_str(), entries.last_mut()) {
            ("default_entry", None) => {
                let n = value
                    .parse::<usize>()
                    .map_err(|_| err(line, "default_entry must be a number"))?;
                default_entry = Some((n, line));
            }
            ("protocol" | "path" | "kernel_path" | "cmdline" | "kernel_cmdline", None) => {
                return Err(err(line, "entry option before the first `/Entry`"));
            }
            ("protocol", Some(e)) => e.protocol = Some((value.to_string(), line)),
            ("path" | "kernel_path", Some(e)) => e.path = Some(boot_path(value, line)?),
            ("cmdline" | "kernel_cmdline", Some(e)) => e.cmdline = value.to_string(),
            (k, _) if is_ignored(k) => {}
            _ => return Err(err(line, "unknown option")),
        }
    }
    finish(entries, default_entry)
}

/// An entry while its options are being read.
struct Partial {
    name: String,
    line: usize,
    protocol: Option<(String, usize)>,
    path: Option<String>,
    cmdline: String,
}

impl Partial {
    fn new(name: &str, line: usize) -> Self {
        Self {
            name: name.to_string(),
            line,
            protocol: None,
            path: None,
            cmdline: String::new(),
        }
    }
}

fn finish(parts: Vec<Partial>, default_entry: Option<(usize, usize)>) -> Result<Config, ConfError> {
    if parts.is_empty() {
        return Err(err(0, "no `/Entry` found"));
    }
    let mut entries = Vec::with_capacity(parts.len());
    for p in parts {
        match &p.protocol {
            None => return Err(err(p.line, "entry has no `protocol:`")),
            Some((proto, line)) if !proto.eq_ignore_ascii_case("limine") => {
                return Err(err(*line, "unsupported protocol (only `limine`)"));
            }
            Some(_) => {}
        }
        let Some(path) = p.path else {
            return Err(err(p.line, "entry has no `kernel_path:` (or `path:`)"));
        };
        entries.push(Entry {
            name: p.name,
            line: p.line,
            path,
            cmdline: p.cmdline,
        });
    }
    let default = match default_entry {
        None => 0,
        Some((n, line)) if n == 0 || n > entries.len() => {
            return Err(err(line, "default_entry is out of range"));
        }
        Some((n, _)) => n - 1,
    };
    Ok(Config { entries, default })
}

/// `boot():/boot/kernel` -> `/boot/kernel`; other resources are not supported.
fn boot_path(value: &str, line: usize) -> Result<String, ConfError> {
    if value.starts_with('$') {
        return Err(err(line, "compressed (`$`) paths are not supported"));
    }
    let Some(rest) = value.strip_prefix("boot():") else {
        return Err(err(line, "only `boot():/...` paths are supported"));
    };
    if rest.contains('#') {
        return Err(err(line, "hash-checked (`#`) paths are not supported"));
    }
    if !rest.starts_with('/') || rest.len() < 2 {
        return Err(err(
            line,
            "path must be absolute, e.g. `boot():/boot/kernel`",
        ));
    }
    Ok(rest.to_string())
}

fn is_ignored(key: &str) -> bool {
    IGNORED.contains(&key)
        || key.starts_with("interface_")
        || key.starts_with("term_")
        || key.starts_with("module_")
}

fn err(line: usize, msg: &str) -> ConfError {
    ConfError {
        line,
        msg: msg.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "# hotmem\ntimeout: 0\nserial: yes\n\n/hotmem\n    protocol: limine\n    \
                          path: boot():/boot/kernel\n    cmdline: loglevel=info selftest=fault\n";

    /// The file the ESP gets.
    const SHIPPED: &str = include_str!("../limine.conf");

    #[test]
    fn the_shipped_file_uses_the_key_every_limine_accepts() {
        let c = parse(SHIPPED).unwrap();
        let e = c.default_entry();
        assert_eq!(
            (e.name.as_str(), e.path.as_str()),
            ("hotmem", "/boot/kernel")
        );
        assert_eq!(e.cmdline, "loglevel=info");
        let keys: Vec<&str> = SHIPPED
            .lines()
            .map(str::trim)
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once(':').map(|(k, _)| k.trim()))
            .collect();
        assert!(keys.contains(&"kernel_path"), "{keys:?}");
        assert!(!keys.contains(&"path"), "Limine < 8.6 ignores `path:`");
    }

    #[test]
    fn path_and_kernel_path_are_the_same_option() {
        let a = parse(SAMPLE).unwrap();
        let b = parse(&SAMPLE.replace("path:", "kernel_path:")).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn parses_the_shipped_shape() {
        let c = parse(SAMPLE).unwrap();
        assert_eq!(c.entries.len(), 1);
        let e = c.default_entry();
        assert_eq!(e.name, "hotmem");
        assert_eq!(e.line, 5);
        assert_eq!(e.path, "/boot/kernel");
        assert_eq!(e.cmdline, "loglevel=info selftest=fault");
    }

    #[test]
    fn keys_are_case_insensitive_and_aliases_work() {
        let c =
            parse("/a\nPROTOCOL: Limine\nKernel_Path: boot():/k\nKERNEL_CMDLINE: x=1\n").unwrap();
        assert_eq!(c.entries[0].path, "/k");
        assert_eq!(c.entries[0].cmdline, "x=1");
    }

    #[test]
    fn default_entry_selects_and_is_checked() {
        let two = "default_entry: 2\n/a\nprotocol: limine\npath: boot():/a\n//b\nprotocol: limine\npath: boot():/b\n";
        let c = parse(two).unwrap();
        assert_eq!(c.default_entry().name, "b");
        let bad = two.replace("default_entry: 2", "default_entry: 3");
        assert_eq!(parse(&bad).unwrap_err().line, 1);
    }

    #[test]
    fn cmdline_keeps_colons_and_may_be_empty() {
        let c = parse("/a\nprotocol: limine\npath: boot():/k\ncmdline: a=b:c\n").unwrap();
        assert_eq!(c.entries[0].cmdline, "a=b:c");
        let c = parse("/a\nprotocol: limine\npath: boot():/k\n").unwrap();
        assert_eq!(c.entries[0].cmdline, "");
    }

    #[test]
    fn errors_carry_line_numbers() {
        let cases: &[(&str, usize, &str)] = &[
            ("/a\nprotocol: limine\nbogus line\n", 3, "expected"),
            (
                "/a\nprotocol: linux\npath: boot():/k\n",
                2,
                "unsupported protocol",
            ),
            ("timeout: 0\n/a\nprotocol: limine\n", 2, "no `kernel_path:`"),
            ("/a\npath: boot():/k\n", 1, "no `protocol:`"),
            ("path: boot():/k\n", 1, "before the first"),
            (
                "/a\nprotocol: limine\npath: hdd(1:1):/k\n",
                3,
                "only `boot():",
            ),
            ("/a\nprotocol: limine\npath: boot():/k#abc\n", 3, "hash"),
            (
                "/a\nprotocol: limine\npath: boot():/k\nfrobnicate: 1\n",
                4,
                "unknown option",
            ),
            ("# nothing\n", 0, "no `/Entry`"),
            ("/\n", 1, "title is empty"),
        ];
        for (text, line, needle) in cases {
            let e = parse(text).unwrap_err();
            assert_eq!(e.line, *line, "{text:?} -> {e}");
            assert!(e.msg.contains(needle), "{text:?} -> {e}");
        }
    }

    #[test]
    fn ignores_other_limine_options() {
        let c = parse(
            "timeout: 3\nterm_palette: x\n/a\nprotocol: limine\npath: boot():/k\nkaslr: no\nmodule_path: boot():/m\n",
        )
        .unwrap();
        assert_eq!(c.entries.len(), 1);
    }

    #[test]
    fn display_names_file_and_line() {
        let e = parse("/a\nx\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "limine.conf:2: expected `key: value` or `/Entry title`"
        );
    }
}
