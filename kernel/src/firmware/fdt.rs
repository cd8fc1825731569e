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
mod tests {
    use super::*;

    /// `qemu-system-aarch64 -M virt,nvdimm=on,acpi=off,dumpdtb=... -cpu cortex-a57
    /// -m 1G,slots=4,maxmem=8G` (QEMU 10.0.2, AAVMF in pflash), `totalsize` trimmed
    /// from QEMU's 1 MiB to the blocks' end (see fixtures/README.md).
    const QEMU_VIRT: &[u8] = include_bytes!("fixtures/qemu-virt-acpi-off.dtb");

    #[test]
    fn qemu_virt_devices_match_qemus_memory_map() {
        let info = parse(QEMU_VIRT).expect("parses");
        assert_eq!(info.size, QEMU_VIRT.len());
        assert_eq!(info.model, "linux,dummy-virt");
        // hw/arm/virt.c base_memmap: VIRT_UART 0x09000000, VIRT_HIGH_PCIE_ECAM
        // 0x40_1000_0000 (256 MiB), VIRT_GIC_DIST 0x08000000, RAM at 0x40000000.
        assert_eq!(info.pl011, Some(0x0900_0000));
        assert_eq!(
            info.ecam,
            Some(EcamHost {
                base: 0x40_1000_0000,
                size: 0x1000_0000,
                bus_start: 0,
                bus_end: 255
            })
        );
        assert_eq!(info.gicd, Some(0x0800_0000));
        assert_eq!(info.psci, Some("hvc"));
        assert_eq!(info.memory.items(), &[(0x4000_0000, 1 << 30)]);
        assert_eq!(info.bootargs, None);
    }

    #[test]
    fn record_is_key_value() {
        let text = alloc::format!("{}", parse(QEMU_VIRT).unwrap());
        assert!(text.contains(" uart.pl011=0x9000000 "), "{text}");
        assert!(text.contains(" pci.ecam=0x4010000000 "), "{text}");
        assert!(text.contains(" mem.nodes=1 mem.bytes=1073741824"), "{text}");
        assert!(text.split(' ').all(|w| w.contains('=')), "{text}");
    }

    /// The fixture with its one memory node's 16-byte `reg` (base 1 GiB, size 1 GiB)
    /// replaced by `value` (a multiple of 4 bytes): the structure block is spliced and
    /// the header's sizes and offsets follow.
    fn with_memory_reg(value: &[u8]) -> alloc::vec::Vec<u8> {
        let old = [0, 0, 0, 0, 0x40, 0, 0, 0, 0, 0, 0, 0, 0x40, 0, 0, 0];
        let mut dtb = QEMU_VIRT.to_vec();
        let at: alloc::vec::Vec<usize> = (8..dtb.len() - 16)
            .filter(|&i| dtb[i..i + 16] == old && be32(&dtb[i - 8..i - 4]) == 16)
            .collect();
        assert_eq!(at.len(), 1, "the memory node's reg is unique");
        let at = at[0];
        assert_eq!(value.len() % 4, 0);
        dtb[at - 8..at - 4].copy_from_slice(&(value.len() as u32).to_be_bytes());
        dtb.splice(at..at + 16, value.iter().copied());
        let delta = value.len() as i64 - 16;
        let strings_follow = be32(&dtb[12..16]) as usize > at;
        // totalsize, size_dt_struct; off_dt_strings when the strings follow the struct.
        for (offset, moves) in [(4, true), (36, true), (12, strings_follow)] {
            if moves {
                let field = i64::from(be32(&dtb[offset..offset + 4])) + delta;
                dtb[offset..offset + 4].copy_from_slice(&(field as u32).to_be_bytes());
            }
        }
        dtb
    }

    #[test]
    fn a_bad_memory_node_is_refused_with_its_reason_and_the_rest_is_read() {
        let twelve = [0, 0, 0, 0, 0x40, 0, 0, 0, 0, 0, 0, 0];
        let zero = [0, 0, 0, 0, 0x40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let mut wraps = [0u8; 16];
        wraps[..8].copy_from_slice(&0xffff_ffff_ffff_f000u64.to_be_bytes());
        wraps[12] = 0x40;
        let cases = [
            (
                "reason=reg-length len=12 entry=16",
                with_memory_reg(&twelve),
            ),
            ("reason=reg-length len=0 entry=16", with_memory_reg(&[])),
            ("reason=zero-size base=0x40000000", with_memory_reg(&zero)),
            (
                "reason=wraps base=0xfffffffffffff000 size=0x40000000",
                with_memory_reg(&wraps),
            ),
        ];
        for (reason, dtb) in cases {
            let info = parse(&dtb).expect("the rest of the tree parses");
            assert_eq!(info.memory.total, 0, "{reason}");
            assert_eq!(info.bad_memory.total, 1, "{reason}");
            let mut details = alloc::string::String::new();
            info.details(&mut details).unwrap();
            let refused: alloc::vec::Vec<&str> = details
                .lines()
                .filter(|l| l.starts_with("firmware.memory.refused "))
                .collect();
            assert_eq!(
                refused,
                [alloc::format!(
                    "firmware.memory.refused node=memory@40000000 {reason}"
                )],
            );
            // Everything else is still found.
            assert_eq!(info.pl011, Some(0x0900_0000), "{reason}");
            assert_eq!(info.gicd, Some(0x0800_0000), "{reason}");
            assert!(info.ecam.is_some(), "{reason}");
            let text = alloc::format!("{info}");
            assert!(
                text.contains(" mem.nodes=0 mem.bytes=0 mem.refused=1 "),
                "{text}"
            );
        }
    }

    #[test]
    fn memory_reg_decodes_one_and_two_cell_entries() {
        let mut out = List::default();
        let reg = [0, 0, 0x10, 0, 0, 0, 0x20, 0, 0, 0, 0x40, 0, 0, 0, 0x01, 0];
        assert_eq!(memory_reg(&reg, 1, 1, &mut out), Ok(()));
        assert_eq!(out.items(), &[(0x1000, 0x2000), (0x4000, 0x100)]);
        assert_eq!(
            memory_reg(&reg, 3, 1, &mut out),
            Err(MemoryNodeProblem::CellSizes {
                address: 3,
                size: 1
            })
        );
        assert_eq!(
            memory_reg(&[], 2, 2, &mut out),
            Err(MemoryNodeProblem::Length { len: 0, entry: 16 })
        );
        assert_eq!(out.total, 2, "refused entries add nothing");
    }

    #[test]
    fn header_is_checked_through_the_window() {
        let window = PhysWindow {
            base_pa: 0x4000_0000,
            base_va: QEMU_VIRT.as_ptr() as usize,
            len: QEMU_VIRT.len() as u64,
            mapped: None,
        };
        assert_eq!(
            bytes(0x4000_0000, window).map(<[u8]>::len),
            Ok(QEMU_VIRT.len())
        );
        assert_eq!(bytes(0x4000_0008, window), Err(FdtError::BadHeader));
        assert_eq!(bytes(0x3fff_f000, window), Err(FdtError::BadHeader));
        let mut broken = QEMU_VIRT.to_vec();
        broken[0] = 0;
        assert_eq!(parse(&broken), Err(FdtError::Malformed));
    }
}
