//! `/plaintext/2.0.0`: peer IDs exchanged in the clear (libp2p/specs
//! `plaintext/plaintext.md`). **For tests only**: nothing is authenticated
//! or encrypted, the remote merely *claims* a key.
//!
//! > Both peers send an `Exchange` message containing their peer ID and
//! > public key, then read the other's. [...] The receiver MUST verify that
//! > the `id` field matches the peer ID derived from `pubkey`.
//!
//! On the wire each side sends `uvarint(len) ‖ Exchange`, where
//!
//! ```text
//! message Exchange {
//!   optional bytes id = 1;      // the sender's peer ID (multihash bytes)
//!   optional bytes pubkey = 2;  // the sender's PublicKey protobuf
//! }
//! ```
//!
//! Interop: rust-libp2p's `libp2p-plaintext` caps the message at 100 bytes,
//! enough for Ed25519 and secp256k1 keys but not for ECDSA or RSA.

use crate::identity::{PeerId, PublicKey};
use crate::protobuf::{self, Reader};
use crate::varint;

/// Protocol ID negotiated with multistream-select.
pub const PROTOCOL: &str = "/plaintext/2.0.0";

/// The largest `Exchange` accepted, in bytes (without the length prefix).
///
/// An RSA-4096 public key protobuf is about 550 bytes and its peer ID 34;
/// 2 KiB leaves room while bounding what an unauthenticated peer can make us
/// allocate.
pub const MAX_EXCHANGE_LEN: usize = 2048;

/// Why a plaintext exchange was rejected. The remote's fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExchangeError {
    /// The length prefix is malformed.
    #[error("invalid length prefix")]
    InvalidLength,
    /// The message is longer than [`MAX_EXCHANGE_LEN`].
    #[error("exchange of {len} bytes exceeds the limit of {max}")]
    TooLong {
        /// The announced length.
        len: u64,
        /// The limit, [`MAX_EXCHANGE_LEN`].
        max: usize,
    },
    /// The protobuf is malformed.
    #[error("malformed exchange message")]
    Malformed,
    /// The `id` field is missing or not a peer ID.
    #[error("missing or invalid peer id")]
    InvalidPeerId,
    /// The `pubkey` field is missing or not a public key.
    #[error("missing or invalid public key")]
    InvalidPublicKey,
    /// `id` is not the peer ID of `pubkey`.
    #[error("peer id {claimed} does not match the public key's {derived}")]
    PeerIdMismatch {
        /// The `id` field (boxed to keep the error small).
        claimed: Box<PeerId>,
        /// The peer ID derived from `pubkey`.
        derived: Box<PeerId>,
    },
}

/// The message each side sends: its peer ID and public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    /// The sender's peer ID; always derived from `public_key` once decoded.
    pub peer_id: PeerId,
    /// The sender's public key.
    pub public_key: PublicKey,
}

impl Exchange {
    /// The exchange announcing `public_key`.
    pub fn new(public_key: PublicKey) -> Self {
        Self { peer_id: public_key.to_peer_id(), public_key }
    }

    /// The protobuf body, fields in tag order.
    pub fn encode(&self) -> Vec<u8> {
        protobuf::Writer::new()
            .bytes(1, &self.peer_id.to_bytes())
            .bytes(2, &self.public_key.encode_protobuf())
            .finish()
    }

    /// The wire form: `uvarint(len) ‖ body`.
    pub fn encode_framed(&self) -> Vec<u8> {
        let body = self.encode();
        let mut out = Vec::with_capacity(body.len() + 2);
        varint::encode(body.len() as u64, &mut out);
        out.extend_from_slice(&body);
        out
    }

    /// Decodes and validates a body: both fields present, and `id` the peer
    /// ID of `pubkey`. Unknown fields are ignored; a repeated field's last
    /// value wins (protobuf semantics).
    pub fn decode(body: &[u8]) -> Result<Self, ExchangeError> {
        if body.len() > MAX_EXCHANGE_LEN {
            return Err(ExchangeError::TooLong { len: body.len() as u64, max: MAX_EXCHANGE_LEN });
        }
        let (mut id, mut key) = (None, None);
        let mut reader = Reader::new(body);
        while let Some((field, value)) = reader.next().map_err(|_| ExchangeError::Malformed)? {
            match field {
                1 => id = Some(value.bytes(1).map_err(|_| ExchangeError::Malformed)?),
                2 => key = Some(value.bytes(2).map_err(|_| ExchangeError::Malformed)?),
                _ => {}
            }
        }
        let claimed = id.and_then(|id| PeerId::from_bytes(id).ok()).ok_or(ExchangeError::InvalidPeerId)?;
        let public_key = key
            .and_then(|key| PublicKey::try_decode_protobuf(key).ok())
            .ok_or(ExchangeError::InvalidPublicKey)?;
        let derived = public_key.to_peer_id();
        if claimed != derived {
            return Err(ExchangeError::PeerIdMismatch {
                claimed: Box::new(claimed),
                derived: Box::new(derived),
            });
        }
        Ok(Self { peer_id: derived, public_key })
    }
}

/// Reads the length prefix at the front of `buf`: `Ok(Some((body_len,
/// prefix_len)))`, or `Ok(None)` if `buf` ends inside the prefix.
///
/// The body length is checked against [`MAX_EXCHANGE_LEN`], so the prefix
/// is at most 2 bytes; a reader can fetch the prefix a byte at a time and
/// then exactly `body_len` bytes, never reading past the exchange.
pub fn decode_length_prefix(buf: &[u8]) -> Result<Option<(usize, usize)>, ExchangeError> {
    match varint::decode(buf) {
        Ok(Some((len, _))) if len > MAX_EXCHANGE_LEN as u64 => {
            Err(ExchangeError::TooLong { len, max: MAX_EXCHANGE_LEN })
        }
        // Bounded by MAX_EXCHANGE_LEN just above.
        Ok(Some((len, used))) => Ok(Some((len as usize, used))),
        Ok(None) if buf.len() >= 2 => Err(ExchangeError::TooLong { len: u64::MAX, max: MAX_EXCHANGE_LEN }),
        Ok(None) => Ok(None),
        Err(_) => Err(ExchangeError::InvalidLength),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::ed25519_from_seed;
    use proptest::prelude::*;

    const SPEC_ED25519_PUBLIC: &str =
        "080112201ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e";

    #[test]
    fn exchange_bytes() {
        let key = PublicKey::try_decode_protobuf(&hex::decode(SPEC_ED25519_PUBLIC).unwrap()).unwrap();
        let framed = Exchange::new(key.clone()).encode_framed();
        // len 78 = 2 + 38 (id: identity multihash 00 24 ‖ key) + 2 + 36 (key)
        let expected =
            format!("4e 0a26 0024{SPEC_ED25519_PUBLIC} 1224 {SPEC_ED25519_PUBLIC}").replace(' ', "");
        assert_eq!(hex::encode(&framed), expected);
        assert_eq!(decode_length_prefix(&framed), Ok(Some((78, 1))));
        assert_eq!(Exchange::decode(&framed[1..]), Ok(Exchange::new(key)));
    }

    #[test]
    fn rejects_mismatched_id() {
        let a = ed25519_from_seed([1; 32]).public();
        let b = ed25519_from_seed([2; 32]).public();
        let forged = Exchange { peer_id: b.to_peer_id(), public_key: a.clone() };
        assert_eq!(
            Exchange::decode(&forged.encode()),
            Err(ExchangeError::PeerIdMismatch {
                claimed: Box::new(b.to_peer_id()),
                derived: Box::new(a.to_peer_id())
            })
        );
    }

    #[test]
    fn rejects_missing_and_garbage_fields() {
        let key = ed25519_from_seed([1; 32]).public();
        let only_key = protobuf::Writer::new().bytes(2, &key.encode_protobuf()).finish();
        assert_eq!(Exchange::decode(&only_key), Err(ExchangeError::InvalidPeerId));
        let only_id = protobuf::Writer::new().bytes(1, &key.to_peer_id().to_bytes()).finish();
        assert_eq!(Exchange::decode(&only_id), Err(ExchangeError::InvalidPublicKey));
        assert_eq!(Exchange::decode(&[0x0a, 0x05, 1]), Err(ExchangeError::Malformed));
        assert_eq!(Exchange::decode(&[0x08, 0x01]), Err(ExchangeError::Malformed), "id as a varint");
    }

    #[test]
    fn length_prefix_limits() {
        assert_eq!(decode_length_prefix(&[]), Ok(None));
        assert_eq!(decode_length_prefix(&[0x80]), Ok(None));
        assert_eq!(decode_length_prefix(&[0x80, 0x10]), Ok(Some((2048, 2))));
        assert_eq!(decode_length_prefix(&[0x81, 0x10]), Err(ExchangeError::TooLong { len: 2049, max: 2048 }));
        assert!(decode_length_prefix(&[0x80, 0x80]).is_err());
        assert_eq!(decode_length_prefix(&[0x80, 0x00]), Err(ExchangeError::InvalidLength));
    }

    proptest! {
        #[test]
        fn roundtrip(seed in any::<[u8; 32]>()) {
            let exchange = Exchange::new(ed25519_from_seed(seed).public());
            let framed = exchange.encode_framed();
            let (len, used) = decode_length_prefix(&framed).unwrap().unwrap();
            prop_assert_eq!(used + len, framed.len());
            prop_assert_eq!(Exchange::decode(&framed[used..]), Ok(exchange));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_length_prefix(&bytes);
            let _ = Exchange::decode(&bytes);
        }
    }
}
