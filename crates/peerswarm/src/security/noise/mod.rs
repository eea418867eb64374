//! Noise (`/noise`) over any tokio byte stream: the handshake driver and the
//! encrypted [`NoiseStream`].
//!
//! The protocol itself (XX handshake, signed payload, inlined muxer
//! negotiation, framing) lives in [`peerswarm_proto::noise`]; this module
//! only moves its frames. See there for the spec text.
//!
//! ```text
//! upgrade_outbound (initiator)          upgrade_inbound (responder)
//!   -> e                        ──────▶
//!                               ◀──────   <- e, ee, s, es, payload(+muxers)
//!   -> s, se, payload(+muxers)  ──────▶
//! ```
//!
//! Both functions return the stream plus a [`SecureInfo`]: the remote's
//! authenticated key and peer ID, and the muxer agreed inside the
//! handshake (`None` when either side listed none: negotiate it with
//! multistream-select next).
//!
//! # Throughput
//!
//! [`NoiseStream`] decrypts in its read buffer and encrypts in its frame
//! buffer, so each byte is copied once per direction besides the socket's
//! own copy, and nothing is allocated per frame. Measured in release mode
//! on a shared 2-core machine: about 1.7 GiB/s one way over a 256 KiB
//! `tokio::io::duplex` (`tests::throughput`, ignored by default).
//!
//! # Cancel safety and time limits
//!
//! The upgrade functions are not cancel safe (dropping them mid-handshake
//! leaves the connection unusable) and have no timeout of their own: the
//! upgrader runs them under its handshake deadline. A silent or slow remote
//! costs one read buffer until then.

mod stream;
#[cfg(test)]
mod tests;

#[allow(unreachable_pub)] // see `NoiseStream`
pub use stream::NoiseStream;

use super::SecureInfo;
use peerswarm_proto::identity::{Keypair, PeerId};
use peerswarm_proto::noise::{Handshake, NoiseKey, FRAME_HEADER_LEN};
use std::future::poll_fn;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use stream::ReadBuffer;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

// What callers match on inside `NoiseError::Handshake`.
#[allow(unreachable_pub)]
pub use peerswarm_proto::noise::HandshakeError;

/// Why a Noise upgrade failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
// Re-exported by `upgrade` once it is wired into the crate.
#[allow(unreachable_pub)]
pub enum NoiseError {
    /// The socket failed or closed mid-handshake (EOF is
    /// [`io::ErrorKind::UnexpectedEof`]).
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    /// The handshake was rejected: bad message or signature, wrong peer,
    /// no common muxer, ... (see [`HandshakeError`]).
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
}

/// Secures a connection we dialed: runs the initiator's side of the
/// handshake, checks that the remote is `expected` (when given) and
/// offers `muxers` in order of preference (empty: no extension is sent).
///
/// Errors are typed: [`HandshakeError::PeerIdMismatch`] names both IDs.
#[cfg_attr(not(test), allow(dead_code))] // the upgrader uses the `_cached` form
pub(crate) async fn upgrade_outbound<S>(
    io: S,
    local: &Keypair,
    expected: Option<PeerId>,
    muxers: &[String],
) -> Result<(NoiseStream<S>, SecureInfo), NoiseError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    drive(io, Handshake::initiator(local, expected, muxers)?).await
}

/// The node's Noise static key ([`NoiseKey`]): made on first use, then
/// shared by every handshake of the endpoint (clones share it). One static
/// key per node saves a key generation and a signature per handshake; each
/// handshake still has fresh ephemeral keys.
#[derive(Clone, Default)]
pub(crate) struct NoiseKeyCache(Arc<Mutex<Option<NoiseKey>>>);

impl NoiseKeyCache {
    fn get(&self, identity: &Keypair) -> Result<NoiseKey, HandshakeError> {
        let mut slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(key) = &*slot {
            return Ok(key.clone());
        }
        let key = NoiseKey::new(identity)?;
        *slot = Some(key.clone());
        Ok(key)
    }
}

impl std::fmt::Debug for NoiseKeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoiseKeyCache").finish_non_exhaustive()
    }
}

/// [`upgrade_outbound`] with the node's static key from `cache`.
pub(crate) async fn upgrade_outbound_cached<S>(
    io: S,
    cache: &NoiseKeyCache,
    local: &Keypair,
    expected: Option<PeerId>,
    muxers: &[String],
) -> Result<(NoiseStream<S>, SecureInfo), NoiseError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    drive(io, Handshake::initiator_with_key(&cache.get(local)?, expected, muxers)?).await
}

/// [`upgrade_inbound`] with the node's static key from `cache`.
pub(crate) async fn upgrade_inbound_cached<S>(
    io: S,
    cache: &NoiseKeyCache,
    local: &Keypair,
    muxers: &[String],
) -> Result<(NoiseStream<S>, SecureInfo), NoiseError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    drive(io, Handshake::responder_with_key(&cache.get(local)?, muxers)?).await
}

/// Secures a connection the remote dialed: runs the responder's side of the
/// handshake and lists `muxers` (empty: no extension is sent).
#[cfg_attr(not(test), allow(dead_code))] // the upgrader uses the `_cached` form
pub(crate) async fn upgrade_inbound<S>(
    io: S,
    local: &Keypair,
    muxers: &[String],
) -> Result<(NoiseStream<S>, SecureInfo), NoiseError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    drive(io, Handshake::responder(local, muxers)?).await
}

/// Moves handshake frames until the handshake is done. Bytes read past the
/// last handshake frame (transport frames the initiator pipelined) stay in
/// the read buffer, which the stream takes over.
async fn drive<S>(mut io: S, mut handshake: Handshake) -> Result<(NoiseStream<S>, SecureInfo), NoiseError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut rbuf = ReadBuffer::new();
    // When our latest flight left, until the first answer to it: the
    // handshake's round trip, a free RTT estimate for the muxer's windows.
    let mut flight_sent: Option<Instant> = None;
    let mut rtt = None;
    loop {
        let mut sent = false;
        while let Some(frame) = handshake.poll_transmit() {
            io.write_all(&frame).await?;
            sent = true;
        }
        if sent {
            io.flush().await?;
            flight_sent = Some(Instant::now());
        }
        if handshake.is_finished() {
            break;
        }
        let used = handshake.handle_input(rbuf.filled())?;
        if used > 0 {
            if let Some(sent_at) = flight_sent.take() {
                rtt = Some(sent_at.elapsed());
            }
            rbuf.consume(used);
            continue;
        }
        let needed = peerswarm_proto::noise::decode_frame_header(rbuf.filled())
            .map_or(FRAME_HEADER_LEN, |len| FRAME_HEADER_LEN + len);
        if poll_fn(|cx| rbuf.poll_fill(&mut io, cx, needed)).await? == 0 {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
        }
    }
    let role = handshake.role();
    let established = handshake
        .into_established()
        .ok_or(HandshakeError::Internal { reason: "finished handshake without a result" })?;
    tracing::debug!(?role, remote = %established.remote_peer_id, muxer = ?established.muxer, "noise: handshake done");
    let info = SecureInfo {
        remote_peer_id: established.remote_peer_id,
        remote_public_key: established.remote_public_key,
        muxer: established.muxer,
        handshake_rtt: rtt,
    };
    Ok((NoiseStream::new(io, established.send, established.recv, rbuf), info))
}
