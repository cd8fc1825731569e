//! SCLP control blocks (SCCBs) as big-endian byte layouts: building Write Event Data,
//! Write Event Mask and Read Event Data requests and parsing the answers, plus the
//! Read SCP Info fields we use. Pure byte handling, tested on the host.

/// SCLP command: Read SCP Info (forced).
pub const CMD_READ_SCP_INFO_FORCED: u32 = 0x0012_0001;
/// SCLP command: Read SCP Info.
pub const CMD_READ_SCP_INFO: u32 = 0x0002_0001;
/// SCLP command: Write Event Data.
pub const CMD_WRITE_EVENT_DATA: u32 = 0x0076_0005;
/// SCLP command: Read Event Data.
pub const CMD_READ_EVENT_DATA: u32 = 0x0077_0005;
/// SCLP command: Write Event Mask.
pub const CMD_WRITE_EVENT_MASK: u32 = 0x0078_0005;

/// Response: normal read completion (Read SCP Info).
pub const RESP_READ_OK: u16 = 0x0010;
/// Response: normal completion (event commands).
pub const RESP_OK: u16 = 0x0020;
/// Response: no event data pending.
pub const RESP_NO_DATA: u16 = 0x60f0;

/// Event type of the ASCII (VT220) console.
pub const EVENT_ASCII: u8 = 0x1a;
/// Event mask bit for ASCII console events (send and receive).
pub const MASK_ASCII: u32 = 0x40;
/// Event mask bit for line-mode (message) output, which we also offer to send.
pub const MASK_MSG: u32 = 0x4000_0000;

/// Size of every SCCB we use: one 4 KiB page (Read Event Data requires exactly this).
pub const SCCB_SIZE: usize = 4096;
/// Header (8 bytes) plus event-buffer header (6 bytes).
const WRITE_HEADER: usize = 14;
/// Most text one Write Event Data carries.
pub const MAX_WRITE: usize = SCCB_SIZE - WRITE_HEADER;

fn put_u16(buf: &mut [u8], at: usize, v: u16) {
    buf[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

fn put_u32(buf: &mut [u8], at: usize, v: u32) {
    buf[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

fn get_u16(buf: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([buf[at], buf[at + 1]])
}

fn get_u32(buf: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(buf[at..at + 4].try_into().expect("4-byte slice"))
}

fn get_u64(buf: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(buf[at..at + 8].try_into().expect("8-byte slice"))
}

/// The response code of a completed SCCB.
pub fn response(buf: &[u8]) -> u16 {
    get_u16(buf, 6)
}

/// Clears the whole block and writes a header of `len` bytes.
fn header(buf: &mut [u8], len: usize) {
    buf.fill(0);
    put_u16(buf, 0, len as u16);
}

/// Builds a Write Event Data SCCB carrying `text` (at most [`MAX_WRITE`] bytes).
pub fn build_write(buf: &mut [u8; SCCB_SIZE], text: &[u8]) {
    let n = text.len().min(MAX_WRITE);
    header(buf, WRITE_HEADER + n);
    put_u16(buf, 8, 6 + n as u16);
    buf[10] = EVENT_ASCII;
    buf[WRITE_HEADER..WRITE_HEADER + n].copy_from_slice(&text[..n]);
}

/// Builds a Write Event Mask SCCB (4-byte masks) with the given receive and send masks.
pub fn build_event_mask(buf: &mut [u8; SCCB_SIZE], receive: u32, send: u32) {
    // Header, 2 reserved bytes, the mask length, then four 4-byte masks.
    header(buf, 8 + 2 + 2 + 4 * 4);
    put_u16(buf, 10, 4); // mask length
    put_u32(buf, 12, receive); // control-program receive mask
    put_u32(buf, 16, send); // control-program send mask
}

/// Builds a Read Event Data SCCB: 4096 bytes, variable-length response requested.
pub fn build_read(buf: &mut [u8; SCCB_SIZE]) {
    header(buf, SCCB_SIZE);
    buf[5] = 0x80;
}

/// The characters of an answered Read Event Data, if it carries ASCII console input.
pub fn parse_read(buf: &[u8; SCCB_SIZE]) -> Option<&[u8]> {
    if response(buf) != RESP_OK || buf[10] != EVENT_ASCII {
        return None;
    }
    let evlen = usize::from(get_u16(buf, 8));
    // Event header (6) + the "ASCII data follows" byte (1), then the characters.
    let count = evlen.checked_sub(7)?;
    buf.get(15..15 + count)
}

/// Memory facts from Read SCP Info.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScpInfo {
    /// Storage increment size in bytes.
    pub increment: u64,
    /// Number of increments of initial RAM.
    pub increments: u64,
    /// Number of CPUs configured.
    pub cpus: u16,
}

impl ScpInfo {
    /// Initial RAM in bytes, contiguous from address 0.
    pub const fn ram_bytes(&self) -> u64 {
        self.increment * self.increments
    }
}

/// Parses a Read SCP Info answer; `None` unless the response is normal completion.
pub fn parse_scp_info(buf: &[u8; SCCB_SIZE]) -> Option<ScpInfo> {
    if response(buf) != RESP_READ_OK {
        return None;
    }
    let rnmax = u64::from(get_u16(buf, 8));
    let rnsize = u64::from(buf[10]);
    let increments = if rnmax != 0 { rnmax } else { get_u64(buf, 104) };
    let size_mib = if rnsize != 0 {
        rnsize
    } else {
        u64::from(get_u32(buf, 100))
    };
    Some(ScpInfo {
        increment: size_mib << 20,
        increments,
        cpus: get_u16(buf, 16),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_event_data_layout_matches_qemu() {
        let mut b = [0xaa; SCCB_SIZE];
        build_write(&mut b, b"hi\n");
        assert_eq!(
            &b[..17],
            &[
                0, 17, 0, 0, 0, 0, 0, 0, 0, 9, 0x1a, 0, 0, 0, b'h', b'i', b'\n'
            ]
        );
        assert!(b[17..].iter().all(|&x| x == 0));
    }

    #[test]
    fn overlong_write_is_truncated_to_one_sccb() {
        let mut b = [0; SCCB_SIZE];
        build_write(&mut b, &[b'x'; 5000]);
        assert_eq!(get_u16(&b, 0) as usize, SCCB_SIZE);
    }

    #[test]
    fn read_event_data_request_and_answer() {
        let mut b = [0; SCCB_SIZE];
        build_read(&mut b);
        assert_eq!((get_u16(&b, 0), b[5]), (4096, 0x80));
        assert_eq!(parse_read(&b), None, "no response code yet");
        put_u16(&mut b, 6, RESP_OK);
        put_u16(&mut b, 8, 7 + 4);
        b[10] = EVENT_ASCII;
        b[15..19].copy_from_slice(b"mem\r");
        assert_eq!(parse_read(&b), Some(&b"mem\r"[..]));
        put_u16(&mut b, 6, RESP_NO_DATA);
        assert_eq!(parse_read(&b), None);
    }

    #[test]
    fn short_event_length_is_rejected_not_underflowed() {
        let mut b = [0; SCCB_SIZE];
        put_u16(&mut b, 6, RESP_OK);
        put_u16(&mut b, 8, 3);
        b[10] = EVENT_ASCII;
        assert_eq!(parse_read(&b), None);
    }

    #[test]
    fn scp_info_short_and_long_forms() {
        let mut b = [0; SCCB_SIZE];
        put_u16(&mut b, 6, RESP_READ_OK);
        put_u16(&mut b, 8, 512);
        b[10] = 1;
        put_u16(&mut b, 16, 1);
        let info = parse_scp_info(&b).expect("valid");
        assert_eq!((info.ram_bytes(), info.cpus), (512 << 20, 1));
        put_u16(&mut b, 8, 0);
        b[104..112].copy_from_slice(&(65536u64 * 2).to_be_bytes());
        assert_eq!(parse_scp_info(&b).map(|i| i.ram_bytes()), Some(128 << 30));
    }

    #[test]
    fn event_mask_layout() {
        let mut b = [0; SCCB_SIZE];
        build_event_mask(&mut b, MASK_ASCII, MASK_ASCII | MASK_MSG);
        assert_eq!(get_u16(&b, 0), 28);
        assert_eq!(
            (get_u16(&b, 10), get_u32(&b, 12), get_u32(&b, 16)),
            (4, 0x40, 0x4000_0040)
        );
    }
}
