//! The panic handler of every kernel binary: print the message, then fail the run.
//!
//! It only needs the console hooks, which [`crate::main`] installs first; the arch
//! entry code runs no Rust that can panic before that.

use core::panic::PanicInfo;

use crate::console;

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    console::print_fmt(format_args!("\npanic: {info}\n"));
    console::exit(1)
}
