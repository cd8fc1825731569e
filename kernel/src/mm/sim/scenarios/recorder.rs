//! The recording fake for live-table changes: simulated memory that logs every table
//! write and every free ([`Step`]), and the two flush-order checks over such a log.

use std::string::String;
use std::vec::Vec;

/// One step a live-table change makes, as the recording fake sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// A table word written.
    Write,
    /// The TLB flush.
    Flush,
    /// A frame back to its allocator.
    Free(crate::mm::phys::FramePurpose),
}

/// Simulated memory that records every table write and every free, in order.
pub(super) struct Recorder<'a> {
    pub(super) mem: &'a mut crate::mm::sim::SimMemory,
    pub(super) log: std::rc::Rc<core::cell::RefCell<Vec<Step>>>,
}

impl crate::mm::phys::PhysMem for Recorder<'_> {
    fn read_u64(&self, addr: crate::mm::addr::PhysAddr) -> u64 {
        self.mem.read_u64(addr)
    }

    fn write_u64(&mut self, addr: crate::mm::addr::PhysAddr, value: u64) {
        self.log.borrow_mut().push(Step::Write);
        self.mem.write_u64(addr, value);
    }
}

impl crate::mm::phys::FrameSource for Recorder<'_> {
    fn alloc_frames(
        &mut self,
        size: u64,
        align: u64,
        purpose: crate::mm::phys::FramePurpose,
    ) -> Option<crate::mm::addr::PhysAddr> {
        self.mem.alloc_frames(size, align, purpose)
    }

    fn free_frames(
        &mut self,
        addr: crate::mm::addr::PhysAddr,
        size: u64,
        purpose: crate::mm::phys::FramePurpose,
    ) {
        self.log.borrow_mut().push(Step::Free(purpose));
        self.mem.free_frames(addr, size, purpose);
    }
}

/// Whether `log` flushed once, after every table write and before every free; `Err`
/// names the first step out of order.
pub fn flush_order(log: &[Step]) -> Result<(), String> {
    let flushes: Vec<usize> = (0..log.len()).filter(|&i| log[i] == Step::Flush).collect();
    let [flush] = flushes[..] else {
        return Err(format!("{} flushes", flushes.len()));
    };
    if let Some(i) = (0..flush).find(|&i| matches!(log[i], Step::Free(_))) {
        return Err(format!("step {i} frees before the flush at {flush}"));
    }
    if let Some(i) = (flush..log.len()).find(|&i| log[i] == Step::Write) {
        return Err(format!(
            "step {i} writes a table after the flush at {flush}"
        ));
    }
    Ok(())
}

/// Whether every free in `log` follows a flush that follows every table write before
/// it (the order a gather keeps when it has to flush early); `Err` names the first free
/// out of order.
pub fn flush_order_per_free(log: &[Step]) -> Result<(), String> {
    let mut flushed_since_write = false;
    for (i, step) in log.iter().enumerate() {
        match step {
            Step::Write => flushed_since_write = false,
            Step::Flush => flushed_since_write = true,
            Step::Free(_) if !flushed_since_write => {
                return Err(format!("step {i} frees with no flush since the last write"));
            }
            Step::Free(_) => {}
        }
    }
    Ok(())
}
