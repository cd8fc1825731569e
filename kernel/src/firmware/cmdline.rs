//! The kernel command line: space-separated words, `key=value` or bare `flag`.
//! Double quotes group a value that contains spaces (`key="a b"`).

/// Iterates over the words of `cmdline`, honouring double quotes.
pub fn words(cmdline: &str) -> impl Iterator<Item = &str> {
    let mut rest = cmdline;
    core::iter::from_fn(move || {
        rest = rest.trim_start_matches(' ');
        if rest.is_empty() {
            return None;
        }
        let mut quoted = false;
        let end = rest
            .char_indices()
            .find(|&(_, c)| {
                if c == '"' {
                    quoted = !quoted;
                }
                c == ' ' && !quoted
            })
            .map_or(rest.len(), |(i, _)| i);
        let (word, tail) = rest.split_at(end);
        rest = tail;
        Some(word)
    })
}

/// The value of the last `key=value` word for `key`, quotes removed.
pub fn value<'a>(cmdline: &'a str, key: &str) -> Option<&'a str> {
    words(cmdline)
        .filter_map(|w| w.split_once('='))
        .filter(|(k, _)| *k == key)
        .map(|(_, v)| v.trim_matches('"'))
        .last()
}

/// Whether the bare word `flag` is present.
pub fn has_flag(cmdline: &str, flag: &str) -> bool {
    words(cmdline).any(|w| w == flag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_words_and_keeps_quoted_spaces() {
        let w: Vec<_> = words("  a=1 b=\"x y\"  flag ").collect();
        assert_eq!(w, ["a=1", "b=\"x y\"", "flag"]);
    }

    #[test]
    fn last_value_wins_and_quotes_are_removed() {
        assert_eq!(
            value("loglevel=info loglevel=debug", "loglevel"),
            Some("debug")
        );
        assert_eq!(value("b=\"x y\"", "b"), Some("x y"));
        assert_eq!(value("memmap=4G!12G", "memmap"), Some("4G!12G"));
        assert_eq!(value("a=1", "b"), None);
    }

    #[test]
    fn flags_match_whole_words_only() {
        assert!(has_flag("quiet debug", "debug"));
        assert!(!has_flag("debugger", "debug"));
    }
}
