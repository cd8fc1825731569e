//! Ending the run: Arm semihosting `SYS_EXIT_EXTENDED` first (QEMU `-semihosting`,
//! exit code = status), then PSCI `SYSTEM_OFF` through the conduit firmware named (HVC
//! or SMC; QEMU then exits 0 and the `@@EXIT` line carries the status).
//!
//! Without `-semihosting` the semihosting trap (`HLT #0xf000`) is an undefined
//! instruction: the vectors see [`exiting`] and go straight to PSCI.

use core::sync::atomic::{AtomicBool, AtomicU8, Ordering};

/// Semihosting operation `SYS_EXIT_EXTENDED`.
pub const SYS_EXIT_EXTENDED: u64 = 0x20;
/// `ADP_Stopped_ApplicationExit`: the reason code for a normal exit with a status.
pub const ADP_STOPPED_APPLICATION_EXIT: u64 = 0x2_0026;
/// PSCI `SYSTEM_OFF` function ID (SMC32 convention, valid from AArch64 too).
pub const PSCI_SYSTEM_OFF: u64 = 0x8400_0008;

/// How PSCI calls reach the firmware.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conduit {
    /// `HVC #0` (QEMU `virt` without EL2/EL3 firmware).
    Hvc,
    /// `SMC #0`.
    Smc,
}

impl Conduit {
    /// `hvc` or `smc`.
    pub const fn name(self) -> &'static str {
        match self {
            Conduit::Hvc => "hvc",
            Conduit::Smc => "smc",
        }
    }

    /// From a device tree `/psci` `method` string.
    pub fn from_method(method: &str) -> Option<Conduit> {
        match method {
            "hvc" => Some(Conduit::Hvc),
            "smc" => Some(Conduit::Smc),
            _ => None,
        }
    }
}

/// The semihosting parameter block of `SYS_EXIT_EXTENDED` for `status`.
pub const fn exit_block(status: u32) -> [u64; 2] {
    [ADP_STOPPED_APPLICATION_EXIT, status as u64]
}

static EXITING: AtomicBool = AtomicBool::new(false);
static CONDUIT: AtomicU8 = AtomicU8::new(0);

/// Records the PSCI conduit firmware described (HVC until told otherwise).
pub fn set_conduit(c: Conduit) {
    CONDUIT.store(u8::from(c == Conduit::Smc), Ordering::Relaxed);
}

/// The PSCI conduit in use.
pub fn conduit() -> Conduit {
    if CONDUIT.load(Ordering::Relaxed) == 1 {
        Conduit::Smc
    } else {
        Conduit::Hvc
    }
}

/// Whether [`exit`] has started (an exception now means "no semihosting").
pub fn exiting() -> bool {
    EXITING.load(Ordering::Relaxed)
}

/// Semihosting exit with `status`, falling back to PSCI `SYSTEM_OFF`.
#[cfg(target_os = "none")]
pub fn exit(status: u32) -> ! {
    if !EXITING.swap(true, Ordering::Relaxed) {
        let block = exit_block(status);
        // SAFETY: the semihosting call reads the two-word block on this stack and
        // ends QEMU; without semihosting it traps and the vectors call `system_off`.
        // Asm because the semihosting trap (`HLT #0xf000` with its x0/x1 convention)
        // is not in aarch64-cpu.
        unsafe {
            core::arch::asm!(
                "hlt #0xf000",
                inout("x0") SYS_EXIT_EXTENDED => _,
                in("x1") block.as_ptr(),
                options(nostack, readonly)
            );
        }
    }
    system_off()
}

/// PSCI `SYSTEM_OFF`; parks the CPU if the call returns.
#[cfg(target_os = "none")]
pub fn system_off() -> ! {
    // SAFETY: SYSTEM_OFF takes no arguments and does not return on success; the
    // conduit is the one the firmware tables named. Asm because aarch64-cpu has no
    // HVC/SMC calls (the PSCI function ID goes in x0, which the call may clobber).
    unsafe {
        match conduit() {
            Conduit::Hvc => {
                core::arch::asm!("hvc #0", inout("x0") PSCI_SYSTEM_OFF => _, options(nostack))
            }
            Conduit::Smc => {
                core::arch::asm!("smc #0", inout("x0") PSCI_SYSTEM_OFF => _, options(nostack))
            }
        }
    }
    loop {
        aarch64_cpu::asm::wfe();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_block_and_conduit() {
        assert_eq!(exit_block(3), [0x20026, 3]);
        assert_eq!(Conduit::from_method("hvc"), Some(Conduit::Hvc));
        assert_eq!(Conduit::from_method("smc").map(Conduit::name), Some("smc"));
        assert_eq!(Conduit::from_method("spin-table"), None);
        assert_eq!(conduit(), Conduit::Hvc);
    }
}
