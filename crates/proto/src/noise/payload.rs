//! The handshake payload carried (encrypted) in messages 2 and 3, and the
//! static-key signature inside it.
//!
//! ```protobuf
//! message NoiseExtensions {
//!     repeated bytes webtransport_certhashes = 1;
//!     repeated string stream_muxers = 2;
//! }
//!
//! message NoiseHandshakePayload {
//!     optional bytes identity_key = 1;
//!     optional bytes identity_sig = 2;
//!     optional NoiseExtensions extensions = 4;
//! }
//! ```

use crate::identity::{PeerId, PublicKey};
use crate::protobuf::{self, Reader};
use thiserror::Error;

/// What the identity key signs: this prefix followed by the sender's
/// 32-byte X25519 static public key.
pub const STATIC_KEY_SIGNATURE_PREFIX: &[u8] = b"noise-libp2p-static-key:";

/// The most `stream_muxers` entries a received payload may carry.
///
/// Real nodes list one to three muxers; the cap bounds what an
/// authenticated-but-hostile peer can make us hold per handshake.
pub const MAX_STREAM_MUXERS: usize = 32;

/// The most `webtransport_certhashes` entries a received payload may carry.
pub const MAX_CERTHASHES: usize = 16;

/// Why a handshake payload could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PayloadError {
    /// The protobuf is malformed.
    #[error("malformed payload: {0}")]
    Protobuf(#[from] protobuf::DecodeError),
    /// A repeated field has more entries than this decoder accepts.
    #[error("payload field {field} has more than {max} entries")]
    TooManyEntries {
        /// The field's name.
        field: &'static str,
        /// The limit.
        max: usize,
    },
}

/// The libp2p extensions of the handshake (message 2 and 3 only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NoiseExtensions {
    /// WebTransport certificate hashes (multihashes). Carried, never
    /// interpreted here.
    pub webtransport_certhashes: Vec<Vec<u8>>,
    /// Stream muxer protocol IDs in the sender's order of preference
    /// (inlined muxer negotiation).
    pub stream_muxers: Vec<String>,
}

/// The protobuf `NoiseHandshakePayload`, as carried in messages 2 and 3.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HandshakePayload {
    /// The sender's identity key, as a libp2p `PublicKey` protobuf.
    pub identity_key: Vec<u8>,
    /// The identity key's signature over
    /// `"noise-libp2p-static-key:" ‖ X25519 static public key`.
    pub identity_sig: Vec<u8>,
    /// The extensions, if the sender included the field.
    pub extensions: Option<NoiseExtensions>,
}

impl NoiseExtensions {
    fn encode(&self) -> Vec<u8> {
        let mut w = protobuf::Writer::new();
        for hash in &self.webtransport_certhashes {
            w.bytes(1, hash);
        }
        for muxer in &self.stream_muxers {
            w.bytes(2, muxer.as_bytes());
        }
        w.finish()
    }

    /// Merges one encoded `NoiseExtensions` into `self` (protobuf semantics:
    /// repeated fields concatenate).
    fn merge(&mut self, buf: &[u8]) -> Result<(), PayloadError> {
        let mut reader = Reader::new(buf);
        while let Some((field, value)) = reader.next()? {
            match field {
                1 => {
                    if self.webtransport_certhashes.len() == MAX_CERTHASHES {
                        return Err(PayloadError::TooManyEntries {
                            field: "webtransport_certhashes",
                            max: MAX_CERTHASHES,
                        });
                    }
                    self.webtransport_certhashes.push(value.bytes(1)?.to_vec());
                }
                2 => {
                    if self.stream_muxers.len() == MAX_STREAM_MUXERS {
                        return Err(PayloadError::TooManyEntries {
                            field: "stream_muxers",
                            max: MAX_STREAM_MUXERS,
                        });
                    }
                    self.stream_muxers.push(value.string(2)?.to_owned());
                }
                _ => {}
            }
        }
        Ok(())
    }
}

impl HandshakePayload {
    /// The protobuf encoding: fields in tag order, absent `extensions`
    /// omitted, `identity_key` and `identity_sig` always written.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = protobuf::Writer::new();
        w.bytes(1, &self.identity_key).bytes(2, &self.identity_sig);
        if let Some(extensions) = &self.extensions {
            w.bytes(4, &extensions.encode());
        }
        w.finish()
    }

    /// Decodes a payload. Unknown fields are skipped; for a repeated
    /// singular field the last value wins, and repeated `extensions`
    /// messages are merged (protobuf semantics). Missing fields decode as
    /// empty: checking them is [`verify`](Self::verify)'s job.
    ///
    /// Allocation is bounded by the input's size (at most one Noise message,
    /// 65 535 bytes) and the entry caps [`MAX_STREAM_MUXERS`] and
    /// [`MAX_CERTHASHES`].
    pub fn decode(buf: &[u8]) -> Result<Self, PayloadError> {
        let mut payload = HandshakePayload::default();
        let mut reader = Reader::new(buf);
        while let Some((field, value)) = reader.next()? {
            match field {
                1 => payload.identity_key = value.bytes(1)?.to_vec(),
                2 => payload.identity_sig = value.bytes(2)?.to_vec(),
                4 => payload.extensions.get_or_insert_with(Default::default).merge(value.bytes(4)?)?,
                _ => {}
            }
        }
        Ok(payload)
    }

    /// The stream muxers the sender listed; empty if it sent no extensions.
    pub fn stream_muxers(&self) -> &[String] {
        self.extensions.as_ref().map_or(&[], |e| &e.stream_muxers)
    }

    /// Checks the payload against the sender's X25519 static key and
    /// returns the authenticated identity key.
    ///
    /// > Upon receiving the handshake payload, peers MUST decode the public
    /// > key from the `identity_key` field into a usable form. The key MUST
    /// > then be used to validate the `identity_sig` field against the
    /// > static Noise key received in the handshake.
    pub fn verify(&self, remote_static: &[u8]) -> Result<PublicKey, IdentityCheckError> {
        let key = decode_identity_key(&self.identity_key)?;
        if !key.verify(&static_key_message(remote_static), &self.identity_sig) {
            return Err(IdentityCheckError::BadSignature { peer_id: key.to_peer_id() });
        }
        Ok(key)
    }
}

/// Why a payload's identity did not check out.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum IdentityCheckError {
    /// `identity_key` is missing.
    #[error("missing identity key")]
    MissingKey,
    /// `identity_key` names a key type that this node does not support.
    #[error("unsupported identity key type {key_type}")]
    UnsupportedKey {
        /// The protobuf `KeyType` value.
        key_type: u64,
    },
    /// `identity_key` is not a valid key of its type.
    #[error("invalid identity key")]
    InvalidKey,
    /// `identity_sig` does not verify.
    #[error("static key signature from {peer_id} does not verify")]
    BadSignature {
        /// The peer the (unproven) identity key belongs to.
        peer_id: PeerId,
    },
}

/// `"noise-libp2p-static-key:" ‖ static_key`: the message the identity key
/// signs.
pub fn static_key_message(static_key: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(STATIC_KEY_SIGNATURE_PREFIX.len() + static_key.len());
    msg.extend_from_slice(STATIC_KEY_SIGNATURE_PREFIX);
    msg.extend_from_slice(static_key);
    msg
}

/// Decodes a libp2p `PublicKey` protobuf, telling an unknown key type
/// (`Type` outside RSA 0, Ed25519 1, Secp256k1 2, ECDSA 3) apart from a
/// malformed key.
fn decode_identity_key(bytes: &[u8]) -> Result<PublicKey, IdentityCheckError> {
    if bytes.is_empty() {
        return Err(IdentityCheckError::MissingKey);
    }
    let mut key_type = None;
    let mut reader = Reader::new(bytes);
    while let Ok(Some((field, value))) = reader.next() {
        if field == 1 {
            key_type = value.varint(1).ok();
        }
    }
    if let Some(key_type) = key_type.filter(|t| *t > 3) {
        return Err(IdentityCheckError::UnsupportedKey { key_type });
    }
    PublicKey::try_decode_protobuf(bytes).map_err(|_| IdentityCheckError::InvalidKey)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::ed25519_from_seed;
    use proptest::prelude::*;

    // The peer-id spec's Ed25519 public key vector.
    const SPEC_ED25519_PUBLIC: &str =
        "080112201ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e";

    #[test]
    fn payload_bytes() {
        let payload = HandshakePayload {
            identity_key: hex::decode(SPEC_ED25519_PUBLIC).unwrap(),
            identity_sig: vec![0xaa; 4],
            extensions: Some(NoiseExtensions {
                webtransport_certhashes: vec![vec![0x12, 0x00]],
                stream_muxers: vec!["/yamux/1.0.0".into(), "/mplex/6.7.0".into()],
            }),
        };
        let expected = concat!(
            "0a24",
            "080112201ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e",
            "1204aaaaaaaa",
            "2220",     // extensions: 32 bytes
            "0a021200", //   certhash
            "120c",     //   "/yamux/1.0.0"
            "2f79616d75782f312e302e30",
            "120c", //   "/mplex/6.7.0"
            "2f6d706c65782f362e372e30",
        );
        assert_eq!(hex::encode(payload.encode()), expected);
        assert_eq!(HandshakePayload::decode(&hex::decode(expected).unwrap()), Ok(payload.clone()));

        let bare = HandshakePayload { extensions: None, ..payload };
        assert_eq!(hex::encode(bare.encode()), &expected[..2 * (38 + 6)]);
    }

    #[test]
    fn empty_payload_has_empty_fields() {
        let empty = HandshakePayload { identity_key: vec![], identity_sig: vec![], extensions: None };
        assert_eq!(empty.encode(), [0x0a, 0x00, 0x12, 0x00]);
        assert_eq!(HandshakePayload::decode(&[]), Ok(empty));
    }

    #[test]
    fn signed_message_layout() {
        let static_key = [0x11; 32];
        let msg = static_key_message(&static_key);
        assert_eq!(&msg[..24], b"noise-libp2p-static-key:");
        assert_eq!(
            hex::encode(&msg),
            format!("6e6f6973652d6c69627032702d7374617469632d6b65793a{}", "11".repeat(32))
        );
    }

    #[test]
    fn unknown_fields_skipped_and_extensions_merged() {
        let ext_a = protobuf::Writer::new().bytes(2, b"/a").varint(9, 7).finish();
        let ext_b = protobuf::Writer::new().bytes(2, b"/b").bytes(1, b"h").finish();
        let buf = protobuf::Writer::new()
            .bytes(3, b"legacy early data")
            .bytes(4, &ext_a)
            .varint(15, 1)
            .bytes(1, b"k")
            .bytes(4, &ext_b)
            .finish();
        let payload = HandshakePayload::decode(&buf).unwrap();
        assert_eq!(payload.identity_key, b"k");
        assert_eq!(payload.stream_muxers(), ["/a", "/b"]);
        assert_eq!(payload.extensions.unwrap().webtransport_certhashes, [b"h".to_vec()]);
    }

    #[test]
    fn caps_and_wire_types() {
        let mut w = protobuf::Writer::new();
        for _ in 0..=MAX_STREAM_MUXERS {
            w.bytes(2, b"/m");
        }
        let ext = w.finish();
        let buf = protobuf::Writer::new().bytes(4, &ext).finish();
        assert_eq!(
            HandshakePayload::decode(&buf),
            Err(PayloadError::TooManyEntries { field: "stream_muxers", max: MAX_STREAM_MUXERS })
        );
        let not_utf8 = protobuf::Writer::new().bytes(4, &[0x12, 0x01, 0xff]).finish();
        assert!(matches!(HandshakePayload::decode(&not_utf8), Err(PayloadError::Protobuf(_))));
        assert!(HandshakePayload::decode(&[0x08, 0x01]).is_err(), "identity_key as a varint");
        assert!(HandshakePayload::decode(&[0x0a, 0x05]).is_err(), "truncated");
    }

    #[test]
    fn verify_checks_key_and_signature() {
        let identity = ed25519_from_seed([7; 32]);
        let static_key = [0x42; 32];
        let good = HandshakePayload {
            identity_key: identity.public().encode_protobuf(),
            identity_sig: identity.sign(&static_key_message(&static_key)).unwrap(),
            extensions: None,
        };
        assert_eq!(good.verify(&static_key), Ok(identity.public()));
        assert_eq!(
            good.verify(&[0x43; 32]),
            Err(IdentityCheckError::BadSignature { peer_id: identity.public().to_peer_id() })
        );
        let no_key = HandshakePayload { identity_key: vec![], ..good.clone() };
        assert_eq!(no_key.verify(&static_key), Err(IdentityCheckError::MissingKey));
        // PublicKey{Type = 4 (Ed448, unsupported), Data = ...}
        let ed448 = HandshakePayload { identity_key: vec![0x08, 0x04, 0x12, 0x01, 0x00], ..good.clone() };
        assert_eq!(ed448.verify(&static_key), Err(IdentityCheckError::UnsupportedKey { key_type: 4 }));
        let short = HandshakePayload { identity_key: vec![0x08, 0x01, 0x12, 0x01, 0x00], ..good };
        assert_eq!(short.verify(&static_key), Err(IdentityCheckError::InvalidKey));
    }

    fn arb_payload() -> impl Strategy<Value = HandshakePayload> {
        let bytes = || proptest::collection::vec(any::<u8>(), 0..80);
        let extensions =
            (proptest::collection::vec(bytes(), 0..4), proptest::collection::vec("[ -~]{0,20}", 0..5))
                .prop_map(|(webtransport_certhashes, stream_muxers)| NoiseExtensions {
                    webtransport_certhashes,
                    stream_muxers,
                });
        (bytes(), bytes(), proptest::option::of(extensions)).prop_map(
            |(identity_key, identity_sig, extensions)| HandshakePayload {
                identity_key,
                identity_sig,
                extensions,
            },
        )
    }

    proptest! {
        #[test]
        fn roundtrip(payload in arb_payload()) {
            prop_assert_eq!(HandshakePayload::decode(&payload.encode()), Ok(payload));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(payload) = HandshakePayload::decode(&bytes) {
                let _ = payload.verify(&[0; 32]);
            }
        }
    }
}
