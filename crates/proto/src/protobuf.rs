//! A minimal protobuf wire-format reader and writer.
//!
//! libp2p's handshake and protocol messages (Noise payload, plaintext
//! exchange, identify) are small proto2/proto3 messages. Writing the few
//! fields by hand keeps encodings deterministic (fields in tag order, minimal
//! varints) and keeps the decoder's behaviour on hostile input in plain sight:
//! every length is checked against the remaining input, unknown fields are
//! skipped, nothing allocates beyond the input's own size.

use crate::varint;
use thiserror::Error;

/// The wire type of a protobuf field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireType {
    /// Varint-encoded integer (wire type 0).
    Varint,
    /// 8 fixed bytes (wire type 1).
    Fixed64,
    /// Length-delimited bytes, string or sub-message (wire type 2).
    Len,
    /// 4 fixed bytes (wire type 5).
    Fixed32,
}

/// Why a protobuf message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// A varint was malformed.
    #[error("bad varint: {0}")]
    Varint(#[from] varint::VarintError),
    /// The input ended inside a field.
    #[error("message truncated")]
    Truncated,
    /// A wire type this decoder does not know (groups, or 6 and 7).
    #[error("unsupported wire type {0}")]
    WireType(u8),
    /// Field number 0 is reserved.
    #[error("invalid field number 0")]
    FieldZero,
    /// A field has the wrong wire type for its declared type.
    #[error("field {field} has the wrong wire type")]
    UnexpectedWireType {
        /// The field number.
        field: u32,
    },
    /// A string field is not valid UTF-8.
    #[error("field {field} is not valid utf-8")]
    Utf8 {
        /// The field number.
        field: u32,
    },
}

/// A decoded field: its number and value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValue<'a> {
    /// A varint value.
    Varint(u64),
    /// A length-delimited value.
    Bytes(&'a [u8]),
    /// A fixed-width value (its raw bytes, little-endian).
    Fixed(&'a [u8]),
}

/// Iterates over the fields of an encoded message.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Starts reading `buf` as one message.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    fn varint(&mut self) -> Result<u64, DecodeError> {
        match varint::decode_lenient(self.buf)? {
            Some((value, used)) => {
                self.buf = &self.buf[used..];
                Ok(value)
            }
            None => Err(DecodeError::Truncated),
        }
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], DecodeError> {
        if len > self.buf.len() {
            return Err(DecodeError::Truncated);
        }
        let (head, tail) = self.buf.split_at(len);
        self.buf = tail;
        Ok(head)
    }

    /// Reads the next field, or `None` at the end of the message.
    #[allow(clippy::should_implement_trait)] // fallible, so not `Iterator`-shaped
    pub fn next(&mut self) -> Result<Option<(u32, FieldValue<'a>)>, DecodeError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = u32::try_from(key >> 3).map_err(|_| varint::VarintError::Overflow)?;
        if field == 0 {
            return Err(DecodeError::FieldZero);
        }
        let value = match key & 7 {
            0 => FieldValue::Varint(self.varint()?),
            1 => FieldValue::Fixed(self.take(8)?),
            2 => {
                let len = self.varint()?;
                let len = usize::try_from(len).map_err(|_| DecodeError::Truncated)?;
                FieldValue::Bytes(self.take(len)?)
            }
            5 => FieldValue::Fixed(self.take(4)?),
            other => return Err(DecodeError::WireType(other as u8)),
        };
        Ok(Some((field, value)))
    }
}

impl<'a> FieldValue<'a> {
    /// The value of a length-delimited field, or a wire-type error.
    pub fn bytes(self, field: u32) -> Result<&'a [u8], DecodeError> {
        match self {
            FieldValue::Bytes(b) => Ok(b),
            _ => Err(DecodeError::UnexpectedWireType { field }),
        }
    }

    /// The value of a string field, or a wire-type / UTF-8 error.
    pub fn string(self, field: u32) -> Result<&'a str, DecodeError> {
        std::str::from_utf8(self.bytes(field)?).map_err(|_| DecodeError::Utf8 { field })
    }

    /// The value of a varint field, or a wire-type error.
    pub fn varint(self, field: u32) -> Result<u64, DecodeError> {
        match self {
            FieldValue::Varint(v) => Ok(v),
            _ => Err(DecodeError::UnexpectedWireType { field }),
        }
    }
}

/// Appends protobuf fields to a buffer.
#[derive(Debug, Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty message.
    pub fn new() -> Self {
        Self::default()
    }

    fn key(&mut self, field: u32, wire: u8) {
        varint::encode((u64::from(field) << 3) | u64::from(wire), &mut self.buf);
    }

    /// Writes a varint field.
    pub fn varint(&mut self, field: u32, value: u64) -> &mut Self {
        self.key(field, 0);
        varint::encode(value, &mut self.buf);
        self
    }

    /// Writes a length-delimited field.
    pub fn bytes(&mut self, field: u32, value: &[u8]) -> &mut Self {
        self.key(field, 2);
        varint::encode(value.len() as u64, &mut self.buf);
        self.buf.extend_from_slice(value);
        self
    }

    /// The encoded message.
    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn writes_fields_in_order() {
        let msg = Writer::new().varint(1, 1).bytes(2, b"ab").finish();
        assert_eq!(msg, [0x08, 0x01, 0x12, 0x02, b'a', b'b']);
        let mut r = Reader::new(&msg);
        assert_eq!(r.next(), Ok(Some((1, FieldValue::Varint(1)))));
        assert_eq!(r.next(), Ok(Some((2, FieldValue::Bytes(b"ab")))));
        assert_eq!(r.next(), Ok(None));
    }

    #[test]
    fn rejects_truncated_length() {
        let mut r = Reader::new(&[0x12, 0x05, b'a']);
        assert_eq!(r.next(), Err(DecodeError::Truncated));
        let mut r = Reader::new(&[0x12, 0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert_eq!(r.next(), Err(DecodeError::Truncated));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut r = Reader::new(&bytes);
            while let Ok(Some(_)) = r.next() {}
        }
    }
}
