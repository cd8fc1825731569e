//! Adding Debian's bookworm-backports suite without naming any mirror: the URIs are copied
//! from the machine's own `bookworm` entry, in deb822 (`*.sources`) or one-line
//! (`sources.list`) form. Pure functions over file contents, so they are unit-tested.

/// Where the new suite is written.
pub const BACKPORTS_FILE: &str = "/etc/apt/sources.list.d/bookworm-backports.sources";

/// The release whose backports we add, and the backports suite name.
const RELEASE: &str = "bookworm";
const BACKPORTS: &str = "bookworm-backports";

/// The apt sources of a machine: (file name, contents) pairs.
#[derive(Debug, Default)]
pub struct Sources {
    pub deb822: Vec<(String, String)>,
    pub one_line: Vec<(String, String)>,
}

/// A binary-package source entry, whichever format it came from.
#[derive(Debug, PartialEq, Eq)]
struct Entry {
    uris: Vec<String>,
    suites: Vec<String>,
    signed_by: Option<String>,
}

impl Sources {
    /// Whether some enabled entry already carries bookworm-backports.
    pub fn has_backports(&self) -> bool {
        self.entries()
            .iter()
            .any(|e| e.suites.iter().any(|s| s == BACKPORTS))
    }

    /// The deb822 text for [`BACKPORTS_FILE`], derived from the first entry whose suites
    /// include `bookworm` itself; `None` when there is no such entry.
    pub fn backports_file(&self) -> Option<String> {
        let entries = self.entries();
        let base = entries
            .iter()
            .find(|e| e.suites.iter().any(|s| s == RELEASE))?;
        let mut text = format!(
            "# Added by `cargo xtask` for QEMU >= 10 (URIs copied from the {RELEASE} entry).\n\
             Types: deb\nURIs: {}\nSuites: {BACKPORTS}\nComponents: main\n",
            base.uris.join(" ")
        );
        if let Some(key) = &base.signed_by {
            text += &format!("Signed-By: {key}\n");
        }
        Some(text)
    }

    /// A deb822 stanza for `suites` of the release, for private apt lists (`cargo xtask
    /// linux`): URIs and Signed-By copied from the first entry carrying `bookworm`.
    pub fn release_file(&self, suites: &[&str]) -> Option<String> {
        let entries = self.entries();
        let base = entries
            .iter()
            .find(|e| e.suites.iter().any(|s| s == RELEASE))?;
        let mut text = format!(
            "Types: deb\nURIs: {}\nSuites: {}\nComponents: main\n",
            base.uris.join(" "),
            suites.join(" ")
        );
        if let Some(key) = &base.signed_by {
            text += &format!("Signed-By: {key}\n");
        }
        Some(text)
    }

    fn entries(&self) -> Vec<Entry> {
        let deb822 = self.deb822.iter().flat_map(|(_, text)| parse_deb822(text));
        let one_line = self
            .one_line
            .iter()
            .flat_map(|(_, text)| parse_one_line(text));
        deb822.chain(one_line).collect()
    }
}

/// Parses the `Types: deb` stanzas of a `.sources` file (disabled ones skipped).
fn parse_deb822(text: &str) -> Vec<Entry> {
    let mut entries = Vec::new();
    for stanza in stanzas(text) {
        let field = |name: &str| {
            stanza
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        let words = |name: &str| -> Vec<String> {
            field(name)
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_string)
                .collect()
        };
        let is_deb = words("Types").iter().any(|t| t == "deb");
        let enabled = field("Enabled").is_none_or(|v| !v.trim().eq_ignore_ascii_case("no"));
        if !is_deb || !enabled {
            continue;
        }
        let signed_by = field("Signed-By")
            .map(str::trim)
            .filter(|v| !v.is_empty() && !v.contains('\n'))
            .map(str::to_string);
        entries.push(Entry {
            uris: words("URIs"),
            suites: words("Suites"),
            signed_by,
        });
    }
    entries
}

/// Splits deb822 text into stanzas of (field, value); comments dropped, continuation lines
/// appended to the previous value.
fn stanzas(text: &str) -> Vec<Vec<(String, String)>> {
    let mut all = vec![Vec::new()];
    for line in text.lines() {
        let current: &mut Vec<(String, String)> = all.last_mut().expect("never empty");
        if line.trim().is_empty() {
            if !current.is_empty() {
                all.push(Vec::new());
            }
        } else if line.starts_with('#') {
            continue;
        } else if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = current.last_mut() {
                value.push('\n');
                value.push_str(line.trim());
            }
        } else if let Some((key, value)) = line.split_once(':') {
            current.push((key.trim().to_string(), value.trim().to_string()));
        }
    }
    all.retain(|s| !s.is_empty());
    all
}

/// Parses `deb [opts] uri suite components...` lines.
fn parse_one_line(text: &str) -> Vec<Entry> {
    text.lines()
        .filter_map(|line| {
            let line = line.split('#').next().unwrap_or_default();
            let rest = line.trim().strip_prefix("deb ")?.trim_start();
            let (options, rest) = match rest.strip_prefix('[') {
                Some(inner) => inner.split_once(']')?,
                None => ("", rest),
            };
            let mut words = rest.split_whitespace();
            let uri = words.next()?.to_string();
            let suite = words.next()?.to_string();
            let signed_by = options
                .split_whitespace()
                .find_map(|o| o.strip_prefix("signed-by="))
                .map(str::to_string);
            Some(Entry {
                uris: vec![uri],
                suites: vec![suite],
                signed_by,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Placeholder mirrors (the `.invalid` TLD never resolves).
    const DEB822: &str = "Types: deb\n\
        # a snapshot comment inside the stanza\n\
        URIs: http://mirror.invalid/debian\n\
        Suites: bookworm bookworm-updates\n\
        Components: main\n\
        Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\
        \n\
        Types: deb\n\
        URIs: http://security.invalid/debian-security\n\
        Suites: bookworm-security\n\
        Components: main\n";

    fn deb822(text: &str) -> Sources {
        Sources {
            deb822: vec![("debian.sources".into(), text.into())],
            one_line: vec![],
        }
    }

    #[test]
    fn derives_backports_from_a_deb822_bookworm_entry() {
        let sources = deb822(DEB822);
        assert!(!sources.has_backports());
        let file = sources.backports_file().unwrap();
        assert!(
            file.contains("\nURIs: http://mirror.invalid/debian\n"),
            "{file}"
        );
        assert!(file.contains("\nSuites: bookworm-backports\n"));
        assert!(file.contains("\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"));
        assert!(!file.contains("security"));
    }

    #[test]
    fn derives_backports_from_one_line_sources() {
        let list = "# deb-src http://old.invalid/debian bookworm main\n\
                    deb http://security.invalid/debian-security bookworm-security main\n\
                    deb [arch=amd64 signed-by=/k.gpg] http://mirror.invalid/debian bookworm main contrib\n";
        let sources = Sources {
            deb822: vec![],
            one_line: vec![("sources.list".into(), list.into())],
        };
        let file = sources.backports_file().unwrap();
        assert!(
            file.contains("\nURIs: http://mirror.invalid/debian\n"),
            "{file}"
        );
        assert!(file.contains("\nSigned-By: /k.gpg\n"));
    }

    #[test]
    fn existing_backports_and_disabled_entries_are_respected() {
        let with = format!(
            "{DEB822}\nTypes: deb\nURIs: http://mirror.invalid/debian\nSuites: bookworm-backports\n"
        );
        assert!(deb822(&with).has_backports());
        let disabled = "Enabled: no\nTypes: deb\nURIs: http://m.invalid/d\nSuites: bookworm bookworm-backports\n";
        assert!(!deb822(disabled).has_backports());
        assert_eq!(deb822(disabled).backports_file(), None);
    }

    #[test]
    fn private_lists_copy_the_mirror_and_key() {
        let file = deb822(DEB822)
            .release_file(&["bookworm", "bookworm-backports"])
            .unwrap();
        assert_eq!(
            file,
            "Types: deb\nURIs: http://mirror.invalid/debian\nSuites: bookworm bookworm-backports\n\
             Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
        );
        assert_eq!(Sources::default().release_file(&["bookworm"]), None);
    }

    #[test]
    fn no_bookworm_entry_means_nothing_to_derive() {
        let trixie = "Types: deb\nURIs: http://mirror.invalid/debian\nSuites: trixie\n";
        assert_eq!(deb822(trixie).backports_file(), None);
        assert_eq!(Sources::default().backports_file(), None);
    }

    #[test]
    fn multi_line_fields_continue() {
        let text = "Types: deb deb-src\nURIs: http://a.invalid/debian\n http://b.invalid/debian\n\
                    Suites: bookworm\nSigned-By:\n -----BEGIN PGP PUBLIC KEY BLOCK-----\n .\n";
        let file = deb822(text).backports_file().unwrap();
        assert!(
            file.contains("URIs: http://a.invalid/debian http://b.invalid/debian\n"),
            "{file}"
        );
        assert!(
            !file.contains("Signed-By"),
            "embedded keys are not copied: {file}"
        );
    }
}
