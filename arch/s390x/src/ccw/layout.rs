//! Channel-subsystem and virtio-ccw data layouts (s390x.md §5), as byte encoders and
//! decoders: the SCHIB's path-management control word, the format-1 CCW, the ORB, the
//! SCSW inside an IRB, SENSE ID data and the virtio-ccw command payloads. Big-endian,
//! except the virtio feature words (little-endian). Pure, so tested on the host.

/// Bytes of a SCHIB (STSCH / MSCH operand).
pub const SCHIB_LEN: usize = 52;
/// Bytes of an ORB (SSCH operand).
pub const ORB_LEN: usize = 32;
/// Bytes of an IRB (TSCH operand); 32 words are stored at most.
pub const IRB_LEN: usize = 128;

/// The subchannel-id word of subchannel `schno` in subchannel set 0 (bit 16 is the
/// mandatory "one" bit).
pub const fn schid(schno: u16) -> u32 {
    0x0001_0000 | schno as u32
}

/// PMCW flags: device number valid.
pub const PMCW_DNV: u16 = 0x0001;
/// PMCW flags: subchannel enabled.
pub const PMCW_ENA: u16 = 0x0080;
/// PMCW flags: the interruption-subclass field.
pub const PMCW_ISC_MASK: u16 = 0x3800;
/// The I/O interruption subclass used for every subchannel here.
pub const ISC: u16 = 3;

/// The parts of a SCHIB the driver reads or changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pmcw {
    /// PMCW word 1, high half.
    pub flags: u16,
    /// Device number.
    pub devno: u16,
    /// Path-installed mask.
    pub pim: u8,
}

impl Pmcw {
    /// Reads the PMCW fields of a stored SCHIB.
    pub fn decode(schib: &[u8; SCHIB_LEN]) -> Self {
        Pmcw {
            flags: u16::from_be_bytes([schib[4], schib[5]]),
            devno: u16::from_be_bytes([schib[6], schib[7]]),
            pim: schib[11],
        }
    }

    /// Whether a device is attached.
    pub fn valid(&self) -> bool {
        self.flags & PMCW_DNV != 0
    }

    /// Whether the subchannel is enabled.
    pub fn enabled(&self) -> bool {
        self.flags & PMCW_ENA != 0
    }
}

/// Sets (or clears) ENA and the ISC in a stored SCHIB, and the interruption parameter,
/// for MSCH.
pub fn set_enabled(schib: &mut [u8; SCHIB_LEN], enable: bool, intparm: u32) {
    let mut flags = u16::from_be_bytes([schib[4], schib[5]]) & !(PMCW_ENA | PMCW_ISC_MASK);
    if enable {
        flags |= PMCW_ENA | (ISC << 11);
    }
    schib[0..4].copy_from_slice(&intparm.to_be_bytes());
    schib[4..6].copy_from_slice(&flags.to_be_bytes());
}

/// CCW flag: suppress incorrect-length indication (a shorter transfer is fine).
pub const CCW_FLAG_SLI: u8 = 0x20;

/// A format-1 CCW: `u8 cmd, u8 flags, be16 count, be32 data address` (31-bit).
pub fn ccw1(cmd: u8, flags: u8, count: u16, data: u32) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[0] = cmd;
    b[1] = flags;
    b[2..4].copy_from_slice(&count.to_be_bytes());
    b[4..8].copy_from_slice(&data.to_be_bytes());
    b
}

/// ORB control word: format-1 CCWs, prefetch, 64-bit IDAWs allowed, all paths.
pub const ORB_CTRL: u32 = 0x0080_0000 | 0x0040_0000 | 0x0002_0000 | 0xff00;

/// An ORB starting the channel program at `cpa` (31-bit).
pub fn orb(intparm: u32, cpa: u32) -> [u8; ORB_LEN] {
    let mut b = [0u8; ORB_LEN];
    b[0..4].copy_from_slice(&intparm.to_be_bytes());
    b[4..8].copy_from_slice(&ORB_CTRL.to_be_bytes());
    b[8..12].copy_from_slice(&cpa.to_be_bytes());
    b
}

/// Device status: channel end.
pub const DSTAT_CE: u8 = 0x08;
/// Device status: device end.
pub const DSTAT_DE: u8 = 0x04;
/// Device status: unit check (command rejected).
pub const DSTAT_UC: u8 = 0x02;
/// SCSW status-control: status pending.
pub const SCSW_STATUS_PENDING: u32 = 0x01;
/// SCSW status-control: alert status (e.g. a virtio config change).
pub const SCSW_ALERT: u32 = 0x10;

/// The subchannel-status word of an IRB.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scsw {
    /// Word 0 (control flags; the low byte is the status-control field).
    pub ctrl: u32,
    /// Device status.
    pub dstat: u8,
    /// Subchannel (channel) status.
    pub cstat: u8,
    /// Residual byte count of the last CCW.
    pub residual: u16,
}

impl Scsw {
    /// Reads the SCSW at the start of an IRB.
    pub fn decode(irb: &[u8]) -> Self {
        Scsw {
            ctrl: u32::from_be_bytes([irb[0], irb[1], irb[2], irb[3]]),
            dstat: irb[8],
            cstat: irb[9],
            residual: u16::from_be_bytes([irb[10], irb[11]]),
        }
    }

    /// Channel end and device end, no unit check, clean channel status.
    pub fn done_ok(&self) -> bool {
        self.dstat & (DSTAT_CE | DSTAT_DE) == DSTAT_CE | DSTAT_DE
            && self.dstat & DSTAT_UC == 0
            && self.cstat == 0
    }

    /// Status that only reports an unsolicited alert (no channel program ended).
    pub fn alert_only(&self) -> bool {
        self.ctrl & SCSW_ALERT != 0 && self.ctrl & 0x04 == 0
    }
}

/// SENSE ID (command 0xE4).
pub const CMD_SENSE_ID: u8 = 0xe4;

/// What SENSE ID reports: control unit type and model (virtio: 0x3832, device ID).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SenseId {
    /// Control-unit type.
    pub cu_type: u16,
    /// Control-unit model.
    pub cu_model: u8,
    /// Device type.
    pub dev_type: u16,
}

/// The control-unit type of every virtio-ccw device.
pub const VIRTIO_CU_TYPE: u16 = 0x3832;
/// The virtio device ID of virtio-mem.
pub const VIRTIO_ID_MEM: u8 = 24;

impl SenseId {
    /// Decodes SENSE ID data (`0xff, be16 cu_type, u8 model, be16 dev_type, ...`);
    /// `None` when the reserved first byte is not 0xff or fewer than 7 bytes came back.
    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() < 7 || b[0] != 0xff {
            return None;
        }
        Some(SenseId {
            cu_type: u16::from_be_bytes([b[1], b[2]]),
            cu_model: b[3],
            dev_type: u16::from_be_bytes([b[4], b[5]]),
        })
    }

    /// Whether this is a virtio-mem device.
    pub fn is_virtio_mem(&self) -> bool {
        self.cu_type == VIRTIO_CU_TYPE && self.cu_model == VIRTIO_ID_MEM
    }
}

/// virtio-ccw channel commands (QEMU `hw/s390x/virtio-ccw.h`).
pub mod cmd {
    /// Negotiate the transport revision; must be the first virtio command.
    pub const SET_VIRTIO_REV: u8 = 0x83;
    /// Reset the virtio device.
    pub const VDEV_RESET: u8 = 0x33;
    /// Read one 32-bit word of device features.
    pub const READ_FEAT: u8 = 0x12;
    /// Write one 32-bit word of driver features.
    pub const WRITE_FEAT: u8 = 0x11;
    /// Read the device config.
    pub const READ_CONF: u8 = 0x22;
    /// Write the device config.
    pub const WRITE_CONF: u8 = 0x21;
    /// Write the status byte.
    pub const WRITE_STATUS: u8 = 0x31;
    /// Read the status byte (revision 2).
    pub const READ_STATUS: u8 = 0x72;
    /// Read a queue's maximum size.
    pub const READ_VQ_CONF: u8 = 0x32;
    /// Set a queue's addresses and size.
    pub const SET_VQ: u8 = 0x13;
}

/// SET_VIRTIO_REV payload: `be16 revision, be16 length` (no extra data).
pub fn virtio_rev(revision: u16) -> [u8; 4] {
    let mut b = [0u8; 4];
    b[0..2].copy_from_slice(&revision.to_be_bytes());
    b
}

/// READ_FEAT / WRITE_FEAT payload: `le32 features, u8 index`.
pub fn feature_desc(word: u32, index: u8) -> [u8; 5] {
    let mut b = [0u8; 5];
    b[0..4].copy_from_slice(&word.to_le_bytes());
    b[4] = index;
    b
}

/// The feature word of a READ_FEAT reply.
pub fn feature_word(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// READ_VQ_CONF payload: `be16 index, be16 num_max` (the device fills num_max).
pub fn vq_conf(index: u16) -> [u8; 4] {
    let mut b = [0u8; 4];
    b[0..2].copy_from_slice(&index.to_be_bytes());
    b
}

/// The `num_max` of a READ_VQ_CONF reply.
pub fn vq_num_max(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[2], b[3]])
}

/// SET_VQ payload, revision 1 or later: `be64 desc, be32 reserved, be16 index, be16 num,
/// be64 avail (driver area), be64 used (device area)`.
pub fn set_vq(index: u16, num: u16, desc: u64, avail: u64, used: u64) -> [u8; 32] {
    let mut b = [0u8; 32];
    b[0..8].copy_from_slice(&desc.to_be_bytes());
    b[12..14].copy_from_slice(&index.to_be_bytes());
    b[14..16].copy_from_slice(&num.to_be_bytes());
    b[16..24].copy_from_slice(&avail.to_be_bytes());
    b[24..32].copy_from_slice(&used.to_be_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pmcw_of_a_virtio_mem_subchannel() {
        // s390x.md §5.1: flags 0x0001, PIM 0x80, devno = schno.
        let mut schib = [0u8; SCHIB_LEN];
        schib[4..6].copy_from_slice(&0x0001u16.to_be_bytes());
        schib[6..8].copy_from_slice(&0x0000u16.to_be_bytes());
        schib[11] = 0x80;
        let p = Pmcw::decode(&schib);
        assert!(p.valid() && !p.enabled());
        assert_eq!(p.pim, 0x80);
        set_enabled(&mut schib, true, 0x1234);
        assert_eq!(&schib[0..6], &[0, 0, 0x12, 0x34, 0x18, 0x81]);
        assert!(Pmcw::decode(&schib).enabled());
        set_enabled(&mut schib, false, 0);
        assert_eq!(Pmcw::decode(&schib).flags, PMCW_DNV);
        assert_eq!(schid(5), 0x0001_0005);
    }

    #[test]
    fn channel_program_blocks() {
        assert_eq!(
            ccw1(cmd::READ_CONF, CCW_FLAG_SLI, 56, 0x0012_3000),
            [0x22, 0x20, 0, 56, 0, 0x12, 0x30, 0]
        );
        let o = orb(7, 0x8000);
        assert_eq!(&o[0..12], &[0, 0, 0, 7, 0, 0xc2, 0xff, 0, 0, 0, 0x80, 0]);
        assert!(o[12..].iter().all(|&b| b == 0));
    }

    #[test]
    fn scsw_outcomes() {
        let mut irb = [0u8; IRB_LEN];
        irb[0..4].copy_from_slice(&0x0040_4007u32.to_be_bytes());
        irb[8] = DSTAT_CE | DSTAT_DE;
        irb[10..12].copy_from_slice(&200u16.to_be_bytes());
        let s = Scsw::decode(&irb);
        assert!(s.done_ok());
        assert_eq!(s.residual, 200);
        irb[8] |= DSTAT_UC;
        assert!(!Scsw::decode(&irb).done_ok());
        // s390x.md §5.6: the config-change alert: word 0 = 0x00800011, dstat 0x0c.
        irb[0..4].copy_from_slice(&0x0080_0011u32.to_be_bytes());
        irb[8] = 0x0c;
        assert!(Scsw::decode(&irb).alert_only());
    }

    #[test]
    fn sense_id_of_virtio_mem() {
        let data = [0xff, 0x38, 0x32, 24, 0x00, 0x00, 0x00, 0];
        let id = SenseId::decode(&data).unwrap();
        assert!(id.is_virtio_mem());
        assert_eq!(id.cu_type, 0x3832);
        assert!(!SenseId { cu_model: 1, ..id }.is_virtio_mem());
        assert_eq!(SenseId::decode(&data[..6]), None);
        assert_eq!(SenseId::decode(&[0; 8]), None);
    }

    #[test]
    fn virtio_payloads() {
        assert_eq!(virtio_rev(1), [0, 1, 0, 0]);
        // s390x.md §5.4: virtio-mem offers word 0 = 0x30000002; features are little-endian.
        assert_eq!(feature_desc(0x3000_0002, 0), [0x02, 0, 0, 0x30, 0]);
        assert_eq!(feature_word(&feature_desc(0x101, 1)), 0x101);
        assert_eq!(vq_conf(0), [0, 0, 0, 0]);
        assert_eq!(vq_num_max(&[0, 0, 0, 128]), 128);
        let vq = set_vq(0, 8, 0x1000, 0x1080, 0x2000);
        assert_eq!(&vq[0..8], &0x1000u64.to_be_bytes());
        assert_eq!(&vq[8..16], &[0, 0, 0, 0, 0, 0, 0, 8]);
        assert_eq!(&vq[16..24], &0x1080u64.to_be_bytes());
        assert_eq!(&vq[24..32], &0x2000u64.to_be_bytes());
    }
}
