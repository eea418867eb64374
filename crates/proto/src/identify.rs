//! Identify (`/ipfs/id/1.0.0`) and identify-push (`/ipfs/id/push/1.0.0`)
//! messages.
//!
//! > The peer being identified responds by returning an `Identify` message
//! > and closes the stream. (libp2p/specs identify/README.md)
//!
//! ```protobuf
//! message Identify {
//!   optional string protocolVersion = 5;
//!   optional string agentVersion = 6;
//!   optional bytes publicKey = 1;
//!   repeated bytes listenAddrs = 2;
//!   optional bytes observedAddr = 4;
//!   repeated string protocols = 3;
//!   optional bytes signedPeerRecord = 8;
//! }
//! ```
//!
//! On the wire each message is uvarint-length-delimited. go-libp2p splits a
//! large message in two (the signed record alone in the second), so a reader
//! merges every delimited message until EOF: repeated fields append, singular
//! fields take the last value. Each message and the total are size-capped.

use crate::protobuf::{self, Reader, Writer};
use crate::varint;
use multiaddr::Multiaddr;
use thiserror::Error;

/// The identify protocol ID.
pub const PROTOCOL: &str = "/ipfs/id/1.0.0";
/// The identify-push protocol ID.
pub const PUSH_PROTOCOL: &str = "/ipfs/id/push/1.0.0";
/// The largest single delimited message we accept (go-libp2p sends ≤ 8 KiB
/// parts; rust-libp2p caps at 4 KiB).
pub const MAX_MESSAGE_SIZE: usize = 8 * 1024;
/// The most delimited messages merged from one stream (go-libp2p reads 10).
pub const MAX_MESSAGES: usize = 10;
/// The most listen addresses and protocols kept from one peer.
pub const MAX_ENTRIES: usize = 512;

/// The identify message. Every field is optional on the wire; for a push,
/// an absent field means "unchanged".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identify {
    /// Family of protocols spoken, e.g. `ipfs/0.1.0`.
    pub protocol_version: Option<String>,
    /// Implementation name and version, e.g. `peerswarm/0.1.0`.
    pub agent_version: Option<String>,
    /// The sender's public key, protobuf-encoded (peer-ids spec).
    pub public_key: Option<Vec<u8>>,
    /// Where the sender listens.
    pub listen_addrs: Vec<Multiaddr>,
    /// The address the sender sees this connection coming from.
    pub observed_addr: Option<Multiaddr>,
    /// The protocols the sender accepts inbound streams for.
    pub protocols: Vec<String>,
    /// A signed peer record envelope (opaque here).
    pub signed_peer_record: Option<Vec<u8>>,
}

/// Why an identify message was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum IdentifyError {
    /// Bad protobuf.
    #[error("malformed identify message: {0}")]
    Decode(#[from] protobuf::DecodeError),
    /// Bad length prefix.
    #[error("malformed length prefix: {0}")]
    Varint(#[from] varint::VarintError),
    /// A message, or the whole exchange, is larger than allowed.
    #[error("identify message too large ({0} bytes)")]
    TooLarge(usize),
    /// More delimited messages than allowed.
    #[error("too many identify messages")]
    TooManyMessages,
    /// The stream ended inside a message.
    #[error("identify message truncated")]
    Truncated,
}

impl Identify {
    /// Encodes the message body (no length prefix). Fields go in tag order.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        if let Some(key) = &self.public_key {
            w.bytes(1, key);
        }
        for addr in &self.listen_addrs {
            w.bytes(2, &addr.to_vec());
        }
        for protocol in &self.protocols {
            w.bytes(3, protocol.as_bytes());
        }
        if let Some(addr) = &self.observed_addr {
            w.bytes(4, &addr.to_vec());
        }
        if let Some(v) = &self.protocol_version {
            w.bytes(5, v.as_bytes());
        }
        if let Some(v) = &self.agent_version {
            w.bytes(6, v.as_bytes());
        }
        if let Some(record) = &self.signed_peer_record {
            w.bytes(8, record);
        }
        w.finish()
    }

    /// Encodes with its uvarint length prefix, as sent on a stream.
    pub fn encode_delimited(&self) -> Vec<u8> {
        let body = self.encode();
        let mut out = Vec::with_capacity(body.len() + varint::MAX_LEN_U64);
        varint::encode(body.len() as u64, &mut out);
        out.extend_from_slice(&body);
        out
    }

    /// Decodes one message body and merges it into `self`: repeated fields
    /// append, singular fields are replaced. Unparseable multiaddrs are
    /// skipped (a peer's one bad address should not cost us the rest).
    pub fn merge(&mut self, body: &[u8]) -> Result<(), IdentifyError> {
        let mut r = Reader::new(body);
        while let Some((field, value)) = r.next()? {
            match field {
                1 => self.public_key = Some(value.bytes(field)?.to_vec()),
                2 => {
                    if let Ok(addr) = Multiaddr::try_from(value.bytes(field)?.to_vec()) {
                        if self.listen_addrs.len() < MAX_ENTRIES {
                            self.listen_addrs.push(addr);
                        }
                    }
                }
                3 => {
                    let protocol = value.string(field)?;
                    if self.protocols.len() < MAX_ENTRIES {
                        self.protocols.push(protocol.to_owned());
                    }
                }
                4 => self.observed_addr = Multiaddr::try_from(value.bytes(field)?.to_vec()).ok(),
                5 => self.protocol_version = Some(value.string(field)?.to_owned()),
                6 => self.agent_version = Some(value.string(field)?.to_owned()),
                8 => self.signed_peer_record = Some(value.bytes(field)?.to_vec()),
                _ => {} // unknown fields are skipped
            }
        }
        Ok(())
    }

    /// Decodes a single message body.
    pub fn decode(body: &[u8]) -> Result<Self, IdentifyError> {
        let mut msg = Identify::default();
        msg.merge(body)?;
        Ok(msg)
    }

    /// Decodes everything read from an identify stream (one or more
    /// delimited messages, up to EOF).
    pub fn decode_stream(mut bytes: &[u8]) -> Result<Self, IdentifyError> {
        let mut msg = Identify::default();
        let mut count = 0;
        while !bytes.is_empty() {
            count += 1;
            if count > MAX_MESSAGES {
                return Err(IdentifyError::TooManyMessages);
            }
            let (len, used) = varint::decode(bytes)?.ok_or(IdentifyError::Truncated)?;
            let len = usize::try_from(len).unwrap_or(usize::MAX);
            if len > MAX_MESSAGE_SIZE {
                return Err(IdentifyError::TooLarge(len));
            }
            let body = bytes.get(used..used + len).ok_or(IdentifyError::Truncated)?;
            msg.merge(body)?;
            bytes = &bytes[used + len..];
        }
        Ok(msg)
    }
}

/// The most bytes an identify stream may carry before we stop reading.
pub const MAX_STREAM_BYTES: usize = MAX_MESSAGES * (MAX_MESSAGE_SIZE + varint::MAX_LEN_U64);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Identify {
        Identify {
            protocol_version: Some("ipfs/0.1.0".into()),
            agent_version: Some("peerswarm/0.1.0".into()),
            public_key: Some(vec![8, 1, 18, 1, 0]),
            listen_addrs: vec!["/ip4/127.0.0.1/tcp/4001".parse().unwrap()],
            observed_addr: Some("/ip4/1.2.3.4/tcp/5".parse().unwrap()),
            protocols: vec!["/ipfs/ping/1.0.0".into()],
            signed_peer_record: None,
        }
    }

    #[test]
    fn encodes_fields_in_tag_order() {
        let msg = Identify {
            public_key: Some(vec![0xaa]),
            protocols: vec!["/p".into()],
            agent_version: Some("a".into()),
            ..Identify::default()
        };
        assert_eq!(msg.encode(), [0x0a, 0x01, 0xaa, 0x1a, 0x02, b'/', b'p', 0x32, 0x01, b'a']);
        assert_eq!(msg.encode_delimited()[0], 10);
    }

    #[test]
    fn roundtrips_and_merges_split_messages() {
        let msg = sample();
        assert_eq!(Identify::decode(&msg.encode()).unwrap(), msg);
        // go-libp2p style: base message, then the record alone.
        let record = Identify { signed_peer_record: Some(vec![1, 2, 3]), ..Identify::default() };
        let mut wire = msg.encode_delimited();
        wire.extend(record.encode_delimited());
        let merged = Identify::decode_stream(&wire).unwrap();
        assert_eq!(merged, Identify { signed_peer_record: Some(vec![1, 2, 3]), ..msg });
    }

    #[test]
    fn rejects_oversized_and_truncated_streams() {
        let mut wire = Vec::new();
        varint::encode((MAX_MESSAGE_SIZE + 1) as u64, &mut wire);
        assert!(matches!(Identify::decode_stream(&wire), Err(IdentifyError::TooLarge(_))));
        let mut wire = sample().encode_delimited();
        wire.pop();
        assert_eq!(Identify::decode_stream(&wire), Err(IdentifyError::Truncated));
        let wire: Vec<u8> = std::iter::repeat_n([0u8], MAX_MESSAGES + 1).flatten().collect();
        assert_eq!(Identify::decode_stream(&wire), Err(IdentifyError::TooManyMessages));
    }

    proptest! {
        #[test]
        fn decode_encode_roundtrip(
            version in proptest::option::of("[a-z/.0-9]{0,20}"),
            protocols in proptest::collection::vec("/[a-z0-9/.]{1,30}", 0..8),
            key in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)),
            port in any::<u16>(),
        ) {
            let msg = Identify {
                protocol_version: version,
                protocols,
                public_key: key,
                listen_addrs: vec![format!("/ip4/10.0.0.1/tcp/{port}").parse().unwrap()],
                ..Identify::default()
            };
            prop_assert_eq!(Identify::decode(&msg.encode()).unwrap(), msg);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Identify::decode(&bytes);
            let _ = Identify::decode_stream(&bytes);
        }
    }
}
