//! One page-table builder for both hand-off formats: four levels of 512 eight-byte
//! entries indexed by VA bits 12+9n, leaves of 4 KiB (level 0), 2 MiB (level 1) and
//! 1 GiB (level 2), written over a [`FrameSource`]. What differs between x86_64 and
//! aarch64 is only how an entry is encoded, which a [`Format`] says.

use super::{FrameSource, MapError, Perm, Translation, index};

/// Leaf sizes by level: 4 KiB, 2 MiB, 1 GiB.
const SIZES: [u64; 3] = [1 << 12, 1 << 21, 1 << 30];

/// How one architecture encodes and reads the entries the [`Mapper`] writes.
pub trait Format {
    /// Mask of the output-address bits of an entry.
    const ADDR: u64;
    /// The highest level that may hold a leaf (1: 2 MiB, 2: 1 GiB).
    fn top_leaf_level(&self) -> usize;
    /// Whether the entry is valid (present).
    fn valid(&self, entry: u64) -> bool;
    /// A table entry pointing at the table in frame `pa`.
    fn table(&self, pa: u64) -> u64;
    /// A leaf of `level` mapping `pa` with `perm`.
    fn leaf(&self, pa: u64, level: usize, perm: Perm) -> u64;
    /// Whether a valid entry above level 0 is a block (a leaf) rather than a table.
    fn is_block(&self, entry: u64) -> bool;
    /// Whether a valid level-0 entry is a page.
    fn is_page(&self, entry: u64) -> bool;
    /// The permissions a valid leaf grants.
    fn perm(&self, entry: u64) -> Perm;
}

/// Builds one address space (x86_64: the PML4's; aarch64: one TTBR's half).
pub struct Mapper<'f, F: FrameSource, A: Format> {
    frames: &'f mut F,
    root: u64,
    format: A,
}

impl<'f, F: FrameSource, A: Format> Mapper<'f, F, A> {
    /// A new, empty root table (PML4 or L0) with entries encoded by `format`.
    pub fn new(frames: &'f mut F, format: A) -> Result<Self, MapError> {
        let root = frames.alloc().ok_or(MapError::OutOfFrames)?;
        Ok(Self {
            frames,
            root,
            format,
        })
    }

    /// Physical address of the root table (the CR3 or TTBR value).
    pub fn root(&self) -> u64 {
        self.root
    }

    /// Maps `[virt, virt + len)` to `[phys, ...)` with the largest leaves alignment
    /// allows. A 4 KiB page mapped again to the same frame gets the union of the two
    /// permissions (two ELF segments sharing a page); any other overlap is a conflict.
    pub fn map(&mut self, virt: u64, phys: u64, len: u64, perm: Perm) -> Result<(), MapError> {
        if (virt | phys | len) & 0xfff != 0 {
            return Err(MapError::Unaligned);
        }
        let top = self.format.top_leaf_level();
        let (mut v, mut p, end) = (virt, phys, virt.wrapping_add(len));
        while v != end {
            let left = end.wrapping_sub(v);
            let level = (0..=top)
                .rev()
                .find(|&l| v % SIZES[l] == 0 && p % SIZES[l] == 0 && left >= SIZES[l])
                .unwrap_or(0);
            self.map_one(v, p, level, perm)?;
            v = v.wrapping_add(SIZES[level]);
            p += SIZES[level];
        }
        Ok(())
    }

    /// Maps one leaf of `level` (0: 4 KiB, 1: 2 MiB, 2: 1 GiB).
    fn map_one(&mut self, virt: u64, phys: u64, level: usize, perm: Perm) -> Result<(), MapError> {
        let mut table = self.root;
        for l in (level + 1..4).rev() {
            let idx = index(virt, l);
            let e = self.frames.table(table)[idx];
            table = if !self.format.valid(e) {
                let t = self.frames.alloc().ok_or(MapError::OutOfFrames)?;
                self.frames.table(table)[idx] = self.format.table(t);
                t
            } else if self.format.is_block(e) {
                return Err(MapError::Conflict(virt));
            } else {
                e & A::ADDR
            };
        }
        let idx = index(virt, level);
        let old = self.frames.table(table)[idx];
        let mut perm = perm;
        if self.format.valid(old) {
            if level > 0 || old & A::ADDR != phys {
                return Err(MapError::Conflict(virt));
            }
            let had = self.format.perm(old);
            perm.write |= had.write;
            perm.exec |= had.exec;
        }
        self.frames.table(table)[idx] = self.format.leaf(phys, level, perm);
        Ok(())
    }

    /// Walks the tables for `virt`.
    pub fn translate(&mut self, virt: u64) -> Option<Translation> {
        let mut table = self.root;
        for l in (0..4).rev() {
            let e = self.frames.table(table)[index(virt, l)];
            if !self.format.valid(e) {
                return None;
            }
            let leaf = if l == 0 {
                self.format.is_page(e)
            } else {
                l < 3 && self.format.is_block(e)
            };
            if leaf {
                let size = SIZES[l];
                return Some(Translation {
                    phys: (e & A::ADDR & !(size - 1)) + (virt & (size - 1)),
                    size,
                    perm: self.format.perm(e),
                });
            }
            table = e & A::ADDR;
        }
        None
    }

    /// Clears root-table slot `idx` (x86_64 drops the temporary identity map so).
    pub fn clear_root_slot(&mut self, idx: usize) {
        self.frames.table(self.root)[idx] = 0;
    }
}
