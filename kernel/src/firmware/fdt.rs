//! The flattened device tree through the `fdt` crate: memory nodes, the console PL011,
//! the PCI ECAM host bridge, the GIC distributor, the PSCI conduit and `/chosen`
//! bootargs, gathered into one [`FdtInfo`] without allocating.
//!
//! Limine strips `memory@` nodes from the DTB it hands over, so the memory map stays
//! the kernel's source of RAM; the nodes are reported when present. Their `reg` is
//! decoded here against the root's cell sizes, so a bad memory node (no `reg`, a length
//! that is not whole entries, a zero size, a range that wraps) is refused with its
//! reason and the rest of the tree is still read. The blob comes from firmware: `fdt`
//! 0.1.5 checks the header but may panic on a corrupted structure block.

use core::fmt;

use fdt::Fdt;
use fdt::node::FdtNode;

use super::acpi::{List, PhysWindow};

/// Largest DTB accepted (QEMU's are 1 MiB at most).
pub const MAX_DTB: usize = 2 << 20;

const MAGIC: u32 = 0xd00d_feed;

/// The PCI ECAM host bridge.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EcamHost {
    /// ECAM base.
    pub base: u64,
    /// ECAM size.
    pub size: u64,
    /// First bus (`bus-range`).
    pub bus_start: u32,
    /// Last bus.
    pub bus_end: u32,
}

/// What the kernel learned from the device tree.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FdtInfo<'a> {
    /// `totalsize` from the header.
    pub size: usize,
    /// Root `model`.
    pub model: &'a str,
    /// `memory` nodes' `reg` ranges `(base, size)`.
    pub memory: List<(u64, u64)>,
    /// The console PL011: `/chosen` `stdout-path` when it is one, else the first PL011.
    pub pl011: Option<u64>,
    /// The generic ECAM host bridge.
    pub ecam: Option<EcamHost>,
    /// GIC distributor base.
    pub gicd: Option<u64>,
    /// `/psci` `method` (`hvc` or `smc`).
    pub psci: Option<&'a str>,
    /// `/chosen` `bootargs`.
    pub bootargs: Option<&'a str>,
    /// Memory nodes whose `reg` could not be used, with why.
    pub bad_memory: List<BadMemoryNode<'a>>,
}

/// A memory node that was refused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BadMemoryNode<'a> {
    /// The node's name, e.g. `memory@40000000`.
    pub node: &'a str,
    /// Why.
    pub problem: MemoryNodeProblem,
}

/// What is wrong with a memory node's `reg`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MemoryNodeProblem {
    /// No `reg` property.
    #[default]
    NoReg,
    /// `#address-cells` / `#size-cells` outside 1..=2.
    CellSizes {
        /// Address cells.
        address: usize,
        /// Size cells.
        size: usize,
    },
    /// The property is empty or not a whole number of entries.
    Length {
        /// Bytes in `reg`.
        len: usize,
        /// Bytes per entry.
        entry: usize,
    },
    /// An entry of size zero.
    ZeroSize {
        /// Its base.
        base: u64,
    },
    /// An entry whose end is beyond 2^64.
    Wraps {
        /// Its base.
        base: u64,
        /// Its size.
        size: u64,
    },
}

impl fmt::Display for BadMemoryNode<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "firmware.memory.refused node={} ", self.node)?;
        match self.problem {
            MemoryNodeProblem::NoReg => write!(f, "reason=no-reg"),
            MemoryNodeProblem::CellSizes { address, size } => {
                write!(f, "reason=cell-sizes address={address} size={size}")
            }
            MemoryNodeProblem::Length { len, entry } => {
                write!(f, "reason=reg-length len={len} entry={entry}")
            }
            MemoryNodeProblem::ZeroSize { base } => write!(f, "reason=zero-size base={base:#x}"),
            MemoryNodeProblem::Wraps { base, size } => {
                write!(f, "reason=wraps base={base:#x} size={size:#x}")
            }
        }
    }
}

/// Why the blob is not a usable device tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FdtError {
    /// Outside the window, bad magic or an absurd size.
    BadHeader,
    /// The `fdt` crate refused it.
    Malformed,
}

/// The DTB at physical `pa` as bytes (its header's `totalsize` long).
pub fn bytes(pa: u64, window: PhysWindow) -> Result<&'static [u8], FdtError> {
    let header = window.ptr(pa, 8).ok_or(FdtError::BadHeader)?;
    // SAFETY: the window covers the 8 header bytes; they are read, not referenced.
    let word = |i: usize| u32::from_be(unsafe { header.cast::<u32>().add(i).read_unaligned() });
    let size = word(1) as usize;
    if word(0) != MAGIC || !(40..=MAX_DTB).contains(&size) {
        return Err(FdtError::BadHeader);
    }
    window.slice(pa, size).ok_or(FdtError::BadHeader)
}

/// Parses a device tree.
pub fn parse(dtb: &[u8]) -> Result<FdtInfo<'_>, FdtError> {
    let fdt = Fdt::new(dtb).map_err(|_| FdtError::Malformed)?;
    let mut info = FdtInfo {
        size: fdt.total_size(),
        model: fdt
            .root()
            .property("model")
            .and_then(|p| p.as_str())
            .unwrap_or(""),
        psci: fdt
            .find_node("/psci")
            .and_then(|n| n.property("method"))
            .and_then(|p| p.as_str()),
        ..FdtInfo::default()
    };
    let chosen = fdt.find_node("/chosen");
    info.bootargs = chosen
        .and_then(|n| n.property("bootargs"))
        .and_then(|p| p.as_str());
    let stdout = chosen.and(Some(fdt.chosen())).and_then(|c| c.stdout());
    info.pl011 = stdout
        .filter(|n| compatible(n, "arm,pl011"))
        .or_else(|| fdt.find_compatible(&["arm,pl011"]))
        .and_then(first_reg)
        .map(|(base, _)| base);
    let cells = fdt.root().cell_sizes();
    for node in fdt.all_nodes() {
        let is_memory = node.name.starts_with("memory@")
            || node.property("device_type").and_then(|p| p.as_str()) == Some("memory");
        if !is_memory {
            continue;
        }
        let reg = node.property("reg").map(|p| p.value);
        let checked = reg.ok_or(MemoryNodeProblem::NoReg).and_then(|reg| {
            memory_reg(reg, cells.address_cells, cells.size_cells, &mut info.memory)
        });
        if let Err(problem) = checked {
            info.bad_memory.push(BadMemoryNode {
                node: node.name,
                problem,
            });
        }
    }
    info.ecam = fdt
        .find_compatible(&["pci-host-ecam-generic"])
        .and_then(|n| {
            let (base, size) = first_reg(n)?;
            let (bus_start, bus_end) = n
                .property("bus-range")
                .filter(|p| p.value.len() == 8)
                .map_or((0, 255), |p| (be32(&p.value[..4]), be32(&p.value[4..])));
            Some(EcamHost {
                base,
                size,
                bus_start,
                bus_end,
            })
        });
    info.gicd = fdt
        .find_compatible(&["arm,cortex-a15-gic", "arm,gic-400", "arm,gic-v3"])
        .and_then(first_reg)
        .map(|(base, _)| base);
    Ok(info)
}

impl FdtInfo<'_> {
    /// One `firmware.*` record per memory node, then the bootargs.
    pub fn details(&self, out: &mut dyn fmt::Write) -> fmt::Result {
        for &(base, size) in self.memory.items() {
            writeln!(
                out,
                "firmware.memory start={base:#x} end={:#x}",
                base + size
            )?;
        }
        for bad in self.bad_memory.items() {
            writeln!(out, "{bad}")?;
        }
        if let Some(args) = self.bootargs {
            writeln!(out, "firmware.bootargs {args}")?;
        }
        Ok(())
    }
}

/// Decodes a memory node's `reg` (entries of `address` + `size` big-endian cells) into
/// `out`, all or nothing.
fn memory_reg(
    reg: &[u8],
    address: usize,
    size: usize,
    out: &mut List<(u64, u64)>,
) -> Result<(), MemoryNodeProblem> {
    if !(1..=2).contains(&address) || !(1..=2).contains(&size) {
        return Err(MemoryNodeProblem::CellSizes { address, size });
    }
    let entry = (address + size) * 4;
    if reg.is_empty() || !reg.len().is_multiple_of(entry) {
        return Err(MemoryNodeProblem::Length {
            len: reg.len(),
            entry,
        });
    }
    let cells = |b: &[u8]| b.chunks(4).fold(0u64, |v, c| v << 32 | u64::from(be32(c)));
    let ranges = reg.chunks(entry).map(|e| {
        let (base, len) = e.split_at(address * 4);
        (cells(base), cells(len))
    });
    for (base, len) in ranges.clone() {
        if len == 0 {
            return Err(MemoryNodeProblem::ZeroSize { base });
        }
        if base.checked_add(len).is_none() {
            return Err(MemoryNodeProblem::Wraps { base, size: len });
        }
    }
    ranges.for_each(|r| out.push(r));
    Ok(())
}

fn compatible(node: &FdtNode<'_, '_>, what: &str) -> bool {
    node.compatible()
        .is_some_and(|c| c.all().any(|s| s == what))
}

fn first_reg(node: FdtNode<'_, '_>) -> Option<(u64, u64)> {
    let r = node.reg()?.next()?;
    Some((r.starting_address as u64, r.size.unwrap_or(0) as u64))
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes(b.try_into().expect("4 bytes"))
}

impl fmt::Display for FdtInfo<'_> {
    /// The `firmware` record fields: `size=7624 model=... uart.pl011=0x9000000 ...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "size={}", self.size)?;
        if !self.model.is_empty() && !self.model.contains(' ') {
            write!(f, " model={}", self.model)?;
        }
        if let Some(base) = self.pl011 {
            write!(f, " uart.pl011={base:#x}")?;
        }
        if let Some(e) = self.ecam {
            write!(
                f,
                " pci.ecam={:#x} pci.ecam.size={:#x} pci.buses={}-{}",
                e.base, e.size, e.bus_start, e.bus_end
            )?;
        }
        if let Some(g) = self.gicd {
            write!(f, " gic.gicd={g:#x}")?;
        }
        if let Some(m) = self.psci {
            write!(f, " psci={m}")?;
        }
        let bytes: u64 = self.memory.items().iter().map(|&(_, s)| s).sum();
        write!(f, " mem.nodes={} mem.bytes={bytes}", self.memory.total)?;
        if self.bad_memory.total > 0 {
            write!(f, " mem.refused={}", self.bad_memory.total)?;
        }
        write!(f, " bootargs={}", u8::from(self.bootargs.is_some()))
    }
}

#[cfg(test)]
#[path = "fdt_tests.rs"]
mod tests;
