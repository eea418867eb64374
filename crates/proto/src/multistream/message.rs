//! The multistream-select message codec.
//!
//! > Every message is a UTF-8 string terminated by a newline, prefixed by its
//! > length (including the newline) as an unsigned varint.
//! > (multiformats/multistream-select, "Protocol")

use super::{ProtocolError, HEADER, MAX_MESSAGE_LEN};
use crate::varint;

/// One multistream-select 1.0 message.
///
/// The wire form is `uvarint(len) ‖ text ‖ '\n'`, where `len` counts the
/// text and the newline. Lists of protocols (the answer to `ls` in old
/// implementations) are not decoded: peerswarm never sends `ls`, so it never
/// expects one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// The protocol header, `/multistream/1.0.0`. Both sides send it first.
    Header,
    /// A protocol ID: a proposal (dialer) or its echo (listener).
    Protocol(String),
    /// `na`: the listener does not support the proposed protocol (or `ls`).
    NotAvailable,
    /// `ls`: a request for the listener's protocols. Optional and deprecated;
    /// peerswarm answers it with `na`.
    ListProtocols,
}

impl Message {
    /// The message's text, without the newline.
    fn text(&self) -> &str {
        match self {
            Message::Header => HEADER,
            Message::Protocol(p) => p,
            Message::NotAvailable => "na",
            Message::ListProtocols => "ls",
        }
    }

    /// The number of bytes [`Message::encode`] appends.
    pub fn encoded_len(&self) -> usize {
        let len = self.text().len() + 1;
        varint::encoded_len(len as u64) + len
    }

    /// Appends the wire form of the message to `out`.
    ///
    /// Encoding never fails; a [`Message::Protocol`] whose text does not
    /// survive [`Message::decode`] (longer than [`MAX_MESSAGE_LEN`] minus the
    /// newline, or spelling one of the reserved words) is the caller's
    /// business. The state machines only send names validated by
    /// [`validate_protocol`].
    pub fn encode(&self, out: &mut Vec<u8>) {
        let text = self.text();
        varint::encode(text.len() as u64 + 1, out);
        out.extend_from_slice(text.as_bytes());
        out.push(b'\n');
    }

    /// Whether `partial`, the start of an incomplete first message, can
    /// still turn out to be the header.
    ///
    /// The header has one wire form (20 bytes, the length prefix is strict),
    /// so garbage whose first byte announces a long message (a private
    /// network peer with another key, or a different protocol) can be
    /// refused at once instead of waiting for bytes that may never come.
    pub(crate) fn could_be_header(partial: &[u8]) -> bool {
        const HEADER_WIRE: &[u8] = b"\x13/multistream/1.0.0\n";
        let n = partial.len().min(HEADER_WIRE.len());
        partial[..n] == HEADER_WIRE[..n]
    }

    /// Decodes one message from the front of `buf`.
    ///
    /// Returns `Ok(None)` when `buf` holds only part of a message (read
    /// more), or `Ok(Some((message, consumed)))`. The length prefix is checked
    /// against [`MAX_MESSAGE_LEN`] before the body arrives, so a caller never
    /// has to buffer more than `MAX_MESSAGE_LEN + 2` bytes to make progress.
    pub fn decode(buf: &[u8]) -> Result<Option<(Message, usize)>, ProtocolError> {
        let (len, prefix) = match varint::decode(buf) {
            Ok(Some(v)) => v,
            Ok(None) => return Ok(None),
            Err(_) => return Err(ProtocolError::InvalidLength),
        };
        if len > MAX_MESSAGE_LEN as u64 {
            return Err(ProtocolError::MessageTooLong { len, max: MAX_MESSAGE_LEN });
        }
        // Bounded by `MAX_MESSAGE_LEN` just above, so this cannot truncate.
        let len = len as usize;
        let Some(body) = buf.get(prefix..prefix + len) else {
            return Ok(None);
        };
        let Some((&b'\n', text)) = body.split_last() else {
            return Err(ProtocolError::MissingNewline);
        };
        let text = std::str::from_utf8(text).map_err(|_| ProtocolError::InvalidUtf8)?;
        let message = match text {
            HEADER => Message::Header,
            "na" => Message::NotAvailable,
            "ls" => Message::ListProtocols,
            other => Message::Protocol(other.to_owned()),
        };
        Ok(Some((message, prefix + len)))
    }
}

/// Checks that `protocol` can be proposed: non-empty, at most
/// `MAX_MESSAGE_LEN - 1` bytes, no newline, and not one of the words the
/// protocol reserves (`/multistream/1.0.0`, `na`, `ls`).
pub fn validate_protocol(protocol: &str) -> Result<(), InvalidProtocol> {
    if protocol.is_empty() {
        return Err(InvalidProtocol::Empty);
    }
    if protocol.len() >= MAX_MESSAGE_LEN {
        return Err(InvalidProtocol::TooLong { len: protocol.len(), max: MAX_MESSAGE_LEN - 1 });
    }
    if protocol.contains('\n') {
        return Err(InvalidProtocol::Newline);
    }
    if matches!(protocol, HEADER | "na" | "ls") {
        return Err(InvalidProtocol::Reserved);
    }
    Ok(())
}

/// Why a local protocol name cannot be proposed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidProtocol {
    /// The name is empty.
    #[error("protocol name is empty")]
    Empty,
    /// The name does not fit in one message.
    #[error("protocol name is {len} bytes, more than {max}")]
    TooLong {
        /// The name's length in bytes.
        len: usize,
        /// The longest name allowed.
        max: usize,
    },
    /// The name contains a newline, which would end the message early.
    #[error("protocol name contains a newline")]
    Newline,
    /// The name is one of multistream's own words.
    #[error("protocol name is reserved by multistream-select")]
    Reserved,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encode(m: &Message) -> Vec<u8> {
        let mut out = Vec::new();
        m.encode(&mut out);
        assert_eq!(out.len(), m.encoded_len());
        out
    }

    const HEADER_BYTES: &str = "13 2f6d756c746973747265616d2f312e302e30 0a";

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).expect("test hex")
    }

    #[test]
    fn header_bytes() {
        assert_eq!(encode(&Message::Header), unhex(HEADER_BYTES));
        assert_eq!(Message::decode(&unhex(HEADER_BYTES)), Ok(Some((Message::Header, 20))));
    }

    #[test]
    fn could_be_header_accepts_exactly_the_prefixes_of_the_header() {
        let header = unhex(HEADER_BYTES);
        for end in 0..=header.len() {
            assert!(Message::could_be_header(&header[..end]), "prefix of {end} bytes");
        }
        let mut longer = header.clone();
        longer.extend_from_slice(b"\x07/noise\n");
        assert!(Message::could_be_header(&longer));
        assert!(!Message::could_be_header(b"G"));
        assert!(!Message::could_be_header(b"\x13/multistream/2"));
        assert!(!Message::could_be_header(&[0x93, 0x00]), "non-minimal length prefix");
    }

    #[test]
    fn na_and_ls_bytes() {
        assert_eq!(encode(&Message::NotAvailable), [0x03, b'n', b'a', b'\n']);
        assert_eq!(encode(&Message::ListProtocols), [0x03, b'l', b's', b'\n']);
        assert_eq!(Message::decode(&[0x03, b'n', b'a', b'\n']), Ok(Some((Message::NotAvailable, 4))));
        assert_eq!(Message::decode(&[0x03, b'l', b's', b'\n']), Ok(Some((Message::ListProtocols, 4))));
    }

    #[test]
    fn protocol_bytes() {
        // "/noise\n" is 7 bytes.
        let m = Message::Protocol("/noise".into());
        assert_eq!(encode(&m), unhex("07 2f6e6f697365 0a"));
        // "/yamux/1.0.0\n" is 13 bytes.
        let m = Message::Protocol("/yamux/1.0.0".into());
        assert_eq!(encode(&m), unhex("0d 2f79616d75782f312e302e30 0a"));
    }

    #[test]
    fn two_byte_length_prefix() {
        let name = "/".repeat(200);
        let bytes = encode(&Message::Protocol(name.clone()));
        // 201 = 0xc9 → c9 01
        assert_eq!(&bytes[..2], &[0xc9, 0x01]);
        assert_eq!(Message::decode(&bytes), Ok(Some((Message::Protocol(name), 203))));
    }

    #[test]
    fn partial_input_asks_for_more() {
        let bytes = unhex(HEADER_BYTES);
        for end in 0..bytes.len() {
            assert_eq!(Message::decode(&bytes[..end]), Ok(None), "prefix of {end} bytes");
        }
        assert_eq!(Message::decode(&[0x80]), Ok(None));
    }

    #[test]
    fn trailing_bytes_are_left_alone() {
        let mut bytes = unhex(HEADER_BYTES);
        bytes.extend_from_slice(b"\x03na\n");
        assert_eq!(Message::decode(&bytes), Ok(Some((Message::Header, 20))));
    }

    #[test]
    fn rejects_oversized_length_before_the_body() {
        // 1025 = 0x81 0x08
        assert_eq!(
            Message::decode(&[0x81, 0x08]),
            Err(ProtocolError::MessageTooLong { len: 1025, max: MAX_MESSAGE_LEN })
        );
        let mut at_limit = vec![0x80, 0x08];
        at_limit.extend(std::iter::repeat_n(b'a', 1023));
        at_limit.push(b'\n');
        assert!(matches!(Message::decode(&at_limit), Ok(Some((Message::Protocol(_), 1026)))));
    }

    #[test]
    fn rejects_missing_newline() {
        assert_eq!(Message::decode(b"\x03nax"), Err(ProtocolError::MissingNewline));
        assert_eq!(Message::decode(b"\x00"), Err(ProtocolError::MissingNewline));
    }

    #[test]
    fn rejects_non_utf8() {
        assert_eq!(Message::decode(b"\x03\xff\xfe\n"), Err(ProtocolError::InvalidUtf8));
    }

    #[test]
    fn rejects_bad_varint() {
        assert_eq!(Message::decode(&[0x80, 0x00]), Err(ProtocolError::InvalidLength));
        assert_eq!(Message::decode(&[0xff; 9]), Err(ProtocolError::InvalidLength));
    }

    #[test]
    fn validates_local_names() {
        assert_eq!(validate_protocol("/noise"), Ok(()));
        assert_eq!(validate_protocol(""), Err(InvalidProtocol::Empty));
        assert_eq!(validate_protocol("/a\n"), Err(InvalidProtocol::Newline));
        assert_eq!(validate_protocol("na"), Err(InvalidProtocol::Reserved));
        assert_eq!(validate_protocol(HEADER), Err(InvalidProtocol::Reserved));
        assert_eq!(validate_protocol(&"a".repeat(1023)), Ok(()));
        assert_eq!(
            validate_protocol(&"a".repeat(1024)),
            Err(InvalidProtocol::TooLong { len: 1024, max: 1023 })
        );
    }

    fn any_message() -> impl Strategy<Value = Message> {
        prop_oneof![
            Just(Message::Header),
            Just(Message::NotAvailable),
            Just(Message::ListProtocols),
            "[^\n]{0,300}"
                .prop_filter("reserved words", |s| validate_protocol(s).is_ok())
                .prop_map(Message::Protocol),
        ]
    }

    proptest! {
        #[test]
        fn roundtrip(m in any_message()) {
            let bytes = encode(&m);
            prop_assert_eq!(Message::decode(&bytes), Ok(Some((m, bytes.len()))));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(Some((_, used))) = Message::decode(&bytes) {
                prop_assert!(used <= bytes.len());
            }
        }
    }
}
