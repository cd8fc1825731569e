//! `memmap=` on the kernel command line: Linux's legacy persistent-memory syntax.
//!
//! `memmap=SIZE!START` marks `[START, START + SIZE)` of RAM as persistent memory before
//! the allocator sees it (x86 `parse_memmap_one`, E820_TYPE_PRAM). Numbers are decimal or
//! `0x` hex with an optional `K`/`M`/`G`/`T`/`P`/`E` suffix (either case), as Linux's
//! `memparse`. Several `memmap=` words may appear, and one word may hold a comma-separated
//! list (`memmap=512M!1G,256M!2G`); each item stands alone, as in Linux.
//!
//! Linux's other forms (`@` add RAM, `#` ACPI data, `$` reserve, `%` type conversion, a
//! bare size as a limit, `exactmap`) are recognised and reported as unsupported. One
//! deliberate difference: Linux reads a number with a leading zero as octal; that is
//! refused here rather than silently placing a region elsewhere than the user meant.
//!
//! Only the syntax is checked here; alignment, overlap and "inside RAM" are the region
//! set's rules (`crate::region`).

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use super::cmdline;

/// One requested pmem range, with the item text it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PmemRequest {
    /// First byte.
    pub start: u64,
    /// Size in bytes (may be zero; the region set refuses it).
    pub size: u64,
    /// The item as written, e.g. `512M!1G`.
    pub text: String,
}

impl PmemRequest {
    /// One past the last byte (`start + size` never wraps: the parser refuses that).
    pub const fn end(&self) -> u64 {
        self.start + self.size
    }
}

/// A Linux `memmap=` form other than `SIZE!START`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// `SIZE@START`: add usable RAM.
    Ram,
    /// `SIZE#START`: mark as ACPI data.
    Acpi,
    /// `SIZE$START`: mark as reserved.
    Reserve,
    /// `SIZE%OFFSET-OLD+NEW`: convert between E820 types.
    Convert,
    /// `SIZE` alone: limit usable memory (like `mem=`).
    Limit,
    /// `exactmap`: start a user-defined map.
    ExactMap,
}

impl Form {
    /// Stable short name used in records.
    pub const fn name(self) -> &'static str {
        match self {
            Form::Ram => "@",
            Form::Acpi => "#",
            Form::Reserve => "$",
            Form::Convert => "%",
            Form::Limit => "limit",
            Form::ExactMap => "exactmap",
        }
    }

    const fn describe(self) -> &'static str {
        match self {
            Form::Ram => "SIZE@START (add RAM)",
            Form::Acpi => "SIZE#START (ACPI data)",
            Form::Reserve => "SIZE$START (reserve)",
            Form::Convert => "SIZE%OFFSET-OLD+NEW (type conversion)",
            Form::Limit => "SIZE alone (memory limit)",
            Form::ExactMap => "exactmap",
        }
    }
}

/// What is wrong with one item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// Nothing between commas, or `memmap=` with no value.
    Empty,
    /// A number was expected here.
    NotANumber {
        /// `size` or `start`.
        what: &'static str,
    },
    /// A decimal number with a leading zero (Linux would read it as octal).
    LeadingZero {
        /// `size` or `start`.
        what: &'static str,
    },
    /// The number (with its suffix) does not fit in 64 bits.
    Overflow {
        /// `size` or `start`.
        what: &'static str,
    },
    /// Text left over after `START`.
    Trailing(String),
    /// `START + SIZE` passes the top of the 64-bit address space.
    Wraps,
    /// A recognised form this kernel does not implement.
    Unsupported(Form),
}

impl Problem {
    /// Stable short code used in records.
    pub const fn code(&self) -> &'static str {
        match self {
            Problem::Empty => "empty",
            Problem::NotANumber { .. } => "not-a-number",
            Problem::LeadingZero { .. } => "leading-zero",
            Problem::Overflow { .. } => "overflow",
            Problem::Trailing(_) => "trailing-text",
            Problem::Wraps => "wraps",
            Problem::Unsupported(_) => "unsupported",
        }
    }
}

/// One refused `memmap=` item: its text and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemmapError {
    /// The item as written.
    pub text: String,
    /// The reason.
    pub problem: Problem,
}

impl fmt::Display for MemmapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "memmap={}: ", self.text)?;
        match &self.problem {
            Problem::Empty => write!(f, "empty item"),
            Problem::NotANumber { what } => write!(f, "{what} is not a number"),
            Problem::LeadingZero { what } => write!(
                f,
                "{what} has a leading zero (Linux reads it as octal); write decimal or 0x hex"
            ),
            Problem::Overflow { what } => write!(f, "{what} does not fit in 64 bits"),
            Problem::Trailing(rest) => write!(f, "unexpected text {rest:?} after the start"),
            Problem::Wraps => write!(f, "start + size passes the end of the address space"),
            Problem::Unsupported(form) => write!(
                f,
                "unsupported form {} (only SIZE!START, legacy pmem, is supported)",
                form.describe()
            ),
        }
    }
}

impl MemmapError {
    /// The console record: `region: ignore source=memmap text=.. reason=.. [form=..]`.
    pub fn record(&self) -> impl fmt::Display + '_ {
        Record(self)
    }
}

struct Record<'a>(&'a MemmapError);

impl fmt::Display for Record<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.0;
        write!(
            f,
            "region: ignore source=memmap text={} reason={}",
            e.text,
            e.problem.code()
        )?;
        if let Problem::Unsupported(form) = e.problem {
            write!(f, " form={}", form.name())?;
        }
        Ok(())
    }
}

/// Everything the `memmap=` words asked for: accepted ranges and refused items, each in
/// command-line order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemmapParams {
    /// Well-formed `SIZE!START` items.
    pub ranges: Vec<PmemRequest>,
    /// Malformed or unsupported items.
    pub errors: Vec<MemmapError>,
}

/// Parses every `memmap=` word of a kernel command line.
pub fn parse_cmdline(cmdline: &str) -> MemmapParams {
    let mut params = MemmapParams::default();
    for item in items(cmdline) {
        match item {
            Ok(range) => params.ranges.push(range),
            Err(error) => params.errors.push(error),
        }
    }
    params
}

/// Every `memmap=` item of a kernel command line, parsed, in command-line order.
pub fn items(cmdline: &str) -> impl Iterator<Item = Result<PmemRequest, MemmapError>> + '_ {
    cmdline::words(cmdline)
        .filter_map(|word| word.strip_prefix("memmap="))
        .flat_map(|value| value.trim_matches('"').split(','))
        .map(parse_item)
}

/// Parses one `memmap=` value (a comma-separated list) into `out`.
pub fn parse_value(value: &str, out: &mut MemmapParams) {
    for item in value.split(',') {
        match parse_item(item) {
            Ok(range) => out.ranges.push(range),
            Err(error) => out.errors.push(error),
        }
    }
}

/// Parses one item, e.g. `512M!0x40000000`.
pub fn parse_item(item: &str) -> Result<PmemRequest, MemmapError> {
    let fail = |problem| MemmapError {
        text: item.to_string(),
        problem,
    };
    if item.is_empty() {
        return Err(fail(Problem::Empty));
    }
    if item.starts_with("exactmap") {
        return Err(fail(Problem::Unsupported(Form::ExactMap)));
    }
    let (size, rest) = parse_size(item, "size").map_err(fail)?;
    let mut chars = rest.chars();
    let form = match chars.next() {
        None => return Err(fail(Problem::Unsupported(Form::Limit))),
        Some('!') => None,
        Some('@') => Some(Form::Ram),
        Some('#') => Some(Form::Acpi),
        Some('$') => Some(Form::Reserve),
        Some('%') => Some(Form::Convert),
        Some(_) => return Err(fail(Problem::Trailing(rest.to_string()))),
    };
    if let Some(form) = form {
        return Err(fail(Problem::Unsupported(form)));
    }
    let (start, rest) = parse_size(chars.as_str(), "start").map_err(fail)?;
    if !rest.is_empty() {
        return Err(fail(Problem::Trailing(rest.to_string())));
    }
    if start.checked_add(size).is_none() {
        return Err(fail(Problem::Wraps));
    }
    Ok(PmemRequest {
        start,
        size,
        text: item.to_string(),
    })
}

/// Linux's `memparse`: a decimal or `0x` hex number with an optional binary suffix.
/// Returns the value and the unparsed rest.
pub fn parse_size<'a>(text: &'a str, what: &'static str) -> Result<(u64, &'a str), Problem> {
    let (digits, radix) = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => (hex, 16),
        None => (text, 10),
    };
    let len = digits
        .find(|c: char| !c.is_digit(radix))
        .unwrap_or(digits.len());
    if len == 0 {
        return Err(Problem::NotANumber { what });
    }
    if radix == 10 && len > 1 && digits.starts_with('0') {
        return Err(Problem::LeadingZero { what });
    }
    let value =
        u64::from_str_radix(&digits[..len], radix).map_err(|_| Problem::Overflow { what })?;
    let rest = &digits[len..];
    let shift = match rest.chars().next().map(|c| c.to_ascii_uppercase()) {
        Some('K') => 10,
        Some('M') => 20,
        Some('G') => 30,
        Some('T') => 40,
        Some('P') => 50,
        Some('E') => 60,
        _ => return Ok((value, rest)),
    };
    if value.leading_zeros() < shift {
        return Err(Problem::Overflow { what });
    }
    Ok((value << shift, &rest[1..]))
}

#[cfg(test)]
#[path = "memmap_param_tests.rs"]
mod tests;
