//! The GUIDs that name an NFIT SPA range's address-range type, in their stored byte
//! order, and what each says the range is.

use core::fmt;

/// An ACPI GUID as stored: the first three fields little-endian, the last 8 bytes as is.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    /// The GUID written `d1-d2-d3-d4[0..2]-d4[2..8]`, in its stored byte order.
    pub const fn new(d1: u32, d2: u16, d3: u16, d4: [u8; 8]) -> Guid {
        let a = d1.to_le_bytes();
        let b = d2.to_le_bytes();
        let c = d3.to_le_bytes();
        Guid([
            a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d4[0], d4[1], d4[2], d4[3], d4[4],
            d4[5], d4[6], d4[7],
        ])
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = &self.0;
        let d1 = u32::from_le_bytes([g[0], g[1], g[2], g[3]]);
        let d2 = u16::from_le_bytes([g[4], g[5]]);
        let d3 = u16::from_le_bytes([g[6], g[7]]);
        write!(f, "{d1:08X}-{d2:04X}-{d3:04X}-{:02X}{:02X}-", g[8], g[9])?;
        g[10..].iter().try_for_each(|b| write!(f, "{b:02X}"))
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Guid({self})")
    }
}

/// Byte-addressable persistent memory: 66F0D379-B4F3-4074-AC43-0D3318B78CDB.
pub const PMEM_GUID: Guid = Guid::new(
    0x66F0_D379,
    0xB4F3,
    0x4074,
    [0xAC, 0x43, 0x0D, 0x33, 0x18, 0xB7, 0x8C, 0xDB],
);
/// Volatile memory: 7305944F-FDDA-44E3-B16C-3F22D252E5D0.
pub const VOLATILE_GUID: Guid = Guid::new(
    0x7305_944F,
    0xFDDA,
    0x44E3,
    [0xB1, 0x6C, 0x3F, 0x22, 0xD2, 0x52, 0xE5, 0xD0],
);
/// NVDIMM control region: 92F701F6-13B4-405D-910B-299367E8234C.
pub const CONTROL_REGION_GUID: Guid = Guid::new(
    0x92F7_01F6,
    0x13B4,
    0x405D,
    [0x91, 0x0B, 0x29, 0x93, 0x67, 0xE8, 0x23, 0x4C],
);
/// NVDIMM block data window: 91AF0530-5D86-470E-A6B0-0A2DB9408249.
pub const BLOCK_DATA_WINDOW_GUID: Guid = Guid::new(
    0x91AF_0530,
    0x5D86,
    0x470E,
    [0xA6, 0xB0, 0x0A, 0x2D, 0xB9, 0x40, 0x82, 0x49],
);

/// What an SPA range's address-range-type GUID says it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpaKind {
    /// Byte-addressable persistent memory (what becomes a pmem region).
    PersistentMemory,
    /// Volatile memory.
    Volatile,
    /// NVDIMM control region.
    ControlRegion,
    /// NVDIMM block data window.
    BlockDataWindow,
    /// Any other GUID (virtual disks, CDs, ...).
    Other,
}

impl SpaKind {
    /// Classifies a GUID.
    pub fn of(guid: &Guid) -> SpaKind {
        match *guid {
            PMEM_GUID => SpaKind::PersistentMemory,
            VOLATILE_GUID => SpaKind::Volatile,
            CONTROL_REGION_GUID => SpaKind::ControlRegion,
            BLOCK_DATA_WINDOW_GUID => SpaKind::BlockDataWindow,
            _ => SpaKind::Other,
        }
    }
}
