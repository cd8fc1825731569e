//! The serial console shell: read a line, run one inspection command, repeat.
//!
//! Every command prints stable `key=value` records (see the README) so tests and users
//! read the same text. A bad command or argument prints exactly one `error:` line and
//! the shell goes on.

mod commands;
pub mod inject;
mod inspect;
pub mod line;
mod memory;
mod protect;
mod regions;
pub mod switches;

use crate::console;
use crate::{Arch, Kernel, kprint, kprintln};

use line::{Event, LineEditor};

/// The prompt printed before each command (no newline after it).
pub const PROMPT: &str = "hotmem> ";

/// Runs the shell forever (commands such as `poweroff` end the machine).
pub fn run<A: Arch>(kernel: &mut Kernel<A>) -> ! {
    let mut editor = LineEditor::new();
    kprint!("{PROMPT}");
    // Records were printed since the prompt: it is printed again once the events and the
    // verifications after them are all done (one prompt after a hot-add's records).
    let mut records_since_prompt = false;
    loop {
        let Some(byte) = A::console_read() else {
            if crate::hotplug::dispatch::poll(kernel) > 0 {
                records_since_prompt = true;
            } else if core::mem::take(&mut records_since_prompt) {
                kprint!("{PROMPT}{}", editor.pending());
            } else {
                A::relax();
            }
            continue;
        };
        let mut echo = |bytes: &[u8]| console::write_raw(bytes);
        match editor.feed(byte, &mut echo) {
            None => continue,
            Some(Event::Submit(line)) => {
                // A command sees every range added so far verified.
                crate::hotplug::dispatch::verify_added(kernel);
                if let Some(mm) = kernel.mm.as_mut() {
                    mm.tend_heap();
                }
                commands::execute::<A>(kernel, line);
            }
            Some(Event::Interrupt) => {}
            Some(Event::Overflow) => {
                kprintln!(
                    "error: line too long (max {} bytes), ignored",
                    line::MAX_LINE
                );
            }
        }
        kprint!("{PROMPT}");
        records_since_prompt = false;
    }
}
