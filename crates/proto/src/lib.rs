//! Sans-IO cores of the libp2p wire protocols spoken by peerswarm.
//!
//! Nothing in this crate touches a socket, a clock or an executor. Each
//! protocol is a state machine that takes bytes (and, where timing matters,
//! `now`) and hands back bytes to send, events and the next deadline. The
//! async crate `peerswarm` drives them over tokio.
//!
//! | module | spec |
//! |---|---|
//! | [`dns`] | DNS messages (RFC 1035) for `/dnsaddr` TXT lookups |
//! | [`identity`] | peer-ids: keys, peer IDs, key files |
//! | [`multistream`] | multistream-select 1.0 |
//! | [`noise`] | noise-libp2p (`/noise`) handshake, payload and framing |
//! | [`yamux`] | yamux (`/yamux/1.0.0`) session state machine |
//! | [`plaintext`] | `/plaintext/2.0.0` (tests only) |
//! | [`pnet`] | private networks: pre-shared key files and the XSalsa20 keystream |
//! | [`identify`], [`ping`], [`perf`] | the built-in protocols' messages |
//! | [`varint`], [`protobuf`] | the shared encodings |

pub mod dns;
pub mod identify;
pub mod identity;
pub mod multistream;
pub mod noise;
pub mod perf;
pub mod ping;
pub mod plaintext;
pub mod pnet;
pub mod protobuf;
pub mod varint;
pub mod yamux;
