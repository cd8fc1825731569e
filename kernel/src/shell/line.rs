//! The console line editor: printable ASCII accumulates, Enter (CR or LF) submits,
//! Backspace/DEL erases one character, ^U erases the line, ^C abandons it. Escape
//! sequences (arrow keys) and other control bytes are swallowed. Pure, host-tested.

/// Longest line the editor keeps; longer input is refused when submitted.
pub const MAX_LINE: usize = 256;

/// What a byte of input completed, if anything.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// Enter was pressed: the line, without the terminator.
    Submit(&'a str),
    /// ^C: the line was abandoned.
    Interrupt,
    /// Enter was pressed on a line that had exceeded [`MAX_LINE`]; it is dropped.
    Overflow,
}

/// Where an escape sequence is in its parse.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Escape {
    None,
    Start,
    Csi,
}

/// The line being typed.
pub struct LineEditor {
    buf: [u8; MAX_LINE],
    len: usize,
    overflowed: bool,
    last_was_cr: bool,
    escape: Escape,
    submitted: usize,
}

impl Default for LineEditor {
    fn default() -> Self {
        Self::new()
    }
}

impl LineEditor {
    /// An empty line.
    pub const fn new() -> Self {
        Self {
            buf: [0; MAX_LINE],
            len: 0,
            overflowed: false,
            last_was_cr: false,
            escape: Escape::None,
            submitted: 0,
        }
    }

    /// The line typed so far (not yet submitted).
    pub fn pending(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }

    /// Feeds one byte; `echo` receives what should be written back to the terminal.
    pub fn feed(&mut self, byte: u8, echo: &mut dyn FnMut(&[u8])) -> Option<Event<'_>> {
        let after_cr = core::mem::replace(&mut self.last_was_cr, byte == b'\r');
        if self.swallow_escape(byte) {
            return None;
        }
        match byte {
            b'\n' if after_cr => None,
            b'\r' | b'\n' => {
                echo(b"\r\n");
                Some(self.take_line())
            }
            0x08 | 0x7f => {
                if self.len > 0 {
                    self.len -= 1;
                    echo(b"\x08 \x08");
                }
                None
            }
            0x15 => {
                for _ in 0..self.len {
                    echo(b"\x08 \x08");
                }
                self.clear();
                None
            }
            0x03 => {
                echo(b"^C\r\n");
                self.clear();
                Some(Event::Interrupt)
            }
            0x1b => {
                self.escape = Escape::Start;
                None
            }
            0x20..=0x7e => {
                if self.len < MAX_LINE {
                    self.buf[self.len] = byte;
                    self.len += 1;
                    echo(&[byte]);
                } else {
                    self.overflowed = true;
                }
                None
            }
            _ => None,
        }
    }

    /// Consumes bytes of an escape sequence (ESC [ params final); true if swallowed.
    fn swallow_escape(&mut self, byte: u8) -> bool {
        if byte < 0x20 {
            // A control byte (Enter, ^C, ...) always ends a half-typed sequence.
            self.escape = Escape::None;
            return false;
        }
        match self.escape {
            Escape::None => false,
            Escape::Start => {
                self.escape = if byte == b'[' {
                    Escape::Csi
                } else {
                    Escape::None
                };
                true
            }
            Escape::Csi => {
                if (0x40..=0x7e).contains(&byte) {
                    self.escape = Escape::None;
                }
                true
            }
        }
    }

    fn take_line(&mut self) -> Event<'_> {
        let overflowed = self.overflowed;
        self.submitted = self.len;
        self.clear();
        if overflowed {
            return Event::Overflow;
        }
        // Only printable ASCII is ever stored, so this cannot fail.
        Event::Submit(core::str::from_utf8(&self.buf[..self.submitted]).unwrap_or(""))
    }

    fn clear(&mut self) {
        self.len = 0;
        self.overflowed = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn type_str(ed: &mut LineEditor, input: &[u8]) -> (Vec<String>, Vec<u8>) {
        let mut echoed = Vec::new();
        let mut lines = Vec::new();
        for &b in input {
            let mut sink = |bytes: &[u8]| echoed.extend_from_slice(bytes);
            match ed.feed(b, &mut sink) {
                Some(Event::Submit(l)) => lines.push(l.to_string()),
                Some(Event::Interrupt) => lines.push("<^C>".into()),
                Some(Event::Overflow) => lines.push("<overflow>".into()),
                None => {}
            }
        }
        (lines, echoed)
    }

    #[test]
    fn cr_lf_and_crlf_each_submit_once() {
        let mut ed = LineEditor::new();
        let (lines, _) = type_str(&mut ed, b"mem\r\ncpu\rhelp\n");
        assert_eq!(lines, ["mem", "cpu", "help"]);
    }

    #[test]
    fn backspace_and_del_erase_one_char() {
        let mut ed = LineEditor::new();
        let (lines, echo) = type_str(&mut ed, b"mex\x08m\x7f\x7fem\r");
        assert_eq!(lines, ["mem"]);
        assert!(echo.windows(3).any(|w| w == b"\x08 \x08"));
    }

    #[test]
    fn ctrl_u_erases_line_and_ctrl_c_abandons_it() {
        let mut ed = LineEditor::new();
        let (lines, _) = type_str(&mut ed, b"junk\x15cpu\rhalf\x03mem\r");
        assert_eq!(lines, ["cpu", "<^C>", "mem"]);
    }

    #[test]
    fn escape_sequences_are_swallowed() {
        let mut ed = LineEditor::new();
        let (lines, _) = type_str(&mut ed, b"m\x1b[Ae\x1b[1;5Dm\r");
        assert_eq!(lines, ["mem"]);
    }

    #[test]
    fn overlong_line_is_refused_and_next_line_works() {
        let mut ed = LineEditor::new();
        let mut input = vec![b'a'; MAX_LINE + 10];
        input.extend_from_slice(b"\rmem\r");
        let (lines, _) = type_str(&mut ed, &input);
        assert_eq!(lines, ["<overflow>", "mem"]);
    }

    #[test]
    fn four_kib_of_garbage_never_panics() {
        let mut ed = LineEditor::new();
        let garbage: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let _ = type_str(&mut ed, &garbage);
        let (lines, _) = type_str(&mut ed, b"\x03mem\r");
        assert_eq!(lines.last().map(String::as_str), Some("mem"));
    }
}
