//! Printing command lines so they can be pasted into a shell.

use std::ffi::OsStr;
use std::process::Command;

/// `program arg...` with every word quoted as a POSIX shell needs it.
pub fn render(cmd: &Command) -> String {
    let mut words = vec![quote(cmd.get_program())];
    words.extend(cmd.get_args().map(quote));
    words.join(" ")
}

/// One word, single-quoted only when it contains characters the shell would interpret.
pub fn quote(word: impl AsRef<OsStr>) -> String {
    let word = word.as_ref().to_string_lossy();
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.into_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_only_when_needed() {
        assert_eq!(quote("-m"), "-m");
        assert_eq!(quote("512M,maxmem=2G"), "512M,maxmem=2G");
        assert_eq!(
            quote("console=sclp hello=world"),
            "'console=sclp hello=world'"
        );
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
    }

    #[test]
    fn renders_program_and_args() {
        let mut cmd = Command::new("qemu-system-s390x");
        cmd.args(["-append", "a b"]);
        assert_eq!(render(&cmd), "qemu-system-s390x -append 'a b'");
    }
}
