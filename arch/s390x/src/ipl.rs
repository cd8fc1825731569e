//! What the IPL left for us: the `-append` text that QEMU copies to 0x10480 when the
//! entry point is 0x10000 (our linker script reserves 0x10480-0x11000 for it).

/// Longest command line QEMU writes there by default (0x380 bytes).
const MAX_CMDLINE: usize = 0x380;

unsafe extern "C" {
    /// Start of the parameter area, defined by the linker script at 0x10480.
    static __ipl_parm: [u8; MAX_CMDLINE];
}

/// The kernel command line, up to the first NUL; invalid UTF-8 is cut at the first bad
/// byte.
pub fn cmdline() -> &'static str {
    // SAFETY: the linker script reserves `MAX_CMDLINE` bytes at `__ipl_parm` inside the
    // loaded image; QEMU wrote the text before we started and nothing writes it later.
    let area: &'static [u8; MAX_CMDLINE] = unsafe { &__ipl_parm };
    let text = &area[..area.iter().position(|&b| b == 0).unwrap_or(MAX_CMDLINE)];
    match core::str::from_utf8(text) {
        Ok(s) => s,
        Err(e) => core::str::from_utf8(&text[..e.valid_up_to()]).unwrap_or(""),
    }
}
