//! Watching a Linux guest's console for hot-added memory coming online, line by line, as
//! the benchmark times it: a block counts as online at the first line that says so — the
//! listener's `linux: uevent action=online` (the kernel's `KOBJ_ONLINE`, whoever onlined
//! it), an `action=add` whose block already reads `state=online` (the kernel onlined it
//! before the listener's helper ran: `auto_online_blocks=online`), or /init's own
//! `linux: online ... result=ok` after it wrote `online` to the block's `state`.

use std::collections::BTreeSet;
use std::ops::Range;

use super::guest::Record;

/// Which memory blocks of `range` are online so far, from console lines fed in order.
#[derive(Clone, Debug)]
pub struct OnlineWatch {
    range: Range<u64>,
    want: u64,
    block_size: u64,
    online: BTreeSet<u64>,
    /// Guest uptime (ms) of the first `add` uevent of a block in the range.
    pub first_add_ms: Option<u64>,
    /// Guest uptime (ms) of the line that completed the range (when it carries one).
    pub done_ms: Option<u64>,
}

impl OnlineWatch {
    /// Waits for `want` bytes of memory blocks (`block_size` each) inside `range`.
    pub fn new(range: Range<u64>, want: u64, block_size: u64) -> OnlineWatch {
        OnlineWatch {
            range,
            want,
            block_size,
            online: BTreeSet::new(),
            first_add_ms: None,
            done_ms: None,
        }
    }

    /// The bytes waited for.
    pub fn want(&self) -> u64 {
        self.want
    }

    /// Bytes of the range seen online.
    pub fn online_bytes(&self) -> u64 {
        self.online.len() as u64 * self.block_size
    }

    pub fn is_done(&self) -> bool {
        self.online_bytes() >= self.want
    }

    /// Feeds one console line; returns whether the range is now online.
    pub fn feed(&mut self, line: &str) -> bool {
        let Some(record) = Record::parse(line.trim()) else {
            return self.is_done();
        };
        if record.kind != "linux" {
            return self.is_done();
        }
        let Some(start) = record
            .get("block")
            .and_then(|b| b.strip_prefix("memory"))
            .and_then(|n| n.parse::<u64>().ok())
            .map(|n| n * self.block_size)
        else {
            return self.is_done();
        };
        if !self.range.contains(&start) || start + self.block_size > self.range.end {
            return self.is_done();
        }
        let uptime = record.num("uptime_ms");
        let action = record.get("action");
        if record.get("word") == Some("uevent") && action == Some("add") {
            self.first_add_ms = self.first_add_ms.or(uptime);
        }
        let online = match record.get("word") {
            Some("uevent") => {
                action == Some("online")
                    || (action == Some("add") && record.get("state") == Some("online"))
            }
            Some("online") => record.get("result") == Some("ok"),
            _ => false,
        };
        if online && !self.is_done() && self.online.insert(start) && self.is_done() {
            self.done_ms = uptime;
        }
        self.is_done()
    }

    /// Guest uptime from the first `add` uevent to the line that completed the range
    /// (`/proc/uptime`, 10 ms steps), when both carried one.
    pub fn guest_span_ms(&self) -> Option<u64> {
        self.done_ms?.checked_sub(self.first_add_ms?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLOCK: u64 = 128 << 20;

    #[test]
    fn counts_each_block_once_by_any_online_line() {
        // 256 MiB at 8 GiB: blocks memory64 and memory65.
        let mut w = OnlineWatch::new(8 << 30..(8 << 30) + 2 * BLOCK, 2 * BLOCK, BLOCK);
        assert!(!w.feed("linux: uevent action=add block=memory64 state=offline uptime_ms=1000"));
        assert!(!w.feed("linux: online block=memory64 result=ok uptime_ms=1010"));
        // The same block again (its KOBJ_ONLINE uevent) does not count twice.
        assert!(!w.feed("linux: uevent action=online block=memory64 state=online uptime_ms=1020"));
        // A block outside the range, noise and a failed write (auto-online race) do not count.
        assert!(!w.feed("linux: uevent action=online block=memory63 state=online uptime_ms=1025"));
        assert!(!w.feed("[    1.234] ACPI: memory hotplug"));
        assert!(!w.feed("linux: online block=memory65 result=failed"));
        assert_eq!(w.online_bytes(), BLOCK);
        assert!(w.feed("linux: uevent action=add block=memory65 state=online uptime_ms=1040"));
        assert_eq!(w.guest_span_ms(), Some(40));
    }

    #[test]
    fn virtio_mem_counts_blocks_anywhere_in_its_region() {
        // A 4 GiB region at 4 GiB, 128 MiB wanted: the driver picks the block.
        let mut w = OnlineWatch::new(4 << 30..8 << 30, BLOCK, BLOCK);
        assert!(w.feed("linux: uevent action=online block=memory40 state=online uptime_ms=7"));
        assert_eq!(w.guest_span_ms(), None, "no add uevent seen");
    }

    #[test]
    fn a_block_straddling_the_range_end_is_not_counted() {
        let mut w = OnlineWatch::new(0..BLOCK + BLOCK / 2, BLOCK, BLOCK);
        assert!(!w.feed("linux: online block=memory1 result=ok"));
        assert!(w.feed("linux: online block=memory0 result=ok"));
    }
}
