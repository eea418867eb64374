//! The 12-byte yamux frame header.
//!
//! > Each frame contains a header like: Version (8 bits), Type (8 bits),
//! > Flags (16 bits), StreamID (32 bits), Length (32 bits). This means that
//! > each header has a 12 byte overhead. All fields are encoded in network
//! > order (big endian).
//!
//! Only Data frames carry a payload (`length` bytes after the header). For the
//! other types `length` is a value: the window delta (Window Update), an opaque
//! value echoed back (Ping) or an error code (Go Away).

use std::fmt;
use std::ops::BitOr;

/// Length of an encoded header in bytes.
pub const HEADER_LEN: usize = 12;

/// The only protocol version: "At the current time, the field is always set
/// to 0, to indicate the initial version."
pub const VERSION: u8 = 0;

/// The frame type (second header byte).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FrameType {
    /// `0x0` Data: "Used to transmit data. May transmit zero length payloads
    /// depending on the flags."
    Data,
    /// `0x1` Window Update: "Used to updated the senders receive window size."
    WindowUpdate,
    /// `0x2` Ping: "Used to measure RTT. It can also be used to heart-beat and
    /// do keep-alives over TCP."
    Ping,
    /// `0x3` Go Away: "Used to close a session."
    GoAway,
}

impl FrameType {
    /// The wire value.
    pub fn to_u8(self) -> u8 {
        match self {
            FrameType::Data => 0,
            FrameType::WindowUpdate => 1,
            FrameType::Ping => 2,
            FrameType::GoAway => 3,
        }
    }

    /// Parses a wire value.
    pub fn from_u8(value: u8) -> Option<FrameType> {
        Some(match value {
            0 => FrameType::Data,
            1 => FrameType::WindowUpdate,
            2 => FrameType::Ping,
            3 => FrameType::GoAway,
            _ => return None,
        })
    }
}

/// The 16-bit flag field. Unknown bits are kept on decode (so decoding is
/// lossless) and ignored by the session.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(u16);

impl Flags {
    /// No flag set.
    pub const NONE: Flags = Flags(0);
    /// `0x1` SYN: "Signals the start of a new stream. [...] Also sent with a
    /// ping to indicate outbound."
    pub const SYN: Flags = Flags(0x1);
    /// `0x2` ACK: "Acknowledges the start of a new stream. [...] Also sent with
    /// a ping to indicate response."
    pub const ACK: Flags = Flags(0x2);
    /// `0x4` FIN: "Performs a half-close of a stream."
    pub const FIN: Flags = Flags(0x4);
    /// `0x8` RST: "Reset a stream immediately."
    pub const RST: Flags = Flags(0x8);

    /// Flags from raw bits (unknown bits are preserved).
    pub const fn from_bits(bits: u16) -> Flags {
        Flags(bits)
    }

    /// The raw bits.
    pub const fn bits(self) -> u16 {
        self.0
    }

    /// Whether every bit of `other` is set in `self`.
    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

impl fmt::Debug for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (flag, name) in
            [(Flags::SYN, "SYN"), (Flags::ACK, "ACK"), (Flags::FIN, "FIN"), (Flags::RST, "RST")]
        {
            if self.contains(flag) {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        let unknown = self.0 & !0xf;
        if unknown != 0 {
            if !first {
                f.write_str("|")?;
            }
            write!(f, "{unknown:#x}")?;
            first = false;
        }
        if first {
            f.write_str("NONE")?;
        }
        Ok(())
    }
}

/// A Go Away error code.
///
/// > The Length should be set to one of the following to provide an error
/// > code: 0x0 Normal termination, 0x1 Protocol error, 0x2 Internal error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GoAwayCode {
    /// `0x0` normal termination.
    Normal,
    /// `0x1` protocol error.
    ProtocolError,
    /// `0x2` internal error.
    InternalError,
    /// Any other value (not defined by the spec; kept verbatim).
    Other(u32),
}

impl GoAwayCode {
    /// The wire value.
    pub fn to_u32(self) -> u32 {
        match self {
            GoAwayCode::Normal => 0,
            GoAwayCode::ProtocolError => 1,
            GoAwayCode::InternalError => 2,
            GoAwayCode::Other(code) => code,
        }
    }

    /// Parses a wire value (never fails: unknown codes become [`GoAwayCode::Other`]).
    pub fn from_u32(code: u32) -> GoAwayCode {
        match code {
            0 => GoAwayCode::Normal,
            1 => GoAwayCode::ProtocolError,
            2 => GoAwayCode::InternalError,
            other => GoAwayCode::Other(other),
        }
    }
}

impl fmt::Display for GoAwayCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GoAwayCode::Normal => f.write_str("normal termination"),
            GoAwayCode::ProtocolError => f.write_str("protocol error"),
            GoAwayCode::InternalError => f.write_str("internal error"),
            GoAwayCode::Other(code) => write!(f, "unknown code {code}"),
        }
    }
}

/// A header that could not be decoded. Either is a connection-level protocol
/// error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The version byte was not 0.
    #[error("unsupported yamux version {0}")]
    UnsupportedVersion(u8),
    /// The type byte was not 0..=3.
    #[error("unknown yamux frame type {0}")]
    UnknownType(u8),
}

/// A decoded frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Header {
    /// Frame type.
    pub ty: FrameType,
    /// Flags.
    pub flags: Flags,
    /// Stream id (0 = the session).
    pub stream_id: u32,
    /// Payload length (Data), window delta (Window Update), opaque value
    /// (Ping) or error code (Go Away).
    pub length: u32,
}

impl Header {
    /// A Data header announcing `len` payload bytes.
    pub fn data(stream_id: u32, flags: Flags, len: u32) -> Header {
        Header { ty: FrameType::Data, flags, stream_id, length: len }
    }

    /// A Window Update header granting `delta` more bytes.
    pub fn window_update(stream_id: u32, flags: Flags, delta: u32) -> Header {
        Header { ty: FrameType::WindowUpdate, flags, stream_id, length: delta }
    }

    /// A ping request (`ack == false`, flag SYN) or reply (flag ACK) on the
    /// session id 0.
    pub fn ping(ack: bool, opaque: u32) -> Header {
        Header {
            ty: FrameType::Ping,
            flags: if ack { Flags::ACK } else { Flags::SYN },
            stream_id: 0,
            length: opaque,
        }
    }

    /// A Go Away header on the session id 0.
    pub fn go_away(code: GoAwayCode) -> Header {
        Header { ty: FrameType::GoAway, flags: Flags::NONE, stream_id: 0, length: code.to_u32() }
    }

    /// Encodes the header (big endian, version 0).
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0] = VERSION;
        out[1] = self.ty.to_u8();
        out[2..4].copy_from_slice(&self.flags.bits().to_be_bytes());
        out[4..8].copy_from_slice(&self.stream_id.to_be_bytes());
        out[8..12].copy_from_slice(&self.length.to_be_bytes());
        out
    }

    /// Decodes a header.
    ///
    /// # Errors
    ///
    /// [`FrameError`] for a version other than 0 or an unknown type.
    pub fn decode(bytes: &[u8; HEADER_LEN]) -> Result<Header, FrameError> {
        if bytes[0] != VERSION {
            return Err(FrameError::UnsupportedVersion(bytes[0]));
        }
        let ty = FrameType::from_u8(bytes[1]).ok_or(FrameError::UnknownType(bytes[1]))?;
        Ok(Header {
            ty,
            flags: Flags(u16::from_be_bytes([bytes[2], bytes[3]])),
            stream_id: u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
            length: u32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn enc(h: Header) -> String {
        hex::encode(h.encode())
    }

    #[test]
    fn data_syn_stream_1_len_5() {
        let h = Header::data(1, Flags::SYN, 5);
        assert_eq!(enc(h), "000000010000000100000005");
        assert_eq!(Header::decode(&h.encode()), Ok(h));
    }

    #[test]
    fn every_type_and_flag_byte_exact() {
        let cases = [
            (Header::data(3, Flags::NONE, 0), "000000000000000300000000"),
            (Header::data(2, Flags::ACK, 16), "000000020000000200000010"),
            (Header::data(7, Flags::FIN, 0), "000000040000000700000000"),
            (Header::data(9, Flags::RST, 0), "000000080000000900000000"),
            (Header::window_update(1, Flags::SYN, 0x0004_0000), "000100010000000100040000"),
            (Header::window_update(4, Flags::ACK | Flags::FIN, 1), "000100060000000400000001"),
            (Header::window_update(0xffff_fffe, Flags::RST, 0), "00010008fffffffe00000000"),
            (Header::ping(false, 0x0102_0304), "000200010000000001020304"),
            (Header::ping(true, 0x0102_0304), "000200020000000001020304"),
            (Header::go_away(GoAwayCode::Normal), "000300000000000000000000"),
            (Header::go_away(GoAwayCode::ProtocolError), "000300000000000000000001"),
            (Header::go_away(GoAwayCode::InternalError), "000300000000000000000002"),
        ];
        for (h, hex) in cases {
            assert_eq!(enc(h), hex, "{h:?}");
            let bytes: [u8; 12] = hex::decode(hex).unwrap().try_into().unwrap();
            assert_eq!(Header::decode(&bytes), Ok(h));
        }
    }

    #[test]
    fn bad_version_and_type() {
        let mut b = Header::data(1, Flags::NONE, 0).encode();
        b[0] = 1;
        assert_eq!(Header::decode(&b), Err(FrameError::UnsupportedVersion(1)));
        b[0] = 0;
        b[1] = 4;
        assert_eq!(Header::decode(&b), Err(FrameError::UnknownType(4)));
    }

    #[test]
    fn flags_debug() {
        assert_eq!(format!("{:?}", Flags::SYN | Flags::FIN), "SYN|FIN");
        assert_eq!(format!("{:?}", Flags::NONE), "NONE");
        assert_eq!(format!("{:?}", Flags::from_bits(0x12)), "ACK|0x10");
    }

    fn arb_header() -> impl Strategy<Value = Header> {
        (0u8..4, any::<u16>(), any::<u32>(), any::<u32>()).prop_map(|(t, f, id, len)| Header {
            ty: FrameType::from_u8(t).unwrap(),
            flags: Flags::from_bits(f),
            stream_id: id,
            length: len,
        })
    }

    proptest! {
        #[test]
        fn decode_encode_identity(h in arb_header()) {
            prop_assert_eq!(Header::decode(&h.encode()), Ok(h));
        }

        #[test]
        fn decode_arbitrary_bytes_never_panics(b in any::<[u8; 12]>()) {
            if let Ok(h) = Header::decode(&b) {
                prop_assert_eq!(h.encode(), b);
            }
        }

        #[test]
        fn go_away_code_round_trip(c in any::<u32>()) {
            prop_assert_eq!(GoAwayCode::from_u32(c).to_u32(), c);
        }
    }
}
