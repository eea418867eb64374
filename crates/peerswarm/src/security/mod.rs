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
}
