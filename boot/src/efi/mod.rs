//! The loader's flow under UEFI: config, kernel, requests, responses, memory map, page
//! tables, then the jump. Every failure before `ExitBootServices` is reported on the
//! serial console and returns to the firmware.
//!
//! Each arch room (`x86_64/`, `aarch64/`) holds its own `run` — the flow step by step,
//! with its CPU's checks, tables and entry — over the steps they share ([`steps`]).

#[cfg(target_arch = "aarch64")]
mod aarch64;
mod arena;
mod load;
mod responses;
mod steps;
#[cfg(target_arch = "x86_64")]
mod x86_64;

#[cfg(target_arch = "aarch64")]
use aarch64 as arch;
#[cfg(target_arch = "x86_64")]
use x86_64 as arch;

use alloc::format;
use alloc::string::String;
use core::fmt;

use uefi::{Status, entry};

/// Prints a line on the loader console (serial), before and after ExitBootServices.
macro_rules! say {
    ($($arg:tt)*) => {{
        let _ = core::fmt::Write::write_fmt(&mut $crate::efi::Console, format_args!("{}\n", format_args!($($arg)*)));
    }};
}
pub(crate) use say;

/// The loader console: the arch's serial port, each `\n` sent as CR LF.
pub(crate) struct Console;

impl fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                arch::Serial::byte(b'\r');
            }
            arch::Serial::byte(b);
        }
        Ok(())
    }
}

#[entry]
fn main() -> Status {
    arch::Serial::init();
    say!(
        "{} {}: Limine protocol, base revisions {}-{}",
        boot::LOADER_NAME,
        boot::LOADER_VERSION,
        boot::revision::MIN,
        boot::revision::MAX
    );
    match arch::run() {
        Ok(never) => match never {},
        Err(e) => {
            say!("hotmem-boot: error: {e}");
            say!("@@EXIT status=1");
            arch::fail_exit();
            Status::LOAD_ERROR
        }
    }
}

/// After ExitBootServices there is no way back: report and stop the machine.
pub(crate) fn fatal(msg: &str) -> ! {
    say!("hotmem-boot: fatal: {msg}");
    say!("@@EXIT status=1");
    arch::fail_exit();
    arch::halt()
}

/// Formats an error for `run`.
pub(crate) fn err(what: &str, e: impl core::fmt::Debug) -> String {
    format!("{what}: {e:?}")
}
