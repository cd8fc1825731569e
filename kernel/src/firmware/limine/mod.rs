//! What a Limine-protocol loader handed over, decided without naming an arch: where the
//! kernel command line comes from, and what to say when the loader is older than the base
//! revision the kernel asks for. `requests` (feature `limine`, which the Limine ports
//! turn on) holds the requests themselves and reads their responses.

use core::fmt;

#[cfg(all(feature = "limine", target_os = "none"))]
pub mod requests;

/// The response the command line was taken from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmdlineSource {
    /// The Executable Command Line response (Limine 9.0 and later; our loader).
    ExecutableCmdline,
    /// The `cmdline` of the Executable File response: Limine before 9.0 has no Executable
    /// Command Line response and hands the command line over only there.
    ExecutableFile,
    /// Neither response: the kernel runs with an empty command line.
    Absent,
}

impl CmdlineSource {
    /// The stable name used in the `limine: cmdline source=..` record.
    pub const fn name(self) -> &'static str {
        match self {
            CmdlineSource::ExecutableCmdline => "executable-cmdline",
            CmdlineSource::ExecutableFile => "executable-file",
            CmdlineSource::Absent => "none",
        }
    }
}

/// The kernel command line and where it came from: the Executable Command Line response
/// when the loader gave one (even an empty one), else the Executable File response's
/// `cmdline`, else the empty string.
pub fn choose_cmdline<'a>(
    executable_cmdline: Option<&'a str>,
    executable_file_cmdline: Option<&'a str>,
) -> (&'a str, CmdlineSource) {
    match (executable_cmdline, executable_file_cmdline) {
        (Some(cmdline), _) => (cmdline, CmdlineSource::ExecutableCmdline),
        (None, Some(cmdline)) => (cmdline, CmdlineSource::ExecutableFile),
        (None, None) => ("", CmdlineSource::Absent),
    }
}

/// The `limine: cmdline source=.. bytes=..` record.
pub struct CmdlineRecord<'a>(pub &'a str, pub CmdlineSource);

impl fmt::Display for CmdlineRecord<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "limine: cmdline source={} bytes={}",
            self.1.name(),
            self.0.len()
        )
    }
}

/// The base-revision handshake as the kernel found it after the loader ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BaseRevision {
    /// The revision the kernel's base-revision tag asks for.
    pub requested: u64,
    /// The revision the loader says it used (`None`: it did not say; loaders older than
    /// Limine 8.3.2 do not).
    pub used: Option<u64>,
    /// Whether the loader marked the requested revision as supported.
    pub supported: bool,
}

impl BaseRevision {
    /// The `limine: base_revision requested=.. used=.. supported=0|1` record.
    pub fn record(&self) -> impl fmt::Display + '_ {
        Record(self)
    }

    /// For a loader older than the requested revision: the line saying the kernel carries
    /// on under the loader's rules (it does not stop: everything it needs is checked
    /// response by response).
    pub fn warning(&self) -> Option<impl fmt::Display + '_> {
        (!self.supported).then_some(Warning(self))
    }
}

struct Record<'a>(&'a BaseRevision);

impl fmt::Display for Record<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.0;
        write!(f, "limine: base_revision requested={} used=", r.requested)?;
        match r.used {
            Some(used) => write!(f, "{used}")?,
            None => f.write_str("unreported")?,
        }
        write!(f, " supported={}", u8::from(r.supported))?;
        if r.used.is_none() {
            f.write_str(" (loader older than Limine 8.3.2)")?;
        }
        Ok(())
    }
}

struct Warning<'a>(&'a BaseRevision);

impl fmt::Display for Warning<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "limine: warning: base revision {} not supported by the loader; carrying on with its rules",
            self.0.requested
        )
    }
}

/// An indispensable response the loader did not give: without it no memory is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Missing {
    /// No HHDM response.
    Hhdm,
    /// No memory-map response.
    Memmap,
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Missing::Hhdm => "no HHDM response, cannot reach physical memory",
            Missing::Memmap => "no memory-map response, RAM unknown",
        })
    }
}

/// A pointer a response carries as a physical address: physical under base revision 3
/// only, an HHDM address otherwise.
pub fn physical(address: u64, hhdm: u64) -> u64 {
    if address >= hhdm {
        address - hhdm
    } else {
        address
    }
}

/// The firmware-type response's value by name.
pub fn firmware_name(t: Option<u64>) -> &'static str {
    match t {
        Some(0) => "x86bios",
        Some(1) => "efi32",
        Some(2) => "efi64",
        Some(3) => "sbi",
        Some(_) => "other",
        None => "unreported",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn response_pointers_become_physical_under_every_revision() {
        let hhdm = 0xffff_8000_0000_0000;
        assert_eq!(physical(hhdm + 0x7fe_0000, hhdm), 0x7fe_0000);
        assert_eq!(
            physical(0x7fe_0000, hhdm),
            0x7fe_0000,
            "revision 3: physical"
        );
    }

    #[test]
    fn firmware_types_and_missing_responses_are_named() {
        let names: alloc::vec::Vec<&str> = [Some(0), Some(2), Some(3), Some(9), None]
            .into_iter()
            .map(firmware_name)
            .collect();
        assert_eq!(names, ["x86bios", "efi64", "sbi", "other", "unreported"]);
        assert_eq!(
            Missing::Memmap.to_string(),
            "no memory-map response, RAM unknown"
        );
    }

    #[test]
    fn the_executable_cmdline_response_wins() {
        assert_eq!(
            choose_cmdline(Some("loglevel=debug"), Some("old")),
            ("loglevel=debug", CmdlineSource::ExecutableCmdline)
        );
        // Present but empty still wins: the loader said "no command line".
        assert_eq!(
            choose_cmdline(Some(""), Some("old")),
            ("", CmdlineSource::ExecutableCmdline)
        );
    }

    #[test]
    fn limine_before_9_hands_the_cmdline_in_the_executable_file() {
        assert_eq!(
            choose_cmdline(None, Some("loglevel=debug mem=1G")),
            ("loglevel=debug mem=1G", CmdlineSource::ExecutableFile)
        );
        assert_eq!(choose_cmdline(None, None), ("", CmdlineSource::Absent));
        let (text, source) = choose_cmdline(None, Some("a=1"));
        assert_eq!(
            CmdlineRecord(text, source).to_string(),
            "limine: cmdline source=executable-file bytes=3"
        );
        assert_eq!(
            CmdlineRecord("", CmdlineSource::Absent).to_string(),
            "limine: cmdline source=none bytes=0"
        );
    }

    #[test]
    fn a_loader_that_supports_the_revision_gets_no_warning() {
        let r = BaseRevision {
            requested: 6,
            used: Some(6),
            supported: true,
        };
        assert_eq!(
            r.record().to_string(),
            "limine: base_revision requested=6 used=6 supported=1"
        );
        assert!(r.warning().is_none());
    }

    #[test]
    fn an_older_loader_is_named_and_the_kernel_carries_on() {
        // Limine 8.3.2 .. 9.x: reports the revision it used, which is lower.
        let r = BaseRevision {
            requested: 6,
            used: Some(3),
            supported: false,
        };
        assert_eq!(
            r.record().to_string(),
            "limine: base_revision requested=6 used=3 supported=0"
        );
        assert_eq!(
            r.warning().unwrap().to_string(),
            "limine: warning: base revision 6 not supported by the loader; carrying on with its rules"
        );
        // Limine 8.2.0: does not report the revision at all.
        let r = BaseRevision {
            requested: 6,
            used: None,
            supported: false,
        };
        assert_eq!(
            r.record().to_string(),
            "limine: base_revision requested=6 used=unreported supported=0 (loader older than Limine 8.3.2)"
        );
        assert!(r.warning().is_some());
    }
}
