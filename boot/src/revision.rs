//! Base revisions: negotiating the one to use and what each promises the kernel.
//!
//! This loader implements base revisions 1 to 6 (6 is the newest, Limine 11+). A kernel
//! asking for a revision in that range gets exactly it; a newer one gets 6 with its tag
//! left unsupported; revision 0 (no tag, identity map, `.limine_reqs`) is refused.

use crate::protocol::memtype;

/// The newest base revision implemented.
pub const MAX: u64 = 6;
/// The oldest base revision implemented.
pub const MIN: u64 = 1;

/// Magic words 0 and 1 of the base-revision tag (word 1 is replaced by the revision used).
pub const TAG_MAGIC: [u64; 2] = [0xf9562b2d5c95a6c8, 0x6a7b384944536bdc];

/// The outcome of negotiation: the revision used and whether the request was met.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Negotiated {
    /// Revision whose rules the boot follows (written to `tag[1]`).
    pub used: Revision,
    /// Whether the requested revision is supported (then `tag[2]` is set to 0).
    pub supported: bool,
}

/// Why the kernel cannot be booted at any revision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RevisionError {
    /// No base-revision tag (revision 0), which this loader does not implement.
    NoTag,
    /// The tag asks for revision 0 explicitly.
    Zero,
}

/// Picks the revision for a kernel whose tag asks for `requested` (`None`: no tag).
pub fn negotiate(requested: Option<u64>) -> Result<Negotiated, RevisionError> {
    match requested {
        None => Err(RevisionError::NoTag),
        Some(0) => Err(RevisionError::Zero),
        Some(r) if r <= MAX => Ok(Negotiated {
            used: Revision(r),
            supported: true,
        }),
        Some(_) => Ok(Negotiated {
            used: Revision(MAX),
            supported: false,
        }),
    }
}

/// One base revision and the rules that depend on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Revision(pub u64);

impl Revision {
    /// Whether the HHDM maps memory-map entries of `ty` (revision 3 onwards).
    pub fn hhdm_maps(self, ty: u64) -> bool {
        match ty {
            memtype::USABLE
            | memtype::BOOTLOADER_RECLAIMABLE
            | memtype::EXECUTABLE_AND_MODULES
            | memtype::FRAMEBUFFER => true,
            memtype::ACPI_RECLAIMABLE | memtype::ACPI_NVS | memtype::RESERVED_MAPPED => {
                self.0 >= 4 || self.0 < 3
            }
            // Revisions 1-2 map RESERVED and BAD only below 4 GiB (see `hhdm_low_4g`).
            _ => false,
        }
    }

    /// Revisions 1-2 map all of the first 4 GiB in the HHDM, whatever the map says.
    pub fn hhdm_low_4g(self) -> bool {
        self.0 < 3
    }

    /// Whether the RSDP response holds a physical address (revision 3 only).
    pub fn rsdp_is_physical(self) -> bool {
        self.0 == 3
    }

    /// Limine type for UEFI runtime-services code and data.
    pub fn runtime_services_type(self) -> u64 {
        if self.0 >= 5 {
            memtype::RESERVED_MAPPED
        } else {
            memtype::RESERVED
        }
    }

    /// Whether ACPI tables must lie in HHDM-mapped memory (revision 4 onwards), so any
    /// table outside the ACPI types is re-typed RESERVED_MAPPED.
    pub fn acpi_tables_mapped(self) -> bool {
        self.0 >= 4
    }

    /// Whether the x86 entry state is the strict one of revision 5 (RFLAGS = 0x2, IDTR,
    /// LDTR null, exact CR0/CR4/EFER, LAPIC and IO-APIC quiesced).
    pub fn strict_x86_state(self) -> bool {
        self.0 >= 5
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_follows_the_protocol() {
        assert_eq!(negotiate(None), Err(RevisionError::NoTag));
        assert_eq!(negotiate(Some(0)), Err(RevisionError::Zero));
        for r in MIN..=MAX {
            let n = negotiate(Some(r)).unwrap();
            assert_eq!((n.used, n.supported), (Revision(r), true));
        }
        let n = negotiate(Some(7)).unwrap();
        assert_eq!((n.used, n.supported), (Revision(6), false));
    }

    #[test]
    fn hhdm_coverage_by_revision() {
        let r3 = Revision(3);
        let r4 = Revision(4);
        assert!(r3.hhdm_maps(memtype::USABLE) && r3.hhdm_maps(memtype::FRAMEBUFFER));
        assert!(!r3.hhdm_maps(memtype::ACPI_RECLAIMABLE));
        assert!(!r3.hhdm_maps(memtype::RESERVED) && !r4.hhdm_maps(memtype::RESERVED));
        assert!(r4.hhdm_maps(memtype::ACPI_NVS) && r4.hhdm_maps(memtype::RESERVED_MAPPED));
        assert!(Revision(2).hhdm_low_4g() && !r3.hhdm_low_4g());
        assert!(!Revision(2).hhdm_maps(memtype::BAD_MEMORY));
    }

    #[test]
    fn rsdp_and_runtime_rules() {
        assert!(Revision(3).rsdp_is_physical());
        assert!(!Revision(2).rsdp_is_physical() && !Revision(6).rsdp_is_physical());
        assert_eq!(Revision(4).runtime_services_type(), memtype::RESERVED);
        assert_eq!(
            Revision(5).runtime_services_type(),
            memtype::RESERVED_MAPPED
        );
        assert!(!Revision(3).acpi_tables_mapped() && Revision(4).acpi_tables_mapped());
    }
}
