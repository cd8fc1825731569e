//! The `--vs-linux` table: per source and size, our median QMP-return-to-online time, the
//! Linux guest's, and the ratio Linux / ours, from a benchmark document's `hotplug` and
//! `linux` objects. A source the guest has no driver for says so, with any quoted figure
//! labelled as not measured in this run. Markdown, so the README can quote it as printed.

use serde_json::Value;

use crate::bench_linux::SIZES;

/// The table, with a heading line and the measurement notes under it.
pub fn render(doc: &Value) -> String {
    let linux = &doc["linux"];
    let mut out = format!(
        "hot-add, QMP return -> online, hotmem vs Linux {} ({}, {}, QEMU {}, {}), ms: median (min-max) of {} runs each\n",
        linux["kernel"].as_str().unwrap_or("?"),
        doc["arch"].as_str().unwrap_or("?"),
        doc["accel"].as_str().unwrap_or("?"),
        doc["qemu"].as_str().unwrap_or("?"),
        doc["date"].as_str().unwrap_or("?"),
        linux["runs"].as_u64().unwrap_or(0),
    );
    if let Some(error) = linux["error"].as_str() {
        out += &format!("Linux side failed: {error}\n");
    }
    out += "| source | size | hotmem | Linux | Linux / hotmem |\n|---|---|---|---|---|\n";
    let sources = doc["hotplug"].as_object().into_iter().flatten();
    for (source, ours) in sources {
        for size in SIZES {
            let ours = cell(ours, size);
            let (theirs, ratio) = linux_cell(linux, source, size, ours.as_ref());
            out += &format!(
                "| {source} | {} | {} | {theirs} | {ratio} |\n",
                qemu::soak::size_text(size),
                ours.map_or_else(|| "-".to_string(), |s| s.text()),
            );
        }
    }
    if let Some(auto) = linux["auto_online"].as_str() {
        out += &format!(
            "Linux guest: memory block {} MiB, auto_online_blocks={auto}.\n",
            linux["block_size"].as_u64().unwrap_or(0) >> 20
        );
    }
    out
}

/// One side's figure for a size.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Stat {
    median: f64,
    min: f64,
    max: f64,
}

impl Stat {
    fn text(&self) -> String {
        format!("{:.1} ({:.1}-{:.1})", self.median, self.min, self.max)
    }
}

/// The row of `size` in `rows` (an array of rows, or `{error, done: rows}`).
fn cell(rows: &Value, size: u64) -> Option<Stat> {
    let rows = rows.as_array().or_else(|| rows["done"].as_array())?;
    let row = rows.iter().find(|r| r["size"].as_u64() == Some(size))?;
    Some(Stat {
        median: row["median"].as_f64()?,
        min: row["min"].as_f64()?,
        max: row["max"].as_f64()?,
    })
}

/// Linux's cell and the ratio cell.
fn linux_cell(linux: &Value, source: &str, size: u64, ours: Option<&Stat>) -> (String, String) {
    let ratio = |theirs: f64| match ours {
        Some(o) if o.median > 0.0 => format!("{:.1}x", theirs / o.median),
        _ => "-".to_string(),
    };
    let rows = &linux["hotplug"][source];
    if let Some(theirs) = cell(rows, size) {
        return (theirs.text(), ratio(theirs.median));
    }
    if let Some(error) = rows["error"].as_str() {
        return (format!("failed: {error}"), "-".to_string());
    }
    if let Some(why) = linux["absent"][source].as_str() {
        let quote = linux["quoted"][source]
            .as_array()
            .into_iter()
            .flatten()
            .find(|q| q["size"].as_u64() == Some(size));
        return match quote {
            Some(q) => {
                let ms = q["ms"].as_f64().unwrap_or(0.0);
                (
                    format!(
                        "{why}; quoted, NOT measured in this run: {ms:.0} ms ({}, {})",
                        q["kernel"].as_str().unwrap_or("?"),
                        q["date"].as_str().unwrap_or("?")
                    ),
                    format!("{} against the quoted figure", ratio(ms)),
                )
            }
            None => (why.to_string(), "-".to_string()),
        };
    }
    ("not measured".to_string(), "-".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(size: u64, median: f64) -> Value {
        json!({"size": size, "median": median, "min": median - 1.0, "max": median + 1.0})
    }

    #[test]
    fn rows_carry_both_sides_and_the_ratio() {
        let doc = json!({
            "arch": "x86_64", "accel": "tcg", "qemu": "10.0.2", "date": "2026-12-04",
            "hotplug": {"pc-dimm": [row(128 << 20, 5.0), row(1 << 30, 20.0)],
                        "virtio-mem": [row(128 << 20, 4.0), row(1 << 30, 10.0)]},
            "linux": {"kernel": "6.12.95", "runs": 5, "block_size": 134217728u64, "auto_online": "online",
                      "hotplug": {"pc-dimm": [row(128 << 20, 50.0), row(1 << 30, 200.0)],
                                  "virtio-mem": {"error": "vm0 still plugged", "done": [row(128 << 20, 12.0)]}}}
        });
        let text = render(&doc);
        assert!(
            text.contains("| pc-dimm | 1G | 20.0 (19.0-21.0) | 200.0 (199.0-201.0) | 10.0x |"),
            "{text}"
        );
        assert!(
            text.contains("| pc-dimm | 128M | 5.0 (4.0-6.0) | 50.0 (49.0-51.0) | 10.0x |"),
            "{text}"
        );
        assert!(
            text.contains("| virtio-mem | 128M | 4.0 (3.0-5.0) | 12.0 (11.0-13.0) | 3.0x |"),
            "{text}"
        );
        assert!(
            text.contains("| virtio-mem | 1G | 10.0 (9.0-11.0) | failed: vm0 still plugged | - |"),
            "{text}"
        );
        assert!(text.contains("of 5 runs each") && text.contains("auto_online_blocks=online"));
    }

    #[test]
    fn an_absent_driver_says_so_and_a_quote_is_labelled() {
        let doc = json!({
            "arch": "s390x", "hotplug": {"virtio-mem": [row(128 << 20, 2.0), row(1 << 30, 9.39)]},
            "linux": {"kernel": "6.12.95", "runs": 5, "hotplug": {},
                      "absent": {"virtio-mem": "no virtio-mem driver: CONFIG_VIRTIO_MEM is not set"},
                      "quoted": {"virtio-mem": [{"size": 1u64 << 30, "ms": 939.0, "kernel": "Linux 7.2", "date": "2026-11-25"}]}}
        });
        let text = render(&doc);
        assert!(text.contains("| virtio-mem | 128M | 2.0 (1.0-3.0) | no virtio-mem driver: CONFIG_VIRTIO_MEM is not set | - |"), "{text}");
        assert!(text.contains("NOT measured in this run: 939 ms (Linux 7.2, 2026-11-25) | 100.0x against the quoted figure |"), "{text}");
    }
}
