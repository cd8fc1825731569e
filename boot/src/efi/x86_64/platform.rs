//! Putting the CPU and interrupt controllers into the protocol's entry state after
//! ExitBootServices: EFER.NXE, CR0.WP and the PAT always, the legacy PIC masked always;
//! from base revision 5 also the local APIC (SVR 0x1ff, TPR 0, LVTs masked) and every
//! IO-APIC redirection entry masked.

use boot::acpi::Tables;
use boot::revision::Revision;

use super::io::{outb, rdmsr, set_cr0_wp, wrmsr};
use crate::efi::say;

const EFER: u32 = 0xc000_0080;
const PAT: u32 = 0x277;
const APIC_BASE: u32 = 0x1b;
/// PAT as Limine programs it: 0 WB, 1 WT, 2 UC-, 3 UC, 4 WP, 5 WC.
const PAT_VALUE: u64 = 0x0000_0105_0007_0406;

/// Quiesces the platform for the kernel.
pub fn quiesce(rev: Revision, acpi: Option<&Tables>) {
    let nx = super::features().nx;
    let efer = rdmsr(EFER);
    let lme_lma = efer & ((1 << 8) | (1 << 10));
    let nxe = if nx { 1 << 11 } else { 0 };
    wrmsr(
        EFER,
        if rev.strict_x86_state() {
            lme_lma | nxe
        } else {
            efer | nxe
        },
    );
    wrmsr(PAT, PAT_VALUE);
    set_cr0_wp();
    outb(0x21, 0xff);
    outb(0xa1, 0xff);
    if !rev.strict_x86_state() {
        return;
    }
    local_apic();
    if let Some(t) = acpi {
        for &base in &t.ioapics[..t.ioapic_count] {
            mask_ioapic(base);
        }
        if t.iommu {
            say!("hotmem-boot: warning: DMAR/IVRS present; IOMMUs are left as firmware set them");
        }
    }
}

/// SVR = 0x1ff, TPR = 0, every LVT masked, in xAPIC or x2APIC mode.
fn local_apic() {
    let base = rdmsr(APIC_BASE);
    if base & (1 << 11) == 0 {
        return; // APIC globally disabled
    }
    let x2 = base & (1 << 10) != 0;
    let mmio = base & 0xf_ffff_f000;
    let rd = |reg: u32| -> u32 {
        if x2 {
            rdmsr(0x800 + (reg >> 4)) as u32
        } else {
            // SAFETY: the xAPIC page is identity-mapped by the firmware's tables that
            // are still live; registers are 32-bit at 16-byte strides.
            unsafe { core::ptr::read_volatile((mmio + u64::from(reg)) as *const u32) }
        }
    };
    let wr = |reg: u32, v: u32| {
        if x2 {
            wrmsr(0x800 + (reg >> 4), u64::from(v));
        } else {
            // SAFETY: as for `rd`.
            unsafe { core::ptr::write_volatile((mmio + u64::from(reg)) as *mut u32, v) };
        }
    };
    let max_lvt = (rd(0x30) >> 16) & 0xff;
    wr(0x80, 0);
    let mut lvts = [0x320u32, 0x350, 0x360, 0x370, 0, 0, 0];
    if max_lvt >= 4 {
        lvts[4] = 0x340;
    }
    if max_lvt >= 5 {
        lvts[5] = 0x330;
    }
    if max_lvt >= 6 {
        lvts[6] = 0x2f0;
    }
    for reg in lvts.into_iter().filter(|&r| r != 0) {
        wr(reg, rd(reg) | (1 << 16));
    }
    wr(0xf0, 0x1ff);
}

/// Masks every redirection entry of the IO-APIC at `base`.
fn mask_ioapic(base: u64) {
    let sel = base as *mut u32;
    let win = (base + 0x10) as *mut u32;
    let rw = |reg: u32, v: Option<u32>| -> u32 {
        // SAFETY: the IO-APIC MMIO page (from the MADT) is identity-mapped by the
        // firmware's live tables; IOREGSEL/IOWIN are 32-bit registers.
        unsafe {
            core::ptr::write_volatile(sel, reg);
            match v {
                Some(v) => {
                    core::ptr::write_volatile(win, v);
                    v
                }
                None => core::ptr::read_volatile(win),
            }
        }
    };
    let max = (rw(1, None) >> 16) & 0xff;
    for i in 0..=max {
        let reg = 0x10 + 2 * i;
        let low = rw(reg, None);
        rw(reg, Some(low | (1 << 16)));
    }
}
