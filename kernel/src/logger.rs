//! The `log` backend: every record goes to the console with a boot-relative timestamp,
//! e.g. `[    0.012345] INFO  mm: 512 MiB usable`.

use log::{Level, LevelFilter, Log, Metadata, Record};

use crate::console;

struct ConsoleLogger;

static LOGGER: ConsoleLogger = ConsoleLogger;

/// Installs the console logger with `level` as the most verbose level shown.
pub fn init(level: LevelFilter) {
    // A second call fails harmlessly: the logger is already in place.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}

/// Parses `loglevel=` values (`off error warn info debug trace`).
pub fn parse_level(text: &str) -> Option<LevelFilter> {
    match text {
        "off" => Some(LevelFilter::Off),
        "error" => Some(LevelFilter::Error),
        "warn" => Some(LevelFilter::Warn),
        "info" => Some(LevelFilter::Info),
        "debug" => Some(LevelFilter::Debug),
        "trace" => Some(LevelFilter::Trace),
        _ => None,
    }
}

impl Log for ConsoleLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let ns = console::now_ns();
        let (secs, micros) = (ns / 1_000_000_000, (ns / 1_000) % 1_000_000);
        let level = match record.level() {
            Level::Error => "ERROR",
            Level::Warn => "WARN ",
            Level::Info => "INFO ",
            Level::Debug => "DEBUG",
            Level::Trace => "TRACE",
        };
        let target = record.target().trim_start_matches("kernel::");
        console::start_line();
        console::print_fmt(format_args!(
            "[{secs:5}.{micros:06}] {level} {target}: {}\n",
            record.args()
        ));
    }

    fn flush(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_level_and_rejects_others() {
        assert_eq!(parse_level("debug"), Some(LevelFilter::Debug));
        assert_eq!(parse_level("off"), Some(LevelFilter::Off));
        assert_eq!(parse_level("loud"), None);
    }
}
