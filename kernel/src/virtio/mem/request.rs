//! virtio-mem requests (24 bytes, device-readable) and responses (10 bytes,
//! device-writable), little-endian.

use core::fmt;
use core::ops::Range;

/// Bytes of a request.
pub const REQUEST_LEN: usize = 24;
/// Bytes of a response.
pub const RESPONSE_LEN: usize = 10;

/// What the driver asks of the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// Plug `nb_blocks` blocks from `addr`.
    Plug {
        /// First byte (block-aligned).
        addr: u64,
        /// Blocks.
        nb_blocks: u16,
    },
    /// Unplug `nb_blocks` blocks from `addr`.
    Unplug {
        /// First byte (block-aligned).
        addr: u64,
        /// Blocks.
        nb_blocks: u16,
    },
    /// Unplug everything (and shrink the usable region when requested is 0).
    UnplugAll,
    /// Ask whether `nb_blocks` blocks from `addr` are plugged.
    State {
        /// First byte (block-aligned).
        addr: u64,
        /// Blocks.
        nb_blocks: u16,
    },
}

impl Request {
    /// PLUG of `range` in blocks of `block_size`; `None` if it is not whole blocks or
    /// more than a request can carry (65535 blocks).
    pub fn plug(range: &Range<u64>, block_size: u64) -> Option<Self> {
        let (addr, nb_blocks) = blocks(range, block_size)?;
        Some(Request::Plug { addr, nb_blocks })
    }

    /// UNPLUG of `range` (see [`Request::plug`]).
    pub fn unplug(range: &Range<u64>, block_size: u64) -> Option<Self> {
        let (addr, nb_blocks) = blocks(range, block_size)?;
        Some(Request::Unplug { addr, nb_blocks })
    }

    /// The wire form.
    pub fn encode(&self) -> [u8; REQUEST_LEN] {
        let (ty, addr, nb): (u16, u64, u16) = match *self {
            Request::Plug { addr, nb_blocks } => (0, addr, nb_blocks),
            Request::Unplug { addr, nb_blocks } => (1, addr, nb_blocks),
            Request::UnplugAll => (2, 0, 0),
            Request::State { addr, nb_blocks } => (3, addr, nb_blocks),
        };
        let mut b = [0u8; REQUEST_LEN];
        b[0..2].copy_from_slice(&ty.to_le_bytes());
        b[8..16].copy_from_slice(&addr.to_le_bytes());
        b[16..18].copy_from_slice(&nb.to_le_bytes());
        b
    }
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Request::Plug { addr, nb_blocks } => {
                write!(f, "plug addr={addr:#x} blocks={nb_blocks}")
            }
            Request::Unplug { addr, nb_blocks } => {
                write!(f, "unplug addr={addr:#x} blocks={nb_blocks}")
            }
            Request::UnplugAll => write!(f, "unplug-all"),
            Request::State { addr, nb_blocks } => {
                write!(f, "state addr={addr:#x} blocks={nb_blocks}")
            }
        }
    }
}

fn blocks(range: &Range<u64>, block_size: u64) -> Option<(u64, u16)> {
    let len = range.end.checked_sub(range.start)?;
    let aligned = range.start.is_multiple_of(block_size) && len.is_multiple_of(block_size);
    if !aligned || len == 0 {
        return None;
    }
    Some((range.start, u16::try_from(len / block_size).ok()?))
}

/// How the device answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Response {
    /// Done.
    Ack,
    /// Refused for now (e.g. PLUG beyond `requested_size`).
    Nack,
    /// Try again later (migration in progress).
    Busy,
    /// A bad request (range outside the usable region, wrong state).
    Error,
    /// A type the spec does not define.
    Unknown(u16),
}

impl fmt::Display for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Response::Ack => write!(f, "ack"),
            Response::Nack => write!(f, "nack"),
            Response::Busy => write!(f, "busy"),
            Response::Error => write!(f, "error"),
            Response::Unknown(t) => write!(f, "unknown-{t}"),
        }
    }
}

/// The state a STATE request reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockState {
    /// Every block plugged.
    Plugged,
    /// Every block unplugged.
    Unplugged,
    /// Some of each.
    Mixed,
    /// A value the spec does not define.
    Unknown(u16),
}

/// Decodes a response: its type, and the block state (meaningful after STATE only).
pub fn decode_response(b: &[u8; RESPONSE_LEN]) -> (Response, BlockState) {
    let ty = match u16::from_le_bytes([b[0], b[1]]) {
        0 => Response::Ack,
        1 => Response::Nack,
        2 => Response::Busy,
        3 => Response::Error,
        t => Response::Unknown(t),
    };
    let state = match u16::from_le_bytes([b[8], b[9]]) {
        0 => BlockState::Plugged,
        1 => BlockState::Unplugged,
        2 => BlockState::Mixed,
        s => BlockState::Unknown(s),
    };
    (ty, state)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn encodes_the_documented_layout() {
        let plug = Request::plug(&(0x4000_0000..0x5000_0000), 2 * MIB).unwrap();
        assert_eq!(
            plug,
            Request::Plug {
                addr: 0x4000_0000,
                nb_blocks: 128
            }
        );
        let b = plug.encode();
        assert_eq!(&b[0..8], &[0; 8], "type PLUG and padding");
        assert_eq!(&b[8..16], &0x4000_0000u64.to_le_bytes());
        assert_eq!(&b[16..18], &[128, 0]);
        assert_eq!(&b[18..], &[0; 6]);
        let unplug = Request::unplug(&(0x4020_0000..0x4040_0000), 2 * MIB).unwrap();
        assert_eq!(unplug.encode()[0..2], [1, 0]);
        assert_eq!(unplug.encode()[16..18], [1, 0]);
        assert_eq!(Request::UnplugAll.encode(), {
            let mut e = [0u8; REQUEST_LEN];
            e[0] = 2;
            e
        });
        let state = Request::State {
            addr: 0x4000_0000,
            nb_blocks: 2,
        };
        assert_eq!(state.encode()[0..2], [3, 0]);
        assert_eq!(plug.to_string(), "plug addr=0x40000000 blocks=128");
    }

    #[test]
    fn refuses_ranges_a_request_cannot_carry() {
        assert_eq!(Request::plug(&(0x4010_0000..0x4030_0000), 2 * MIB), None);
        assert_eq!(Request::plug(&(0x4000_0000..0x4000_0000), 2 * MIB), None);
        let backwards = Range {
            start: 0x4000_0000,
            end: 0x3000_0000,
        };
        assert_eq!(Request::plug(&backwards, 2 * MIB), None);
        assert_eq!(
            Request::plug(&(0..65536 * 4096), 4096),
            None,
            "65536 blocks"
        );
        assert!(Request::plug(&(0..65535 * 4096), 4096).is_some());
    }

    #[test]
    fn decodes_responses() {
        let mut b = [0u8; RESPONSE_LEN];
        assert_eq!(decode_response(&b), (Response::Ack, BlockState::Plugged));
        b[0] = 1;
        b[8] = 1;
        assert_eq!(decode_response(&b), (Response::Nack, BlockState::Unplugged));
        b[0] = 2;
        b[8] = 2;
        assert_eq!(decode_response(&b), (Response::Busy, BlockState::Mixed));
        b[0] = 3;
        assert_eq!(decode_response(&b).0, Response::Error);
        b[0] = 9;
        b[8] = 7;
        assert_eq!(
            decode_response(&b),
            (Response::Unknown(9), BlockState::Unknown(7))
        );
    }
}
