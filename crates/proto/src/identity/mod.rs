//! Keys, peer IDs and key files (libp2p/specs `peer-ids/peer-ids.md`).
//!
//! The key types come from `libp2p-identity` and are re-exported here, so
//! the rest of peerswarm names them through one path. This module adds what
//! that crate leaves out: generating any key type (RSA included), a fixed
//! Ed25519 key from a seed, the key-file encoding, and peer IDs in CIDv1
//! text form.
//!
//! > Peer IDs are derived by hashing the encoded public key with multihash.
//! > Keys that serialize to more than 42 bytes must be hashed using sha256
//! > multihash, keys that serialize to at most 42 bytes must be hashed using
//! > the "identity" multihash codec.
//!
//! [`PeerId::from_public_key`] does exactly that (tested below). Peer IDs
//! display as base58btc ([`PeerId`]'s `Display`); [`parse_peer_id`] also
//! accepts the CIDv1 form and [`peer_id_to_cid`] produces it.

mod text;
#[cfg(test)]
mod vectors;

pub use libp2p_identity::{KeyType, Keypair, PeerId, PublicKey};

use crate::protobuf;

/// Why a key or peer ID could not be produced or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// Key generation failed (only RSA generation can).
    #[error("{key_type} key generation failed")]
    Generation {
        /// The key type asked for.
        key_type: &'static str,
    },
    /// A key file or key encoding could not be decoded.
    #[error("invalid key: {reason}")]
    InvalidKey {
        /// What the decoder reported.
        reason: String,
    },
    /// This key type's private key cannot be encoded (RSA: `libp2p-identity`
    /// keeps the private key opaque; use [`generate_key_file`] instead).
    #[error("{key_type} private keys cannot be encoded")]
    EncodingUnsupported {
        /// The key type.
        key_type: &'static str,
    },
    /// The text is not a peer ID in any accepted form.
    #[error("invalid peer id: {reason}")]
    InvalidPeerId {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A CID whose multicodec is not `libp2p-key` (0x72).
    #[error("cid codec {codec:#x} is not libp2p-key (0x72)")]
    NotLibp2pKey {
        /// The CID's multicodec.
        codec: u64,
    },
    /// A multibase this parser does not know.
    #[error("unsupported multibase prefix {prefix:?}")]
    UnsupportedMultibase {
        /// The first character of the text.
        prefix: char,
    },
}

/// The RSA modulus size [`generate`] uses, in bits.
pub const RSA_BITS: usize = 2048;

fn key_type_name(key_type: &KeyType) -> &'static str {
    match key_type {
        KeyType::Ed25519 => "ed25519",
        KeyType::RSA => "rsa",
        KeyType::Secp256k1 => "secp256k1",
        KeyType::Ecdsa => "ecdsa",
    }
}

/// Generates a fresh key pair of `key_type` from the OS random source.
///
/// RSA keys are [`RSA_BITS`] bits; generating one takes a noticeable time
/// (up to seconds in debug builds). Note that an RSA key pair cannot be
/// written to a key file afterwards ([`encode_keypair`]); use
/// [`generate_key_file`] to get both at once.
pub fn generate(key_type: KeyType) -> Result<Keypair, IdentityError> {
    generate_key_file(key_type).map(|(keypair, _)| keypair)
}

/// Generates a fresh key pair and its key-file encoding (see
/// [`encode_keypair`]). Works for every key type, RSA included.
pub fn generate_key_file(key_type: KeyType) -> Result<(Keypair, Vec<u8>), IdentityError> {
    let keypair = match key_type {
        KeyType::Ed25519 => Keypair::generate_ed25519(),
        KeyType::Secp256k1 => Keypair::generate_secp256k1(),
        KeyType::Ecdsa => Keypair::generate_ecdsa(),
        KeyType::RSA => return generate_rsa(),
    };
    let file = encode_keypair(&keypair)?;
    Ok((keypair, file))
}

fn generate_rsa() -> Result<(Keypair, Vec<u8>), IdentityError> {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::pkcs8::EncodePrivateKey;
    let failed = || IdentityError::Generation { key_type: "rsa" };
    let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), RSA_BITS).map_err(|_| failed())?;
    let mut pkcs8 = key.to_pkcs8_der().map_err(|_| failed())?.as_bytes().to_vec();
    let keypair = Keypair::rsa_from_pkcs8(&mut pkcs8).map_err(|_| failed())?;
    let pkcs1 = key.to_pkcs1_der().map_err(|_| failed())?;
    let file = encode_private_key(0, pkcs1.as_bytes());
    Ok((keypair, file))
}

/// The Ed25519 key pair whose 32-byte secret is `seed`.
///
/// Deterministic: the same seed always gives the same peer ID. The CLI's
/// `--seed N` uses `[N; 32]`. Only for tests and fixed demo identities: a
/// guessable seed is a public key pair.
pub fn ed25519_from_seed(seed: [u8; 32]) -> Keypair {
    let mut seed = seed;
    Keypair::ed25519_from_bytes(&mut seed).expect("any 32 bytes are a valid ed25519 secret key")
}

/// Reads a key file: the libp2p `PrivateKey` protobuf
/// (`Type` = 1, `Data` = 2; RSA as PKCS#1 DER, Ed25519 as the 64-byte
/// `secret ‖ public` (the legacy 96-byte form is accepted when its two
/// public halves agree), secp256k1 as the raw 32-byte secret, ECDSA as DER).
pub fn read_keypair(bytes: &[u8]) -> Result<Keypair, IdentityError> {
    let invalid = |e: libp2p_identity::DecodingError| IdentityError::InvalidKey { reason: e.to_string() };
    match legacy_ed25519(bytes)? {
        Some(canonical) => Keypair::from_protobuf_encoding(&canonical).map_err(invalid),
        None => Keypair::from_protobuf_encoding(bytes).map_err(invalid),
    }
}

/// Rewrites a legacy 96-byte Ed25519 key file (`secret ‖ public ‖ public`)
/// to the 64-byte form, after checking the two public halves agree:
///
/// > If you encounter this type of encoding, the proper way to process it is
/// > to compare the two public key strings (32 bytes each) and verify they
/// > are identical. [...] If they do not match, reject or error out.
///
/// `Ok(None)` for anything else.
fn legacy_ed25519(bytes: &[u8]) -> Result<Option<Vec<u8>>, IdentityError> {
    let (mut key_type, mut data) = (None, None);
    let mut reader = protobuf::Reader::new(bytes);
    while let Ok(Some((field, value))) = reader.next() {
        match field {
            1 => key_type = value.varint(1).ok(),
            2 => data = value.bytes(2).ok(),
            _ => {}
        }
    }
    match (key_type, data) {
        (Some(1), Some(data)) if data.len() == 96 => {
            if data[32..64] != data[64..96] {
                return Err(IdentityError::InvalidKey {
                    reason: "legacy ed25519 key with mismatched public halves".into(),
                });
            }
            Ok(Some(encode_private_key(1, &data[..64])))
        }
        _ => Ok(None),
    }
}

/// Encodes a key pair as a key file (see [`read_keypair`]).
///
/// Fails with [`IdentityError::EncodingUnsupported`] for RSA, whose private
/// key `libp2p-identity` does not give back; [`generate_key_file`] encodes
/// RSA keys at generation time instead.
pub fn encode_keypair(keypair: &Keypair) -> Result<Vec<u8>, IdentityError> {
    if keypair.key_type() == KeyType::RSA {
        return Err(IdentityError::EncodingUnsupported { key_type: "rsa" });
    }
    keypair
        .to_protobuf_encoding()
        .map_err(|_| IdentityError::EncodingUnsupported { key_type: key_type_name(&keypair.key_type()) })
}

/// `PrivateKey { Type = 1, Data = 2 }`, deterministic (fields in order).
fn encode_private_key(key_type: u64, data: &[u8]) -> Vec<u8> {
    protobuf::Writer::new().varint(1, key_type).bytes(2, data).finish()
}

/// Parses a peer ID in either text form the spec defines.
///
/// > If it starts with `1` or `Qm`, it's a bare base58btc encoded multihash.
/// > If it starts with a multibase prefix, it's a CIDv1 CID. [...] verify
/// > that the CIDs multicodec is `libp2p-key`. Finally, extract the
/// > multihash from the CID. This is the peer ID.
///
/// Multibases accepted: `b` (base32 lower, the default), `B` (base32 upper)
/// and `z` (base58btc). Input longer than 256 bytes is rejected before
/// decoding.
pub fn parse_peer_id(text: &str) -> Result<PeerId, IdentityError> {
    text::parse_peer_id(text)
}

/// The CIDv1 text form of a peer ID: `b` + base32-lower of
/// `0x01 ‖ 0x72 ‖ multihash`, e.g. `bafz…`.
pub fn peer_id_to_cid(peer_id: &PeerId) -> String {
    text::peer_id_to_cid(peer_id)
}

#[cfg(test)]
mod tests {
    use super::vectors::{SPEC_KEYS, SPEC_PEER_IDS, TLS_KEYS};
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s).expect("test hex")
    }

    fn multihash_code(peer_id: &PeerId) -> u8 {
        peer_id.to_bytes()[0]
    }

    #[test]
    fn spec_key_vectors() {
        for &(name, private, public) in SPEC_KEYS {
            let keypair = read_keypair(&unhex(private)).unwrap_or_else(|e| panic!("{name}: {e}"));
            let public_bytes = unhex(public);
            assert_eq!(keypair.public().encode_protobuf(), public_bytes, "{name}: derived public key");
            let decoded = PublicKey::try_decode_protobuf(&public_bytes).unwrap();
            assert_eq!(decoded, keypair.public());
            let expected_id = SPEC_PEER_IDS.iter().find(|(n, _)| *n == name).unwrap().1;
            let peer_id = decoded.to_peer_id();
            assert_eq!(peer_id.to_string(), expected_id, "{name}: peer id");
            // Identity multihash iff the encoded key is at most 42 bytes.
            let expected_code = if public_bytes.len() <= 42 { 0x00 } else { 0x12 };
            assert_eq!(multihash_code(&peer_id), expected_code, "{name}: multihash");
            if name != "rsa" {
                assert_eq!(encode_keypair(&keypair).unwrap(), unhex(private).to_vec(), "{name}: re-encode");
            }
        }
    }

    #[test]
    fn tls_spec_key_to_peer_id() {
        for &(public, expected) in TLS_KEYS {
            let key = PublicKey::try_decode_protobuf(&unhex(public)).unwrap();
            assert_eq!(key.to_peer_id().to_string(), expected);
            assert_eq!(parse_peer_id(expected).unwrap(), key.to_peer_id());
        }
    }

    #[test]
    fn inline_vs_hashed_boundary() {
        // Ed25519 (36 bytes) and secp256k1 (37 bytes) are inlined.
        let ed = ed25519_from_seed([7; 32]).public();
        assert_eq!(ed.encode_protobuf().len(), 36);
        let id = ed.to_peer_id().to_bytes();
        assert_eq!(&id[..2], &[0x00, 36]);
        assert_eq!(&id[2..], &ed.encode_protobuf()[..]);
        // ECDSA (95 bytes) is hashed.
        let ecdsa = generate(KeyType::Ecdsa).unwrap().public();
        assert_eq!(&ecdsa.to_peer_id().to_bytes()[..2], &[0x12, 0x20]);
    }

    #[test]
    fn seed_is_deterministic() {
        let a = ed25519_from_seed([1; 32]);
        let b = ed25519_from_seed([1; 32]);
        assert_eq!(a.public(), b.public());
        assert_ne!(a.public(), ed25519_from_seed([2; 32]).public());
        // The key file is `secret ‖ public`, the secret being the seed.
        let file = encode_keypair(&a).unwrap();
        assert_eq!(&file[..4], &[0x08, 0x01, 0x12, 0x40]);
        assert_eq!(&file[4..36], &[1; 32]);
    }

    #[test]
    fn generate_and_round_trip_key_files() {
        for key_type in [KeyType::Ed25519, KeyType::Secp256k1, KeyType::Ecdsa] {
            let (keypair, file) = generate_key_file(key_type).unwrap();
            assert_eq!(read_keypair(&file).unwrap().public(), keypair.public());
            assert_eq!(encode_keypair(&keypair).unwrap(), file);
        }
    }

    #[test]
    fn generate_rsa_key() {
        let (keypair, file) = generate_key_file(KeyType::RSA).unwrap();
        assert_eq!(keypair.key_type(), KeyType::RSA);
        assert_eq!(read_keypair(&file).unwrap().public(), keypair.public());
        assert_eq!(encode_keypair(&keypair), Err(IdentityError::EncodingUnsupported { key_type: "rsa" }));
        let peer_id = keypair.public().to_peer_id();
        assert_eq!(multihash_code(&peer_id), 0x12, "rsa keys are hashed");
        assert!(peer_id.to_string().starts_with("Qm"));
        let signature = keypair.sign(b"msg").unwrap();
        assert!(keypair.public().verify(b"msg", &signature));
    }

    #[test]
    fn legacy_ed25519_96_byte_form() {
        let private = unhex(SPEC_KEYS[1].1);
        let public = &private[36..68];
        let mut legacy = vec![0x08, 0x01, 0x12, 0x60];
        legacy.extend_from_slice(&private[4..]);
        legacy.extend_from_slice(public);
        assert_eq!(read_keypair(&legacy).unwrap().public(), read_keypair(&private).unwrap().public());
        // The two public halves must agree.
        let last = legacy.len() - 1;
        legacy[last] ^= 1;
        assert!(matches!(read_keypair(&legacy), Err(IdentityError::InvalidKey { .. })));
    }

    #[test]
    fn garbage_key_files_are_errors() {
        assert!(matches!(read_keypair(b""), Err(IdentityError::InvalidKey { .. })));
        assert!(matches!(read_keypair(&[0x08, 0x09, 0x12, 0x00]), Err(IdentityError::InvalidKey { .. })));
        assert!(matches!(
            read_keypair(&[0x08, 0x01, 0x12, 0x03, 1, 2, 3]),
            Err(IdentityError::InvalidKey { .. })
        ));
    }

    proptest::proptest! {
        #[test]
        fn read_keypair_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..128)) {
            let _ = read_keypair(&bytes);
        }
    }
}
