//! `SimMemory`: sparse page-granular storage plus a RAM frame allocator that counts every
//! block handed out and returned. Implements [`PhysMem`] and [`FrameSource`].

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::vec::Vec;

use crate::mm::addr::{PAGE_SIZE, PhysAddr, align_up};
use crate::mm::phys::{FramePurpose, FrameSource, PhysMem};

const WORDS: usize = (PAGE_SIZE / 8) as usize;

/// Simulated physical memory. Unwritten memory reads as zero; only RAM in `ram` is
/// handed out by the allocator, but any address can be read and written.
pub struct SimMemory {
    frames: HashMap<u64, Box<[u64; WORDS]>>,
    ram: Range<u64>,
    next: u64,
    free_lists: BTreeMap<u64, Vec<u64>>,
    live: BTreeMap<u64, (u64, FramePurpose)>,
    handed_out: u64,
    returned: u64,
}

impl SimMemory {
    /// RAM of `ram_bytes` at `ram_base` for the allocator.
    pub fn new(ram_base: u64, ram_bytes: u64) -> SimMemory {
        SimMemory {
            frames: HashMap::new(),
            ram: ram_base..ram_base + ram_bytes,
            next: ram_base,
            free_lists: BTreeMap::new(),
            live: BTreeMap::new(),
            handed_out: 0,
            returned: 0,
        }
    }

    /// Blocks handed out and not returned.
    pub fn outstanding(&self) -> usize {
        self.live.len()
    }

    /// Bytes handed out and not returned.
    pub fn outstanding_bytes(&self) -> u64 {
        self.live.values().map(|(size, _)| size).sum()
    }

    /// Blocks ever handed out.
    pub fn handed_out(&self) -> u64 {
        self.handed_out
    }

    /// Blocks ever returned.
    pub fn returned(&self) -> u64 {
        self.returned
    }

    /// Whether `addr` lies in the RAM the allocator manages.
    pub fn is_ram(&self, addr: PhysAddr) -> bool {
        self.ram.contains(&addr.0)
    }

    /// The live block starting at `addr`, as (size, purpose).
    pub fn live_block(&self, addr: PhysAddr) -> Option<(u64, FramePurpose)> {
        self.live.get(&addr.0).copied()
    }

    /// Frames of storage currently materialised.
    pub fn stored_frames(&self) -> usize {
        self.frames.len()
    }
}

impl PhysMem for SimMemory {
    fn read_u64(&self, addr: PhysAddr) -> u64 {
        self.frames
            .get(&(addr.0 / PAGE_SIZE))
            .map_or(0, |frame| frame[((addr.0 % PAGE_SIZE) / 8) as usize])
    }

    fn write_u64(&mut self, addr: PhysAddr, value: u64) {
        // The simulator's own storage is not the code under test: heap fault rules skip it.
        let _exempt = crate::heap::exempt_from_faults();
        let frame = self
            .frames
            .entry(addr.0 / PAGE_SIZE)
            .or_insert_with(|| Box::new([0; WORDS]));
        frame[((addr.0 % PAGE_SIZE) / 8) as usize] = value;
    }

    fn fill_u64(&mut self, addr: PhysAddr, count: usize, value: u64) {
        let _exempt = crate::heap::exempt_from_faults();
        let mut at = addr.0;
        let end = addr.0 + count as u64 * 8;
        while at < end {
            let first = ((at % PAGE_SIZE) / 8) as usize;
            let words = (((end - at) / 8) as usize).min(WORDS - first);
            let frame = self
                .frames
                .entry(at / PAGE_SIZE)
                .or_insert_with(|| Box::new([0; WORDS]));
            frame[first..first + words].fill(value);
            at += words as u64 * 8;
        }
    }
}

impl FrameSource for SimMemory {
    fn alloc_frames(&mut self, size: u64, align: u64, purpose: FramePurpose) -> Option<PhysAddr> {
        let _exempt = crate::heap::exempt_from_faults();
        let class = size.max(align).next_power_of_two();
        let addr = match self.free_lists.get_mut(&class).and_then(Vec::pop) {
            Some(addr) => addr,
            None => {
                let addr = align_up(self.next, class);
                if addr + class > self.ram.end {
                    return None;
                }
                self.next = addr + class;
                addr
            }
        };
        self.live.insert(addr, (size, purpose));
        self.handed_out += 1;
        Some(PhysAddr(addr))
    }

    fn free_frames(&mut self, addr: PhysAddr, size: u64, purpose: FramePurpose) {
        let _exempt = crate::heap::exempt_from_faults();
        match self.live.remove(&addr.0) {
            Some((live_size, live_purpose)) if live_size == size && live_purpose == purpose => {}
            other => {
                panic!("sim: bad free of {addr:?} size {size:#x} {purpose:?}: live block {other:?}")
            }
        }
        let class = size.next_power_of_two();
        if class >= PAGE_SIZE {
            for frame in addr.0 / PAGE_SIZE..(addr.0 + class) / PAGE_SIZE {
                self.frames.remove(&frame);
            }
        }
        self.free_lists.entry(class).or_default().push(addr.0);
        self.returned += 1;
    }
}
