//! Fault injection for heap allocations (`inject heap N [once|always]`): the Nth heap
//! allocation counted from when the rule was armed fails once, or from then on. The
//! kernel heap consults it on every allocation; host unit tests get the same rule through
//! a per-thread test allocator (see [`super`]).

use crate::mm::inject::FaultMode;

/// One heap fault rule and the counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeapFaults {
    rule: Option<(u64, FaultMode)>,
    seen: u64,
    attempts: u64,
    injected: u64,
}

impl Default for HeapFaults {
    fn default() -> Self {
        Self::new()
    }
}

impl HeapFaults {
    /// No rule.
    pub const fn new() -> Self {
        HeapFaults {
            rule: None,
            seen: 0,
            attempts: 0,
            injected: 0,
        }
    }

    /// Arms a rule: the `nth` allocation from now fails (once, or from then on). Replaces
    /// an earlier rule.
    pub fn arm(&mut self, nth: u64, mode: FaultMode) {
        self.rule = Some((nth, mode));
        self.seen = 0;
    }

    /// Removes the rule (the counters stay).
    pub fn clear(&mut self) {
        self.rule = None;
    }

    /// Whether a rule is armed.
    pub fn armed(&self) -> bool {
        self.rule.is_some()
    }

    /// Called for every allocation: `true` when the rule makes this one fail.
    pub fn check(&mut self) -> bool {
        self.attempts += 1;
        let Some((nth, mode)) = self.rule else {
            return false;
        };
        self.seen += 1;
        let fire = match mode {
            FaultMode::Once => self.seen == nth,
            FaultMode::Always => self.seen >= nth,
        };
        self.injected += u64::from(fire);
        fire
    }

    /// Heap allocations seen so far.
    pub fn attempts(&self) -> u64 {
        self.attempts
    }

    /// Failures injected so far.
    pub fn injected(&self) -> u64 {
        self.injected
    }
}
