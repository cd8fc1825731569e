//! The x86 MADT ("APIC") facts an interrupt-driven hotplug source needs: the local APIC
//! address, the I/O APICs with their first GSI, and the interrupt source overrides that
//! turn a legacy IRQ (the SCI on 9) into a GSI with its polarity and trigger mode.

use alloc::vec::Vec;

/// One I/O APIC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoApic {
    /// Its APIC id.
    pub id: u8,
    /// MMIO base.
    pub address: u64,
    /// First GSI it serves.
    pub gsi_base: u32,
}

/// Where a legacy IRQ arrives and how it is signalled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    /// Global system interrupt.
    pub gsi: u32,
    /// Active-low (else active-high).
    pub active_low: bool,
    /// Level-triggered (else edge).
    pub level: bool,
}

/// What the kernel takes from the MADT.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApicInfo {
    /// Local APIC MMIO base (the type-5 override wins over the header field).
    pub lapic: u64,
    /// Every I/O APIC.
    pub ioapics: Vec<IoApic>,
    /// Interrupt source overrides: `(irq, route)`.
    pub overrides: Vec<(u8, Route)>,
}

impl ApicInfo {
    /// The route of ISA IRQ `irq`: its override, else identity, active-high, edge.
    pub fn route(&self, irq: u8) -> Route {
        self.overrides.iter().find(|(i, _)| *i == irq).map_or(
            Route {
                gsi: u32::from(irq),
                active_low: false,
                level: false,
            },
            |(_, r)| *r,
        )
    }

    /// The I/O APIC serving `gsi` (the one with the highest base not above it).
    pub fn ioapic_for(&self, gsi: u32) -> Option<IoApic> {
        self.ioapics
            .iter()
            .filter(|a| a.gsi_base <= gsi)
            .max_by_key(|a| a.gsi_base)
            .copied()
    }
}

/// Why the MADT was not usable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MadtError {
    /// Not an `APIC` table, or shorter than its fixed part.
    BadTable,
}

fn u32_at(t: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(t[at..at + 4].try_into().expect("4 bytes"))
}

/// Parses the whole table; malformed trailing entries end the walk.
pub fn parse(table: &[u8]) -> Result<ApicInfo, MadtError> {
    if table.len() < 44 || &table[..4] != b"APIC" {
        return Err(MadtError::BadTable);
    }
    let len = (u32_at(table, 4) as usize).min(table.len());
    let mut info = ApicInfo {
        lapic: u64::from(u32_at(table, 36)),
        ..ApicInfo::default()
    };
    let mut off = 44;
    while off + 2 <= len {
        let (ty, n) = (table[off], usize::from(table[off + 1]));
        if n < 2 || off + n > len {
            break;
        }
        let e = &table[off..off + n];
        match (ty, n) {
            (1, 12..) => info.ioapics.push(IoApic {
                id: e[2],
                address: u64::from(u32_at(e, 4)),
                gsi_base: u32_at(e, 8),
            }),
            (2, 10..) => {
                let flags = u16::from_le_bytes([e[8], e[9]]);
                info.overrides.push((
                    e[3],
                    Route {
                        gsi: u32_at(e, 4),
                        active_low: flags & 3 == 3,
                        level: (flags >> 2) & 3 == 3,
                    },
                ));
            }
            (5, 12..) => info.lapic = u64::from(u32_at(e, 4)) | u64::from(u32_at(e, 8)) << 32,
            _ => {}
        }
        off += n;
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// QEMU q35's MADT: one CPU, the I/O APIC at 0xfec00000, overrides 0→2 and the SCI.
    fn q35() -> Vec<u8> {
        let mut t = vec![0u8; 44];
        t[..4].copy_from_slice(b"APIC");
        t[36..40].copy_from_slice(&0xfee0_0000u32.to_le_bytes());
        t.extend_from_slice(&[0, 8, 0, 0, 1, 0, 0, 0]);
        t.extend_from_slice(&[1, 12, 0, 0, 0, 0, 0xc0, 0xfe, 0, 0, 0, 0]);
        t.extend_from_slice(&[2, 10, 0, 0, 2, 0, 0, 0, 0, 0]);
        t.extend_from_slice(&[2, 10, 0, 9, 9, 0, 0, 0, 0x0d, 0]);
        t.extend_from_slice(&[4, 6, 0xff, 0, 0, 1]);
        let len = t.len() as u32;
        t[4..8].copy_from_slice(&len.to_le_bytes());
        t
    }

    #[test]
    fn sci_is_level_active_high_on_gsi_9() {
        let m = parse(&q35()).unwrap();
        assert_eq!(m.lapic, 0xfee0_0000);
        assert_eq!(m.ioapics.len(), 1);
        let sci = m.route(9);
        assert_eq!(
            sci,
            Route {
                gsi: 9,
                active_low: false,
                level: true
            }
        );
        assert_eq!(m.route(0).gsi, 2);
        assert_eq!(
            m.route(4),
            Route {
                gsi: 4,
                active_low: false,
                level: false
            }
        );
        assert_eq!(m.ioapic_for(9).unwrap().address, 0xfec0_0000);
    }

    #[test]
    fn lapic_override_and_truncated_entries() {
        let mut t = q35();
        t.extend_from_slice(&[5, 12, 0, 0, 0, 0, 0xe0, 0xfe, 1, 0, 0, 0]);
        t.extend_from_slice(&[1, 12, 0]);
        let len = t.len() as u32;
        t[4..8].copy_from_slice(&len.to_le_bytes());
        let m = parse(&t).unwrap();
        assert_eq!(m.lapic, 0x1_fee0_0000);
        assert_eq!(m.ioapics.len(), 1, "the truncated I/O APIC is dropped");
        assert_eq!(parse(&t[..40]), Err(MadtError::BadTable));
    }

    #[test]
    fn second_ioapic_serves_the_higher_gsis() {
        let mut m = parse(&q35()).unwrap();
        m.ioapics.push(IoApic {
            id: 1,
            address: 0xfec1_0000,
            gsi_base: 24,
        });
        assert_eq!(m.ioapic_for(30).unwrap().id, 1);
        assert_eq!(m.ioapic_for(23).unwrap().id, 0);
    }
}
