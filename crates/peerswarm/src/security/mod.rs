//! Connection security: the channel that authenticates the remote peer and
//! encrypts everything after it.
//!
//! Both handshakes end in the same place: a byte stream (`AsyncRead +
//! AsyncWrite`) plus a [`SecureInfo`] naming the authenticated remote.
//!
//! Under them, a node in a private network wraps the raw connection in the
//! pre-shared-key layer of `security::pnet` (errors: [`PnetError`]), so
//! even the security negotiation is encrypted.

pub(crate) mod noise;
pub(crate) mod plaintext;
pub(crate) mod pnet;

pub use pnet::PnetError;

use peerswarm_proto::identity::{PeerId, PublicKey};
use std::time::Duration;

/// What a completed security handshake learned about the remote.
#[derive(Debug, Clone)]
pub struct SecureInfo {
    /// The remote's peer ID, derived from `remote_public_key`.
    pub remote_peer_id: PeerId,
    /// The remote's identity key, as authenticated by the handshake.
    pub remote_public_key: PublicKey,
    /// The stream muxer agreed inside the handshake (Noise's `stream_muxers`
    /// extension), or `None` when it must be negotiated with multistream.
    pub muxer: Option<String>,
    /// How long the handshake waited for the remote's answer to our last
    /// flight of messages: a round trip of the path plus the remote's
    /// handshake computation, so an upper bound of the RTT (tens of
    /// microseconds too high on a fast local link, nothing to speak of on a
    /// real network). The initiator's sample also includes any wait for the
    /// path itself, behind a proxy that accepts before it has connected.
    /// `None` for a handshake without such an exchange (plaintext).
    pub handshake_rtt: Option<Duration>,
}
