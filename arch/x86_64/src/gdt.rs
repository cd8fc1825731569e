//! The kernel's own GDT (kernel code/data + TSS) and the TSS with IST stacks for the
//! exceptions that must not run on a possibly broken stack (#DF, #NMI, #MC, #PF).

use spin::Once;
use x86_64::VirtAddr;
use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::tss::TaskStateSegment;

/// IST slot for #DF.
pub const IST_DOUBLE_FAULT: u16 = 0;
/// IST slot for NMI and #MC.
pub const IST_NMI: u16 = 1;
/// IST slot for #PF (a stack overflow faults on the stack itself).
pub const IST_PAGE_FAULT: u16 = 2;

const IST_SIZE: usize = 16 * 1024;

#[repr(C, align(16))]
struct Stack([u8; IST_SIZE]);

static mut IST_STACKS: [Stack; 3] = [const { Stack([0; IST_SIZE]) }; 3];

static TSS: Once<TaskStateSegment> = Once::new();
static GDT: Once<(
    GlobalDescriptorTable,
    SegmentSelector,
    SegmentSelector,
    SegmentSelector,
)> = Once::new();

/// Loads the GDT and TSS and reloads every segment register.
pub fn init() {
    let tss = TSS.call_once(|| {
        let mut tss = TaskStateSegment::new();
        // Only the address is taken: the stacks are used by the CPU alone, one per slot.
        let stacks = &raw const IST_STACKS;
        for i in 0..3 {
            let top = stacks as u64 + ((i + 1) * IST_SIZE) as u64;
            tss.interrupt_stack_table[i] = VirtAddr::new(top);
        }
        tss
    });
    let (gdt, code, data, tss_sel) = GDT.call_once(|| {
        let mut gdt = GlobalDescriptorTable::new();
        let code = gdt.append(Descriptor::kernel_code_segment());
        let data = gdt.append(Descriptor::kernel_data_segment());
        let tss_sel = gdt.append(Descriptor::tss_segment(tss));
        (gdt, code, data, tss_sel)
    });
    gdt.load();
    // SAFETY: the selectors index descriptors of the GDT just loaded, which lives in a
    // static and so stays valid.
    unsafe {
        CS::set_reg(*code);
        SS::set_reg(*data);
        DS::set_reg(*data);
        ES::set_reg(*data);
        load_tss(*tss_sel);
    }
}
