//! The kernel's counters after every cycle: the `mem.mm` record held strictly to its boot
//! figures, and the heap judged loosely by [`HeapWatch`].

use std::collections::BTreeSet;

use anyhow::{Context, Result};

use super::records::{fields, find_line, number, opt, parse_number};

/// The kernel's counters: every number of the `mem.mm` record, and the heap in use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counters {
    /// `mem.mm` fields in print order (managed, free, ..., vmemmap.tables); `free` counts
    /// the pages the heap holds from the buddy allocator too (`mem.heap buddy.pages`): the
    /// heap grows and shrinks with what the kernel keeps, not with what was hot-added.
    pub mm: Vec<(String, u64)>,
    /// `mem.heap used=`.
    pub heap_used: u64,
}

impl Counters {
    /// Parses the output of `mem`.
    pub fn parse(text: &str) -> Result<Counters> {
        let mm_line = find_line(text, "mem.mm ")?;
        let mut mm = Vec::new();
        for word in mm_line.split_whitespace().skip(1) {
            let (key, value) = word
                .split_once('=')
                .with_context(|| format!("bad word {word:?} in {mm_line:?}"))?;
            let value =
                parse_number(value).with_context(|| format!("{key}={value} in {mm_line:?}"))?;
            mm.push((key.to_string(), value));
        }
        let heap = find_line(text, "mem.heap ")?;
        let heap_used = number(&fields(heap), "used", heap)?;
        if let Ok(buddy) = number(&fields(heap), "buddy.pages", heap) {
            for (key, value) in &mut mm {
                if key == "free" {
                    *value += buddy;
                }
            }
        }
        Ok(Counters { mm, heap_used })
    }

    pub fn get(&self, key: &str) -> Option<u64> {
        self.mm.iter().find(|(k, _)| k == key).map(|&(_, v)| v)
    }

    /// Every `mem.mm` counter that differs from `start` (the heap is judged separately).
    pub fn drift_from(&self, start: &Counters) -> Vec<String> {
        let keys: BTreeSet<&str> = (start.mm.iter().chain(&self.mm))
            .map(|(k, _)| k.as_str())
            .collect();
        keys.into_iter()
            .filter_map(|k| match (start.get(k), self.get(k)) {
                (a, b) if a == b => None,
                (a, b) => Some(format!("{k}: start {} now {}", opt(a), opt(b))),
            })
            .collect()
    }

    /// `managed=.. free=.. ... heap.used=..`.
    pub fn line(&self) -> String {
        let mut words: Vec<String> = self.mm.iter().map(|(k, v)| format!("{k}={v}")).collect();
        words.push(format!("heap.used={}", self.heap_used));
        words.join(" ")
    }
}

/// The heap may end a cycle above its boot figure by at most this much.
pub const HEAP_SLACK: u64 = 32 << 10;
/// The same for a `--large` soak: vectors sized by hundreds of ranges, units and sections
/// keep their capacity (390 KB after a cycle of 170 GiB on x86_64: about 460 bytes per
/// memory block).
pub const LARGE_HEAP_SLACK: u64 = 1 << 20;

/// Judges `mem.heap used` over the cycles, loosely. It is not compared exactly: vectors
/// of the engine and the sources keep the capacity of the busiest cycle so far (most
/// ranges, most virtio-mem units), so the figure steps up whenever a cycle sets a new
/// high-water mark and stays there (4 steps in 200 x86_64 cycles, about 4.6 KiB). A leak
/// instead rises cycle after cycle: it is caught by more than [`HeapWatch::MAX_RISES`]
/// new highs in a run, [`HeapWatch::MAX_RISING`] in a row, or more than [`HEAP_SLACK`]
/// above the start.
#[derive(Clone, Debug)]
pub struct HeapWatch {
    start: u64,
    slack: u64,
    high: u64,
    /// Cycles that ended above every earlier one, and the last of them.
    rises: u32,
    last_rise: u32,
    /// Such cycles in a row, up to now.
    rising: u32,
}

impl HeapWatch {
    /// Capacity doublings of a handful of vectors; a leak passes it within a few dozen
    /// cycles of the kind that leaks.
    pub const MAX_RISES: u32 = 16;
    /// Rising this many cycles in a row is a leak, not vector growth.
    pub const MAX_RISING: u32 = 6;

    pub fn new(start: u64) -> HeapWatch {
        HeapWatch::with_slack(start, HEAP_SLACK)
    }

    /// A watch that allows `slack` bytes above `start`.
    pub fn with_slack(start: u64, slack: u64) -> HeapWatch {
        HeapWatch {
            start,
            slack,
            high: start,
            rises: 0,
            last_rise: 0,
            rising: 0,
        }
    }

    /// Takes cycle `cycle`'s figure; `Err` describes a leak.
    pub fn check(&mut self, cycle: u32, used: u64) -> Result<(), String> {
        if used > self.high {
            self.high = used;
            self.rises += 1;
            self.last_rise = cycle;
            self.rising += 1;
        } else {
            self.rising = 0;
        }
        let leak = if used > self.start + self.slack {
            format!("more than {} bytes above the start", self.slack)
        } else if self.rises > Self::MAX_RISES {
            format!("a new high in {} cycles", self.rises)
        } else if self.rising >= Self::MAX_RISING {
            format!("a new high in each of the last {} cycles", self.rising)
        } else {
            return Ok(());
        };
        Err(format!(
            "heap used {used} bytes (start {}): {leak}",
            self.start
        ))
    }

    /// `heap.used=N` with the start and the rises when it moved.
    pub fn describe(&self, now: u64) -> String {
        match now == self.start {
            true => format!("heap.used={now}"),
            false => format!(
                "heap.used={now}(start {}, {} new highs, the last in cycle {})",
                self.start, self.rises, self.last_rise
            ),
        }
    }
}
