//! The guest console as text: ANSI escape and CR stripping, the `@@EXIT status=N` sentinel,
//! and the capture buffer a reader thread fills while tests wait on it.

use std::io::{Read, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Instant;

/// The line prefix by which the kernel reports its exit status (DESIGN.md §3).
pub const SENTINEL: &str = "@@EXIT status=";

/// The status of the last `@@EXIT status=N` line, if any. The sentinel may follow other text
/// on its line (a prompt, when the shell does not echo the newline of `exit 3`), but nothing
/// may follow the number.
pub fn parse_sentinel(text: &str) -> Option<i32> {
    text.lines().rev().find_map(|line| {
        let (_, status) = line.rsplit_once(SENTINEL)?;
        status.trim().parse().ok()
    })
}

/// Strips ANSI escapes, CR, NUL and BEL from a complete string.
pub fn strip(text: &str) -> String {
    let mut out = Vec::with_capacity(text.len());
    Cleaner::default().feed(text.as_bytes(), &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// A streaming stripper: an escape sequence split across two reads is still removed.
#[derive(Debug, Default)]
pub struct Cleaner {
    state: State,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    #[default]
    Text,
    /// After ESC.
    Escape,
    /// Inside `ESC [ ...` until a final byte in 0x40..=0x7e.
    Csi,
    /// Inside `ESC ] ...` until BEL or `ESC \`.
    Osc,
    OscEscape,
    /// After `ESC (` and friends: one more byte names the charset.
    Charset,
}

impl Cleaner {
    /// Appends the printable part of `input` to `out`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        for &b in input {
            self.state = match (self.state, b) {
                (State::Text, 0x1b) => State::Escape,
                (State::Text, b'\r' | 0 | 0x07) => State::Text,
                (State::Text, _) => {
                    out.push(b);
                    State::Text
                }
                (State::Escape, b'[') => State::Csi,
                (State::Escape, b']') => State::Osc,
                (State::Escape, b'(' | b')' | b'*' | b'+') => State::Charset,
                (State::Escape | State::Charset, _) => State::Text,
                (State::Csi, 0x40..=0x7e) => State::Text,
                (State::Csi, _) => State::Csi,
                (State::Osc | State::OscEscape, 0x07) => State::Text,
                (State::Osc | State::OscEscape, 0x1b) => State::OscEscape,
                (State::OscEscape, b'\\') => State::Text,
                (State::Osc | State::OscEscape, _) => State::Osc,
            };
        }
    }
}

/// Text captured from one QEMU output pipe, shared with the thread that reads it.
#[derive(Debug, Default)]
pub(crate) struct Capture {
    data: Mutex<Captured>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct Captured {
    bytes: Vec<u8>,
    /// The pipe reached end of file (QEMU exited or closed it).
    closed: bool,
}

/// What [`Capture::wait_for`] saw.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Wait {
    /// The pattern ends at this byte offset.
    Found(usize),
    Closed,
    TimedOut,
}

impl Capture {
    /// Starts a thread that cleans everything read from `pipe` into a new capture; with
    /// `echo`, the cleaned text is also copied to our stderr as it arrives.
    pub(crate) fn spawn(
        pipe: impl Read + Send + 'static,
        echo: bool,
    ) -> (Arc<Capture>, JoinHandle<()>) {
        let capture = Arc::new(Capture::default());
        let shared = Arc::clone(&capture);
        let reader = thread::spawn(move || shared.read_all(pipe, echo));
        (capture, reader)
    }

    fn read_all(&self, mut pipe: impl Read, echo: bool) {
        let mut cleaner = Cleaner::default();
        let mut chunk = [0u8; 4096];
        let mut clean = Vec::new();
        while let Ok(n @ 1..) = pipe.read(&mut chunk) {
            clean.clear();
            cleaner.feed(&chunk[..n], &mut clean);
            if echo {
                let _ = std::io::stderr().write_all(&clean);
            }
            self.lock().bytes.extend_from_slice(&clean);
            self.changed.notify_all();
        }
        self.lock().closed = true;
        self.changed.notify_all();
    }

    /// Waits until `pattern` occurs at or after byte `from`, the pipe closes, or `deadline`.
    pub(crate) fn wait_for(&self, from: usize, pattern: &str, deadline: Instant) -> Wait {
        let mut data = self.lock();
        loop {
            let tail = data.bytes.get(from..).unwrap_or_default();
            if let Some(at) = find(tail, pattern.as_bytes()) {
                return Wait::Found(from + at + pattern.len());
            }
            if data.closed {
                return Wait::Closed;
            }
            let now = Instant::now();
            if now >= deadline {
                return Wait::TimedOut;
            }
            data = match self.changed.wait_timeout(data, deadline - now) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    /// The captured text between two byte offsets (clamped), lossily decoded.
    pub(crate) fn slice(&self, from: usize, to: usize) -> String {
        let data = self.lock();
        let to = to.min(data.bytes.len());
        let from = from.min(to);
        String::from_utf8_lossy(&data.bytes[from..to]).into_owned()
    }

    /// Everything captured so far.
    pub(crate) fn text(&self) -> String {
        self.slice(0, usize::MAX)
    }

    fn lock(&self) -> MutexGuard<'_, Captured> {
        self.data.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn strips_colours_cursor_moves_titles_and_cr() {
        let raw = "\x1b[1;32mboot: ready\x1b[0m\r\n\x1b]0;title\x07\x1b(Bhotmem> \x1b[2K\x1b[?25h";
        assert_eq!(strip(raw), "boot: ready\nhotmem> ");
        assert_eq!(strip("a\x1b]2;t\x1b\\b\x07c\0"), "abc");
    }

    #[test]
    fn strips_escapes_split_across_reads() {
        let mut cleaner = Cleaner::default();
        let mut out = Vec::new();
        for part in ["mem\x1b", "[3", "1mre", "d\x1b[0", "m\r", "\n"] {
            cleaner.feed(part.as_bytes(), &mut out);
        }
        assert_eq!(out, b"memred\n");
    }

    #[test]
    fn sentinel_is_the_last_well_formed_exit_line() {
        assert_eq!(parse_sentinel("boot\n@@EXIT status=0\n"), Some(0));
        assert_eq!(parse_sentinel("@@EXIT status=3"), Some(3));
        assert_eq!(parse_sentinel("panic: x\n@@EXIT status=1\r\n"), Some(1));
        assert_eq!(
            parse_sentinel("@@EXIT status=2\n@@EXIT status=5\n"),
            Some(5)
        );
        assert_eq!(parse_sentinel("  @@EXIT status=-1  \n"), Some(-1));
        assert_eq!(parse_sentinel("echo @@EXIT status=0 in a sentence\n"), None);
        assert_eq!(parse_sentinel("@@EXIT status=ok\n"), None);
        assert_eq!(parse_sentinel("hotmem> @@EXIT status=3\n"), Some(3));
        assert_eq!(parse_sentinel("boot: ready\nhotmem> "), None);
    }

    #[test]
    fn capture_waits_for_patterns_and_sees_eof() {
        let (capture, reader) = Capture::spawn(&b"boot: ready\r\nhotmem> "[..], false);
        let soon = Instant::now() + Duration::from_secs(5);
        assert_eq!(capture.wait_for(0, "hotmem> ", soon), Wait::Found(20));
        assert_eq!(capture.slice(0, 11), "boot: ready");
        reader.join().unwrap();
        assert_eq!(capture.wait_for(20, "hotmem> ", soon), Wait::Closed);
        assert_eq!(capture.text(), "boot: ready\nhotmem> ");
    }

    #[test]
    fn capture_times_out_on_a_silent_pipe() {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        let (capture, _reader) = Capture::spawn(theirs, false);
        let soon = Instant::now() + Duration::from_millis(50);
        assert_eq!(capture.wait_for(0, "never", soon), Wait::TimedOut);
        drop(ours);
    }
}
