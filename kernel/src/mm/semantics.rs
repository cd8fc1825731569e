//! Whose rules the vmemmap walker and the altmap follow: `mm.semantics=` on the command
//! line, `semantics` in the shell.
//!
//! - `hotmem` (the default): the hardened behaviour. Altmap blocks are tracked as a stack,
//!   so a free below a live block is deferred and `align` comes back with its block; an
//!   altmap leaf never describes struct pages outside the range it was taken for.
//! - `linux`: Linux v6.x exactly, hazards included. `vmem_altmap_free` only decrements
//!   `alloc` (a non-LIFO free makes the next allocation hand out pages that are still
//!   mapped) and never returns `align`; a huge leaf is taken whole from the altmap even
//!   when the range covers part of it. A checker names each hazard when it bites
//!   (`hazard: kind=...`, see [`super::altmap::Hazard`]).
//! - `rfc-2017`: `linux`, plus each arch walker as it stood in the July 2017 RFC "mm, arch:
//!   unify vmemmap_populate altmap handling" before the fold-in: where that walker took
//!   base-page leaves with Linux's `vmemmap_alloc_block` (RAM) instead of
//!   `vmemmap_alloc_block_buf(size, altmap)`, ours does too. Only walkers whose 2017 code
//!   differed change (docs/mm.md, "The 2017 s390 altmap gap, reproduced").
//!
//! What no setting changes: page tables always come from RAM, a failed add is undone
//! whole, a free validates before it changes anything, and a leaf taken from one altmap
//! is never returned to another (those protect the running kernel, not a figure).

use core::fmt;

/// The rule set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Semantics {
    /// The hardened behaviour (default).
    #[default]
    Hotmem,
    /// Linux v6.x, hazards included.
    Linux,
    /// `Linux` plus the 2017 RFC's walkers.
    Rfc2017,
}

impl Semantics {
    /// All settings, in the order `help` lists them.
    pub const ALL: [Semantics; 3] = [Semantics::Hotmem, Semantics::Linux, Semantics::Rfc2017];

    /// The name used on the command line and in records.
    pub const fn name(self) -> &'static str {
        match self {
            Semantics::Hotmem => "hotmem",
            Semantics::Linux => "linux",
            Semantics::Rfc2017 => "rfc-2017",
        }
    }

    /// Parses a name; `None` for anything else.
    pub fn parse(text: &str) -> Option<Semantics> {
        Self::ALL.into_iter().find(|s| s.name() == text)
    }

    /// Linux's altmap arithmetic and leaf choices, hazards included (`linux`, `rfc-2017`).
    pub const fn linux_rules(self) -> bool {
        !matches!(self, Semantics::Hotmem)
    }

    /// The 2017 RFC's walkers: base-page leaves from RAM where that code took them so.
    pub const fn rfc_2017(self) -> bool {
        matches!(self, Semantics::Rfc2017)
    }
}

impl fmt::Display for Semantics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
