//! Unsigned LEB128 varints (the multiformats `uvarint`), as used by
//! multistream-select, protobuf and identify's length-delimited messages.
//!
//! Decoding is strict where the spec is strict: at most 9 bytes for a `u64`
//! (the multiformats limit) and no trailing zero bytes (minimal encoding).

use thiserror::Error;

/// The longest uvarint the multiformats spec allows (63 bits of payload).
pub const MAX_LEN_U64: usize = 9;

/// Why a varint could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum VarintError {
    /// More than [`MAX_LEN_U64`] bytes, or a value above the requested maximum.
    #[error("varint overflows")]
    Overflow,
    /// The encoding has a redundant trailing zero byte.
    #[error("varint is not minimally encoded")]
    NotMinimal,
}

/// Appends the uvarint encoding of `value` to `out`.
pub fn encode(mut value: u64, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Returns the number of bytes [`encode`] writes for `value`.
pub fn encoded_len(value: u64) -> usize {
    let bits = 64 - (value | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Decodes a uvarint from the front of `buf`.
///
/// Returns `Ok(None)` when `buf` ends before the varint does (read more),
/// `Ok(Some((value, consumed)))` on success.
pub fn decode(buf: &[u8]) -> Result<Option<(u64, usize)>, VarintError> {
    let mut value: u64 = 0;
    for (i, &byte) in buf.iter().enumerate() {
        if i == MAX_LEN_U64 {
            return Err(VarintError::Overflow);
        }
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            if byte == 0 && i > 0 {
                return Err(VarintError::NotMinimal);
            }
            return Ok(Some((value, i + 1)));
        }
    }
    if buf.len() >= MAX_LEN_U64 {
        return Err(VarintError::Overflow);
    }
    Ok(None)
}

/// Like [`decode`], but accepts non-minimal encodings, as protobuf decoders
/// conventionally do (be liberal in what you accept).
pub fn decode_lenient(buf: &[u8]) -> Result<Option<(u64, usize)>, VarintError> {
    let mut value: u64 = 0;
    for (i, &byte) in buf.iter().enumerate() {
        if i == 10 {
            return Err(VarintError::Overflow);
        }
        value |= u64::from(byte & 0x7f).checked_shl(7 * i as u32).unwrap_or(0);
        if byte & 0x80 == 0 {
            return Ok(Some((value, i + 1)));
        }
    }
    if buf.len() >= 10 {
        return Err(VarintError::Overflow);
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_encodings() {
        let cases: &[(u64, &[u8])] = &[
            (0, &[0x00]),
            (1, &[0x01]),
            (127, &[0x7f]),
            (128, &[0x80, 0x01]),
            (300, &[0xac, 0x02]),
            (16384, &[0x80, 0x80, 0x01]),
        ];
        for &(value, bytes) in cases {
            let mut out = Vec::new();
            encode(value, &mut out);
            assert_eq!(out, bytes);
            assert_eq!(encoded_len(value), bytes.len());
            assert_eq!(decode(bytes), Ok(Some((value, bytes.len()))));
        }
    }

    #[test]
    fn rejects_hostile_encodings() {
        assert_eq!(decode(&[0x80, 0x00]), Err(VarintError::NotMinimal));
        assert_eq!(decode(&[0xff; 10]), Err(VarintError::Overflow));
        assert_eq!(decode(&[0xff; 9]), Err(VarintError::Overflow));
        assert_eq!(decode(&[0xff; 3]), Ok(None));
        assert_eq!(decode(&[]), Ok(None));
    }

    proptest! {
        #[test]
        fn roundtrip(value in 0u64..(1 << 63)) {
            let mut out = Vec::new();
            encode(value, &mut out);
            prop_assert_eq!(out.len(), encoded_len(value));
            prop_assert_eq!(decode(&out), Ok(Some((value, out.len()))));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..16)) {
            let _ = decode(&bytes);
        }
    }
}
