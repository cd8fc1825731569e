//! Reading `vmemmap trace` (issue 14): the trace lines a boot-time region's populate
//! printed, and the check that an NVDIMM region's trace lists its huge leaves from the
//! altmap and its new tables from RAM.

use std::collections::HashMap;

use anyhow::{Context, Result, ensure};
use qemu::Machine;

use crate::{fields, line, number};

/// The trace of one region's populate, split by kind.
#[derive(Debug, Default)]
pub struct RegionTrace<'a> {
    /// `what=table` lines.
    pub tables: Vec<HashMap<&'a str, &'a str>>,
    /// `what=leaf` lines.
    pub leaves: Vec<HashMap<&'a str, &'a str>>,
    /// `vmemmap.trace.summary` lines, one per populate call (one per section).
    pub summaries: Vec<HashMap<&'a str, &'a str>>,
}

/// The trace lines printed right before `region: populate id=<id>`: the populate calls
/// of that region (the boot-time regions are populated one after the other).
pub fn region_populate_trace<'a>(console: &'a str, id: &str) -> Result<RegionTrace<'a>> {
    let lines: Vec<&str> = console.lines().collect();
    let record = format!("region: populate id={id} ");
    let end = lines
        .iter()
        .position(|l| l.starts_with(&record))
        .with_context(|| format!("no '{record}' record:\n{console}"))?;
    let start = lines[..end]
        .iter()
        .rposition(|l| !l.starts_with("vmemmap.trace"))
        .map_or(0, |i| i + 1);
    let mut trace = RegionTrace::default();
    for &text in &lines[start..end] {
        let f = fields(text);
        if text.starts_with("vmemmap.trace.summary ") {
            trace.summaries.push(f);
        } else if f.get("what") == Some(&"table") {
            trace.tables.push(f);
        } else if f.get("what") == Some(&"leaf") {
            trace.leaves.push(f);
        }
    }
    ensure!(
        !trace.summaries.is_empty(),
        "no trace before '{record}':\n{console}"
    );
    Ok(trace)
}

/// Boot-time NVDIMM region `id` populated with `vmemmap.trace=on`: one leaf of
/// `leaf_bytes` per section, at `leaf_level`, each from the altmap with the altmap's
/// `alloc` growing by the leaf's pages; every new table from RAM, as many as the region
/// record's `tables.new`, and at least one; one summary per section saying the same.
pub fn check_nvdimm_trace(
    m: &mut Machine,
    id: &str,
    leaf_level: u64,
    leaf_bytes: u64,
) -> Result<()> {
    let console = m.console();
    let populate = fields(line(&console, &format!("region: populate id={id} "))?);
    let sections = number(&populate, "sections")?;
    let trace = region_populate_trace(&console, id)?;
    let leaves_per_section = number(&populate, "leaves")? / sections;
    ensure!(
        trace.leaves.len() as u64 == sections * leaves_per_section,
        "{} leaf lines for {sections} sections:\n{console}",
        trace.leaves.len()
    );
    let mut alloc = 0;
    for leaf in &trace.leaves {
        ensure!(leaf.get("source") == Some(&"altmap"), "{leaf:?}");
        ensure!(number(leaf, "level")? == leaf_level, "{leaf:?}");
        ensure!(number(leaf, "bytes")? == leaf_bytes, "{leaf:?}");
        alloc += leaf_bytes / 4096;
        ensure!(
            number(leaf, "altmap.alloc")? == alloc,
            "alloc after each leaf: {leaf:?}"
        );
    }
    ensure!(alloc == number(&populate, "altmap.alloc")?, "{console}");
    let new_tables = number(&populate, "tables.new")?;
    ensure!(
        trace.tables.len() as u64 == new_tables && new_tables > 0,
        "{} table lines, tables.new={new_tables}:\n{console}",
        trace.tables.len()
    );
    for table in &trace.tables {
        ensure!(table.get("source") == Some(&"ram"), "{table:?}");
    }
    ensure!(trace.summaries.len() as u64 == sections, "{console}");
    for summary in &trace.summaries {
        ensure!(summary.get("result") == Some(&"ok"), "{summary:?}");
        ensure!(number(summary, "leaves.ram")? == 0, "{summary:?}");
        ensure!(
            number(summary, "leaves.altmap")? == leaves_per_section,
            "{summary:?}"
        );
    }
    Ok(())
}
