//! The benchmark's plots: log-log SVGs with every measured size labelled on the x axis.
//!
//! - `<arch>.svg`: the in-kernel phases (activate, populate, init, verify, memset warm and
//!   cold) against region size.
//! - `<arch>-hotplug.svg`: hot-add latency, QMP return to the last `online` record, per
//!   source (pc-dimm, virtio-mem; median with min–max bars), against the `memset` of the
//!   same memmap bytes (64 bytes per 4 KiB page: on memory already written, and the first
//!   touch a hot-add pays). A Linux guest's rows for the same sources, in the same shape
//!   as ours under `doc["linux"]["hotplug"]`, are drawn beside them when the document
//!   has them (`cargo xtask bench --vs-linux`); nothing else needs to change.

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::prelude::*;
use qemu::bench::PHASES;
use serde_json::Value;

const MIB: f64 = 1_048_576.0;

/// One line on a plot: points as (region MiB, ms), with optional (low, high) bars.
struct Series {
    name: String,
    points: Vec<(f64, f64)>,
    bars: Vec<(f64, f64, f64)>,
    style: Style,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Style {
    /// A measured line of ours.
    Ours,
    /// A measured line of the Linux guest.
    Linux,
    /// A reference (the memset roofline).
    Roofline,
}

/// Time (ms) against region size, one line per in-kernel phase.
pub fn phases(doc: &Value, path: &Path) -> Result<()> {
    let sizes: Vec<&Value> = doc["sizes"].as_array().into_iter().flatten().collect();
    let series: Vec<Series> = PHASES
        .iter()
        .map(|&phase| Series {
            name: phase.trim_end_matches("_ns").replace('_', " "),
            points: sizes
                .iter()
                .map(|e| (mib(&e["size"]), ns_to_ms(&e[phase])))
                .collect(),
            bars: Vec::new(),
            style: if phase.starts_with("memset") || phase == "zero_ns" {
                Style::Roofline
            } else {
                Style::Ours
            },
        })
        .collect();
    let title = format!(
        "hotmem {} memmap phases ({})",
        doc["arch"].as_str().unwrap_or("?"),
        setting(doc)
    );
    draw(path, &title, "time per phase (ms)", &series)
}

/// Hot-add latency per source against the memset roofline (and Linux's rows if present).
pub fn hotplug(doc: &Value, path: &Path) -> Result<()> {
    let mut series = Vec::new();
    let sources = doc["hotplug"].as_object().into_iter().flatten();
    for (source, rows) in sources {
        series.push(latency(&format!("hotmem {source}"), rows, Style::Ours));
        if let Some(linux) = doc["linux"]["hotplug"].get(source) {
            series.push(latency(&format!("Linux {source}"), linux, Style::Linux));
        }
    }
    series.retain(|s| !s.points.is_empty());
    if series.is_empty() {
        return Err(anyhow!("no hot-add latency rows to plot"));
    }
    let sizes: Vec<&Value> = doc["sizes"].as_array().into_iter().flatten().collect();
    for (key, name) in [
        ("memset_ns", "memset of the memmap bytes"),
        ("memset_cold_ns", "memset of the memmap bytes, first touch"),
    ] {
        series.push(Series {
            name: name.to_string(),
            points: sizes
                .iter()
                .map(|e| (mib(&e["size"]), ns_to_ms(&e[key])))
                .collect(),
            bars: Vec::new(),
            style: Style::Roofline,
        });
    }
    let title = format!(
        "hot-add, QMP return to online: {} ({}; memmap = {} of memory)",
        doc["arch"].as_str().unwrap_or("?"),
        setting(doc),
        "1/64"
    );
    draw(path, &title, "milliseconds", &series)
}

/// A latency line from rows `[{size, median, min, max}]` (an `error` object: no points).
fn latency(name: &str, rows: &Value, style: Style) -> Series {
    let rows: Vec<&Value> = rows.as_array().into_iter().flatten().collect();
    let ms = |r: &Value, k: &str| r[k].as_f64().unwrap_or(0.0).max(1e-3);
    Series {
        name: name.to_string(),
        points: rows
            .iter()
            .map(|r| (mib(&r["size"]), ms(r, "median")))
            .collect(),
        bars: rows
            .iter()
            .map(|r| (mib(&r["size"]), ms(r, "min"), ms(r, "max")))
            .collect(),
        style,
    }
}

fn mib(size: &Value) -> f64 {
    size.as_u64().unwrap_or(1) as f64 / MIB
}

fn ns_to_ms(ns: &Value) -> f64 {
    ns.as_u64().unwrap_or(1).max(1) as f64 / 1e6
}

/// "tcg, QEMU 10.0.2, 2026-12-03"
fn setting(doc: &Value) -> String {
    format!(
        "{}, QEMU {}, {}",
        doc["accel"].as_str().unwrap_or("?"),
        doc["qemu"].as_str().unwrap_or("?"),
        doc["date"].as_str().unwrap_or("?")
    )
}

/// "128M", "1G", "1.5G".
fn size_label(mib: f64) -> String {
    if mib >= 1024.0 {
        let gib = mib / 1024.0;
        if gib.fract() == 0.0 {
            format!("{gib:.0}G")
        } else {
            format!("{gib:.1}G")
        }
    } else {
        format!("{mib:.0}M")
    }
}

/// One log-log chart: x = region size (every measured size a labelled tick), y = ms.
fn draw(path: &Path, title: &str, y_desc: &str, series: &[Series]) -> Result<()> {
    let err = |e: &dyn std::fmt::Debug| anyhow!("plot {}: {e:?}", path.display());
    let mut sizes: Vec<f64> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .collect();
    sizes.sort_by(f64::total_cmp);
    sizes.dedup();
    let ys = series.iter().flat_map(|s| {
        s.points
            .iter()
            .map(|p| p.1)
            .chain(s.bars.iter().flat_map(|b| [b.1, b.2]))
    });
    let (ymin, ymax) = ys.fold((f64::MAX, 0f64), |(lo, hi), y| (lo.min(y), hi.max(y)));
    let (xmin, xmax) = (sizes[0], sizes[sizes.len() - 1]);
    let root = SVGBackend::new(path, (960, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(
            (xmin * 0.8..xmax * 1.25)
                .log_scale()
                .with_key_points(sizes.clone()),
            (ymin * 0.5..ymax * 2.0).log_scale(),
        )
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("region size")
        .y_desc(y_desc)
        .x_label_formatter(&|v| size_label(*v))
        .draw()
        .map_err(|e| err(&e))?;
    for (i, s) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let width = if s.style == Style::Roofline { 1 } else { 2 };
        let style = color.stroke_width(width);
        let points = s.points.iter().copied();
        let drawn = match s.style {
            Style::Roofline => chart
                .draw_series(DashedLineSeries::new(points, 6, 4, style))
                .map_err(|e| err(&e))?,
            Style::Ours | Style::Linux => chart
                .draw_series(LineSeries::new(points, style))
                .map_err(|e| err(&e))?,
        };
        drawn
            .label(s.name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
        let marker = s.points.iter().map(|&p| -> DynElement<'_, _, _> {
            match s.style {
                Style::Linux => TriangleMarker::new(p, 4, color.filled()).into_dyn(),
                _ => Circle::new(p, 3, color.filled()).into_dyn(),
            }
        });
        chart.draw_series(marker).map_err(|e| err(&e))?;
        let bars = s
            .bars
            .iter()
            .map(|&(x, lo, hi)| PathElement::new(vec![(x, lo), (x, hi)], color.stroke_width(1)));
        chart.draw_series(bars).map_err(|e| err(&e))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc() -> Value {
        let size = |mib: u64, ns: u64| {
            json!({"size": mib << 20, "activate_ns": ns, "populate_ns": ns, "init_ns": ns,
                   "verify_ns": ns, "memset_ns": ns, "memset_cold_ns": 4 * ns, "zero_ns": ns})
        };
        let row = |mib: u64, ms: f64| json!({"size": mib << 20, "median": ms, "min": ms, "max": ms * 1.5});
        json!({"arch": "x86_64", "accel": "tcg", "qemu": "10.0.2", "date": "2026-12-03",
               "sizes": [size(128, 300_000), size(256, 600_000), size(1024, 2_400_000)],
               "hotplug": {"pc-dimm": [row(128, 6.0), row(1024, 19.0)],
                           "virtio-mem": {"error": "no device", "done": []}}})
    }

    #[test]
    fn every_size_is_a_labelled_tick_and_linux_rows_are_drawn_when_present() {
        let dir = std::env::temp_dir().join(format!("hotmem-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut doc = doc();
        phases(&doc, &dir.join("p.svg")).unwrap();
        let svg = std::fs::read_to_string(dir.join("p.svg")).unwrap();
        for label in ["128M", "256M", "1G"] {
            assert!(
                svg.lines().any(|l| l.trim() == label),
                "tick {label} missing:\n{svg}"
            );
        }
        hotplug(&doc, &dir.join("h.svg")).unwrap();
        let svg = std::fs::read_to_string(dir.join("h.svg")).unwrap();
        assert!(svg.contains("hotmem pc-dimm") && svg.contains("first touch"));
        assert!(!svg.contains("Linux"));
        doc["linux"] = json!({"hotplug": {"pc-dimm": [{"size": 1u64 << 30, "median": 190.0, "min": 180.0, "max": 220.0}]}});
        hotplug(&doc, &dir.join("h.svg")).unwrap();
        let svg = std::fs::read_to_string(dir.join("h.svg")).unwrap();
        assert!(svg.contains("Linux pc-dimm"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn sizes_read_as_memory_sizes() {
        assert_eq!(size_label(128.0), "128M");
        assert_eq!(size_label(1024.0), "1G");
        assert_eq!(size_label(1536.0), "1.5G");
        assert_eq!(size_label(16384.0), "16G");
    }
}
