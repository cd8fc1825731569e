//! The kernel console: the arch's byte sink behind `core::fmt`, the `kprint!` macros,
//! and the exit protocol (`@@EXIT status=N` as the last line, then the arch stop).
//!
//! The arch hooks are installed once, as the very first thing [`crate::main`] does, so
//! the panic handler and the logger can reach the console without knowing the arch.

use core::fmt;

use core::sync::atomic::{AtomicBool, Ordering};

use spin::Once;

use crate::Arch;

/// The arch functions the arch-neutral console needs, captured as plain fn pointers.
struct Hooks {
    write: fn(&[u8]),
    exit: fn(u32) -> !,
    now_ns: fn() -> u64,
}

static HOOKS: Once<Hooks> = Once::new();

/// Whether the last byte written was a newline (so records start on a line of their own).
static AT_LINE_START: AtomicBool = AtomicBool::new(true);

/// Routes the console, exit and clock through `A`. Later calls are ignored.
pub fn install<A: Arch>() {
    HOOKS.call_once(|| Hooks {
        write: A::console_write,
        exit: A::exit,
        now_ns: A::timestamp_ns,
    });
}

/// Nanoseconds from the arch clock, or 0 before [`install`].
pub fn now_ns() -> u64 {
    HOOKS.get().map_or(0, |h| (h.now_ns)())
}

/// Ends the current line first if something (a prompt, typed input) is pending on it.
pub fn start_line() {
    if !AT_LINE_START.load(Ordering::Relaxed) {
        write_raw(b"\r\n");
    }
}

fn note_written(bytes: &[u8]) {
    if let Some(&last) = bytes.last() {
        AT_LINE_START.store(last == b'\n', Ordering::Relaxed);
    }
}

/// A `fmt::Write` sink on the console that turns `\n` into `\r\n`.
pub struct Console;

impl fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let Some(hooks) = HOOKS.get() else {
            return Ok(());
        };
        note_written(s.as_bytes());
        let mut rest = s.as_bytes();
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            (hooks.write)(&rest[..nl]);
            (hooks.write)(b"\r\n");
            rest = &rest[nl + 1..];
        }
        if !rest.is_empty() {
            (hooks.write)(rest);
        }
        Ok(())
    }
}

/// Writes raw bytes (no newline translation), e.g. for echo and line editing.
pub fn write_raw(bytes: &[u8]) {
    if let Some(hooks) = HOOKS.get() {
        (hooks.write)(bytes);
        note_written(bytes);
    }
}

/// Formats to the console. Errors cannot happen on this sink and are ignored.
pub fn print_fmt(args: fmt::Arguments<'_>) {
    let _ = fmt::Write::write_fmt(&mut Console, args);
}

/// Prints to the kernel console.
#[macro_export]
macro_rules! kprint {
    ($($arg:tt)*) => { $crate::console::print_fmt(format_args!($($arg)*)) };
}

/// Prints a line to the kernel console.
#[macro_export]
macro_rules! kprintln {
    () => { $crate::console::print_fmt(format_args!("\n")) };
    ($($arg:tt)*) => {{
        $crate::console::print_fmt(format_args!($($arg)*));
        $crate::console::print_fmt(format_args!("\n"));
    }};
}

/// Prints the exit sentinel and stops the machine: the end of every run.
pub fn exit(status: u32) -> ! {
    print_fmt(format_args!("@@EXIT status={status}\n"));
    match HOOKS.get() {
        Some(hooks) => (hooks.exit)(status),
        None => loop {
            core::hint::spin_loop();
        },
    }
}
