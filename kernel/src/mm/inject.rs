//! Fault injection: "the Nth allocation of kind K fails once, or from then on".
//!
//! Every allocation of the vmemmap walker and the buddy allocator passes one choke point
//! per kind ([`FaultInjector::check`]), so one injector covers the altmap, the RAM frame
//! source and the buddy without wrapping them. With no rules it costs one branch. The
//! rules live in a fixed array, so arming one never allocates.

use super::error::{AllocKind, MmError};

/// Most rules one injector holds; arming another replaces the oldest.
pub const MAX_RULES: usize = 8;

/// When an injected failure fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultMode {
    /// Only the Nth allocation fails.
    Once,
    /// The Nth and every later allocation fail.
    Always,
}

/// One rule: the `nth` (1-based, counted from when the rule was added) allocation of
/// `kind` fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultRule {
    /// The kind of allocation.
    pub kind: AllocKind,
    /// Which one (1 = the next).
    pub nth: u64,
    /// Once or from then on.
    pub mode: FaultMode,
}

#[derive(Clone, Copy, Debug)]
struct ArmedRule {
    rule: FaultRule,
    seen: u64,
}

/// A set of fault rules plus per-kind allocation counters.
#[derive(Clone, Debug, Default)]
pub struct FaultInjector {
    rules: [Option<ArmedRule>; MAX_RULES],
    /// Rules armed so far (the next goes to slot `armed % MAX_RULES`).
    armed: usize,
    attempts: [u64; AllocKind::COUNT],
    injected: [u64; AllocKind::COUNT],
}

impl FaultInjector {
    /// No rules.
    pub const fn new() -> FaultInjector {
        FaultInjector {
            rules: [None; MAX_RULES],
            armed: 0,
            attempts: [0; AllocKind::COUNT],
            injected: [0; AllocKind::COUNT],
        }
    }

    /// Adds a rule (replacing the oldest when [`MAX_RULES`] are armed).
    pub fn add(&mut self, rule: FaultRule) {
        self.rules[self.armed % MAX_RULES] = Some(ArmedRule { rule, seen: 0 });
        self.armed += 1;
    }

    /// Shorthand: the `nth` allocation of `kind` fails once.
    pub fn fail_nth(&mut self, kind: AllocKind, nth: u64) {
        self.add(FaultRule {
            kind,
            nth,
            mode: FaultMode::Once,
        });
    }

    /// Shorthand: every allocation of `kind` from the `nth` on fails.
    pub fn fail_from(&mut self, kind: AllocKind, nth: u64) {
        self.add(FaultRule {
            kind,
            nth,
            mode: FaultMode::Always,
        });
    }

    /// Removes all rules (the counters stay).
    pub fn clear(&mut self) {
        self.rules = [None; MAX_RULES];
        self.armed = 0;
    }

    /// Allocations of `kind` attempted so far.
    pub fn attempts(&self, kind: AllocKind) -> u64 {
        self.attempts[kind.index()]
    }

    /// Failures of `kind` injected so far.
    pub fn injected(&self, kind: AllocKind) -> u64 {
        self.injected[kind.index()]
    }

    /// Called before every allocation of `kind`: `Err(NoMemory)` if a rule fires.
    pub fn check(&mut self, kind: AllocKind) -> Result<(), MmError> {
        self.attempts[kind.index()] += 1;
        let mut fire = false;
        for armed in self
            .rules
            .iter_mut()
            .flatten()
            .filter(|r| r.rule.kind == kind)
        {
            armed.seen += 1;
            fire |= match armed.rule.mode {
                FaultMode::Once => armed.seen == armed.rule.nth,
                FaultMode::Always => armed.seen >= armed.rule.nth,
            };
        }
        if fire {
            self.injected[kind.index()] += 1;
            log::debug!(
                "inject: failing {kind:?} allocation #{}",
                self.attempts(kind)
            );
            return Err(MmError::NoMemory(kind));
        }
        Ok(())
    }
}
