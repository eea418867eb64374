//! The message codecs: identify, identity, plaintext, DNS, multiaddr, and
//! pre-shared key files.

use libp2p_identity::{PeerId, PublicKey};
use multiaddr::Multiaddr;
use peerswarm_proto::dns::{self, Query};
use peerswarm_proto::identify::{Identify, MAX_ENTRIES, MAX_MESSAGE_SIZE};
use peerswarm_proto::identity::{encode_keypair, parse_peer_id, peer_id_to_cid, read_keypair, KeyType};
use peerswarm_proto::plaintext::{decode_length_prefix, Exchange, MAX_EXCHANGE_LEN};
use peerswarm_proto::pnet::{PreSharedKey, PskEncoding};

/// `Identify::decode` and `decode_stream` on arbitrary bytes: the entry caps
/// hold and whatever decodes survives encode/decode unchanged.
pub fn identify(data: &[u8]) {
    if let Ok(message) = Identify::decode(data) {
        assert!(message.listen_addrs.len() <= MAX_ENTRIES && message.protocols.len() <= MAX_ENTRIES);
        assert_eq!(Identify::decode(&message.encode()).as_ref(), Ok(&message));
    }
    if let Ok(message) = Identify::decode_stream(data) {
        assert!(message.listen_addrs.len() <= MAX_ENTRIES && message.protocols.len() <= MAX_ENTRIES);
        if message.encode().len() <= MAX_MESSAGE_SIZE {
            assert_eq!(Identify::decode_stream(&message.encode_delimited()).as_ref(), Ok(&message));
        }
    }
}

/// The identity decoders, chosen by the first byte: peer ID text, peer ID
/// bytes, public key protobuf, key file. Whatever decodes round-trips.
pub fn identity(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    match mode % 4 {
        0 => {
            let Ok(text) = std::str::from_utf8(rest) else { return };
            let Ok(peer_id) = parse_peer_id(text) else { return };
            assert_eq!(parse_peer_id(&peer_id.to_base58()).as_ref(), Ok(&peer_id));
            assert_eq!(parse_peer_id(&peer_id_to_cid(&peer_id)).as_ref(), Ok(&peer_id));
        }
        1 => {
            let Ok(peer_id) = PeerId::from_bytes(rest) else { return };
            assert_eq!(PeerId::from_bytes(&peer_id.to_bytes()).expect("our bytes parse"), peer_id);
        }
        2 => {
            let Ok(key) = PublicKey::try_decode_protobuf(rest) else { return };
            let again = PublicKey::try_decode_protobuf(&key.encode_protobuf()).expect("our encoding decodes");
            assert_eq!(again, key);
            assert_eq!(again.to_peer_id(), key.to_peer_id());
        }
        _ => {
            let Ok(keypair) = read_keypair(rest) else { return };
            let signature = keypair.sign(b"fuzz").expect("a decoded key signs");
            assert!(keypair.public().verify(b"fuzz", &signature), "a key verifies its own signature");
            if keypair.key_type() != KeyType::RSA {
                let file = encode_keypair(&keypair).expect("non-RSA keys encode");
                assert_eq!(read_keypair(&file).expect("our key file reads").public(), keypair.public());
            }
        }
    }
}

/// `/plaintext/2.0.0`: the length prefix and the exchange. A decoded
/// exchange is consistent and round-trips.
pub fn plaintext_exchange(data: &[u8]) {
    if let Ok(Some((len, used))) = decode_length_prefix(data) {
        assert!(len <= MAX_EXCHANGE_LEN && used <= 2 && used <= data.len());
        if let Some(body) = data.get(used..used + len) {
            let _ = Exchange::decode(body);
        }
    }
    if let Ok(exchange) = Exchange::decode(data) {
        assert_eq!(exchange.peer_id, exchange.public_key.to_peer_id());
        let body = exchange.encode();
        if body.len() <= MAX_EXCHANGE_LEN {
            assert_eq!(Exchange::decode(&body).as_ref(), Ok(&exchange));
        }
    }
}

/// Private-network key files: `PreSharedKey::from_key_file` on arbitrary
/// bytes; a key that parses is written back in every encoding and reads as
/// itself.
pub fn pnet_key(data: &[u8]) {
    if let Ok(key) = PreSharedKey::from_key_file(data) {
        assert_eq!(key.to_key_file().parse::<PreSharedKey>().as_ref(), Ok(&key));
        for encoding in [PskEncoding::Base16, PskEncoding::Base64, PskEncoding::Bin] {
            assert_eq!(PreSharedKey::from_key_file(&key.to_key_file_with(encoding)).as_ref(), Ok(&key));
        }
    }
}

/// DNS: `Message::decode` on arbitrary bytes (a decoded message that
/// encodes again decodes to itself), and a TXT query handling it as a
/// reply (ID taken from the input, so the checks past the ID are reached;
/// the name is the one of the `dns.rs` test vector seeded in `seeds/`).
pub fn dns_message(data: &[u8]) {
    if let Ok(message) = dns::Message::decode(data) {
        if let Ok(bytes) = message.try_encode() {
            assert_eq!(dns::Message::decode(&bytes).as_ref(), Ok(&message));
        }
    }
    let id = match data {
        [a, b, ..] => u16::from_be_bytes([*a, *b]),
        _ => 0,
    };
    let query = Query::txt(id, "_dnsaddr.example.com").expect("valid name");
    if let Ok(dns::Reply::Answers(answers)) = query.handle_response(data) {
        let _ = query.txt_data(&answers);
    }
}

/// multiaddr (the `multiaddr` crate, which peerswarm uses for addresses from
/// the network and the command line), from bytes and from text: whatever
/// parses round-trips through the other form.
pub fn multiaddr(data: &[u8]) {
    if let Ok(addr) = Multiaddr::try_from(data.to_vec()) {
        assert_eq!(addr.to_vec(), data);
        let _ = addr.to_string();
        let _ = addr.iter().count();
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(addr) = text.parse::<Multiaddr>() {
            assert_eq!(Multiaddr::try_from(addr.to_vec()).expect("our bytes parse"), addr);
            let again: Multiaddr = addr.to_string().parse().expect("our text parses");
            assert_eq!(again, addr);
        }
    }
}
