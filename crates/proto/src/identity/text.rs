//! Peer IDs as text: legacy base58btc multihashes and CIDv1 (`libp2p-key`).

use super::{IdentityError, PeerId};
use crate::varint;

/// Longest text [`parse_peer_id`] looks at. The longest valid form (an
/// inlined 42-byte key as a base32 CID) is under 80 characters.
const MAX_TEXT_LEN: usize = 256;

/// The `libp2p-key` multicodec.
const LIBP2P_KEY: u64 = 0x72;

const BASE58_ALPHABET: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
const BASE32_ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

fn invalid(reason: &'static str) -> IdentityError {
    IdentityError::InvalidPeerId { reason }
}

pub(super) fn parse_peer_id(text: &str) -> Result<PeerId, IdentityError> {
    if text.len() > MAX_TEXT_LEN {
        return Err(invalid("too long"));
    }
    if text.starts_with('1') || text.starts_with("Qm") {
        let bytes = base58_decode(text).ok_or(invalid("bad base58"))?;
        return PeerId::from_bytes(&bytes).map_err(|_| invalid("not a peer id multihash"));
    }
    let mut chars = text.chars();
    let prefix = chars.next().ok_or(invalid("empty"))?;
    let rest = chars.as_str();
    let cid = match prefix {
        'b' => base32_decode(rest, false),
        'B' => base32_decode(rest, true),
        'z' => base58_decode(rest),
        other => return Err(IdentityError::UnsupportedMultibase { prefix: other }),
    }
    .ok_or(invalid("bad multibase encoding"))?;
    let (version, used) = read_varint(&cid)?;
    if version != 1 {
        return Err(invalid("not a cidv1"));
    }
    let (codec, used2) = read_varint(&cid[used..])?;
    if codec != LIBP2P_KEY {
        return Err(IdentityError::NotLibp2pKey { codec });
    }
    PeerId::from_bytes(&cid[used + used2..]).map_err(|_| invalid("not a peer id multihash"))
}

fn read_varint(bytes: &[u8]) -> Result<(u64, usize), IdentityError> {
    match varint::decode(bytes) {
        Ok(Some(v)) => Ok(v),
        _ => Err(invalid("bad cid varint")),
    }
}

pub(super) fn peer_id_to_cid(peer_id: &PeerId) -> String {
    let mut cid = Vec::new();
    varint::encode(1, &mut cid);
    varint::encode(LIBP2P_KEY, &mut cid);
    cid.extend_from_slice(&peer_id.to_bytes());
    let mut out = String::from("b");
    base32_encode(&cid, &mut out);
    out
}

/// base58btc decoding (big-endian, leading `1`s are leading zero bytes).
/// Quadratic, which is why input is length-capped by the caller.
fn base58_decode(text: &str) -> Option<Vec<u8>> {
    // Little-endian base-256 accumulator.
    let mut value: Vec<u8> = Vec::with_capacity(text.len());
    for c in text.bytes() {
        let mut carry = BASE58_ALPHABET.iter().position(|&a| a == c)? as u32;
        for byte in value.iter_mut() {
            carry += u32::from(*byte) * 58;
            *byte = carry as u8;
            carry >>= 8;
        }
        while carry > 0 {
            value.push(carry as u8);
            carry >>= 8;
        }
    }
    let zeros = text.bytes().take_while(|&c| c == b'1').count();
    value.extend(std::iter::repeat_n(0, zeros));
    value.reverse();
    Some(value)
}

/// RFC 4648 base32 without padding; `upper` selects the alphabet's case.
fn base32_decode(text: &str, upper: bool) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        // One case only: the prefix says which.
        let c = match (upper, c.is_ascii_lowercase()) {
            (true, true) => return None,
            (true, false) => c.to_ascii_lowercase(),
            (false, _) => c,
        };
        let v = BASE32_ALPHABET.iter().position(|&a| a == c)? as u32;
        acc = (acc << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // At most 4 leftover bits, all zero, in a canonical encoding.
    if bits >= 5 || acc != 0 {
        return None;
    }
    Some(out)
}

fn base32_encode(bytes: &[u8], out: &mut String) {
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(BASE32_ALPHABET[((acc >> bits) & 31) as usize] as char);
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(BASE32_ALPHABET[((acc << (5 - bits)) & 31) as usize] as char);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::ed25519_from_seed;
    use proptest::prelude::*;

    #[test]
    fn spec_cid_example() {
        let from_cid = parse_peer_id("bafzbeie5745rpv2m6tjyuugywy4d5ewrqgqqhfnf445he3omzpjbx5xqxe").unwrap();
        let legacy = parse_peer_id("QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N").unwrap();
        assert_eq!(from_cid, legacy);
        assert_eq!(from_cid.to_string(), "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N");
        assert_eq!(peer_id_to_cid(&legacy), "bafzbeie5745rpv2m6tjyuugywy4d5ewrqgqqhfnf445he3omzpjbx5xqxe");
    }

    #[test]
    fn computed_ed25519_cid() {
        let id = parse_peer_id("12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq").unwrap();
        let cid = "bafzaajaiaejcahwr5d5ofrfbis4l5d6uwr57hu5tjodrypfm6yaq6dsc2r2pzyt6";
        assert_eq!(peer_id_to_cid(&id), cid);
        assert_eq!(parse_peer_id(cid).unwrap(), id);
        assert_eq!(parse_peer_id(&cid.to_ascii_uppercase()).unwrap(), id);
    }

    #[test]
    fn other_spec_examples() {
        let id = parse_peer_id("12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA").unwrap();
        assert_eq!(id.to_string(), "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA");
        assert_eq!(parse_peer_id(&peer_id_to_cid(&id)).unwrap(), id);
        // base58btc multibase CID.
        let mut cid = vec![0x01, 0x72];
        cid.extend(id.to_bytes());
        let z = format!("z{}", bs58_encode(&cid));
        assert_eq!(parse_peer_id(&z).unwrap(), id);
    }

    /// Test-only base58 encoder (the decoder's inverse).
    fn bs58_encode(bytes: &[u8]) -> String {
        let mut digits: Vec<u8> = Vec::new(); // little-endian base 58
        for &b in bytes {
            let mut carry = u32::from(b);
            for d in digits.iter_mut() {
                carry += u32::from(*d) << 8;
                *d = (carry % 58) as u8;
                carry /= 58;
            }
            while carry > 0 {
                digits.push((carry % 58) as u8);
                carry /= 58;
            }
        }
        let zeros = bytes.iter().take_while(|&&b| b == 0).count();
        std::iter::repeat_n('1', zeros)
            .chain(digits.iter().rev().map(|&d| BASE58_ALPHABET[d as usize] as char))
            .collect()
    }

    #[test]
    fn rejects_bad_text() {
        assert!(matches!(parse_peer_id(""), Err(IdentityError::InvalidPeerId { .. })));
        assert!(matches!(parse_peer_id("Qm0OIl"), Err(IdentityError::InvalidPeerId { .. })));
        assert!(matches!(parse_peer_id("mAXI"), Err(IdentityError::UnsupportedMultibase { prefix: 'm' })));
        assert!(matches!(
            parse_peer_id(&"1".repeat(300)),
            Err(IdentityError::InvalidPeerId { reason: "too long" })
        ));
        // A CIDv1 with the raw codec (0x55) instead of libp2p-key.
        let id = ed25519_from_seed([3; 32]).public().to_peer_id();
        let mut cid = vec![0x01, 0x55];
        cid.extend(id.to_bytes());
        let mut text = String::from("b");
        base32_encode(&cid, &mut text);
        assert_eq!(parse_peer_id(&text), Err(IdentityError::NotLibp2pKey { codec: 0x55 }));
        // Mixed case is not base32.
        assert!(parse_peer_id("bAFZ").is_err());
    }

    proptest! {
        #[test]
        fn base32_roundtrip(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut text = String::new();
            base32_encode(&bytes, &mut text);
            prop_assert_eq!(base32_decode(&text, false), Some(bytes.clone()));
            prop_assert_eq!(base32_decode(&text.to_ascii_uppercase(), true), Some(bytes));
        }

        #[test]
        fn base58_roundtrip(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            prop_assert_eq!(base58_decode(&bs58_encode(&bytes)), Some(bytes));
        }

        #[test]
        fn peer_id_text_roundtrip(seed in any::<[u8; 32]>()) {
            let id = ed25519_from_seed(seed).public().to_peer_id();
            prop_assert_eq!(parse_peer_id(&id.to_string()).unwrap(), id);
            prop_assert_eq!(parse_peer_id(&peer_id_to_cid(&id)).unwrap(), id);
            prop_assert_eq!(base58_decode(&id.to_base58()), Some(id.to_bytes()));
        }

        #[test]
        fn arbitrary_text_never_panics(text in ".{0,100}") {
            let _ = parse_peer_id(&text);
            let _ = parse_peer_id(&format!("b{text}"));
            let _ = parse_peer_id(&format!("z{text}"));
        }
    }
}
