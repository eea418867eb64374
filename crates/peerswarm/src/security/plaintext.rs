//! `/plaintext/2.0.0` over any stream. **Tests and benchmarks only**: the
//! remote's key is taken on its word and nothing is encrypted.
//!
//! Both sides write their `Exchange` (see [`peerswarm_proto::plaintext`]),
//! then read the remote's. The remote's exchange is read exactly (length
//! prefix a byte at a time, then the body), so bytes the remote pipelines
//! behind it stay in the stream for the next layer.

use super::SecureInfo;
use peerswarm_proto::identity::{Keypair, PeerId};
use peerswarm_proto::plaintext::{decode_length_prefix, Exchange};
use std::io;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use peerswarm_proto::plaintext::ExchangeError;

/// Why a plaintext handshake failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
// Reachable once `upgrade` (which re-exports it) is wired into the crate.
#[allow(unreachable_pub)]
pub enum PlaintextError {
    /// The stream failed or closed (EOF is [`io::ErrorKind::UnexpectedEof`]).
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    /// The remote's exchange is malformed, too large, or its peer ID does
    /// not match its key.
    #[error("invalid exchange: {0}")]
    Exchange(#[from] ExchangeError),
    /// The remote is not the peer we dialed.
    #[error("expected peer {expected}, remote is {actual}")]
    PeerIdMismatch {
        /// The peer ID we dialed (boxed to keep the error small).
        expected: Box<PeerId>,
        /// The peer ID the remote presented.
        actual: Box<PeerId>,
    },
}

/// Runs the exchange: sends our key, reads and validates the remote's, and
/// checks it against `expected` when given. The stream is returned as is;
/// `muxer` is always `None`.
///
/// Not cancel safe; there is no timeout here (the upgrader has one).
#[cfg_attr(not(test), allow(dead_code))] // used by `upgrade` once it is wired in
pub(crate) async fn handshake<S>(
    mut io: S,
    local: &Keypair,
    expected: Option<PeerId>,
) -> Result<(S, SecureInfo), PlaintextError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    io.write_all(&Exchange::new(local.public()).encode_framed()).await?;
    io.flush().await?;

    let mut prefix = Vec::with_capacity(2);
    let len = loop {
        prefix.push(io.read_u8().await?);
        if let Some((len, _)) = decode_length_prefix(&prefix)? {
            break len;
        }
    };
    // `len` is at most MAX_EXCHANGE_LEN (checked by decode_length_prefix).
    let mut body = vec![0; len];
    io.read_exact(&mut body).await?;
    let remote = Exchange::decode(&body)?;
    tracing::trace!(remote = %remote.peer_id, "plaintext: received exchange");

    if let Some(expected) = expected {
        if expected != remote.peer_id {
            return Err(PlaintextError::PeerIdMismatch {
                expected: Box::new(expected),
                actual: Box::new(remote.peer_id),
            });
        }
    }
    Ok((
        io,
        SecureInfo {
            remote_peer_id: remote.peer_id,
            remote_public_key: remote.public_key,
            muxer: None,
            handshake_rtt: None,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use peerswarm_proto::identity::ed25519_from_seed;
    use peerswarm_proto::plaintext::MAX_EXCHANGE_LEN;
    use tokio::io::duplex;

    #[tokio::test]
    async fn both_sides_learn_each_other() {
        let (a, b) = duplex(4096);
        let (ka, kb) = (ed25519_from_seed([1; 32]), ed25519_from_seed([2; 32]));
        let (ra, rb) =
            tokio::join!(handshake(a, &ka, Some(kb.public().to_peer_id())), handshake(b, &kb, None));
        let ((mut a, info_a), (mut b, info_b)) = (ra.unwrap(), rb.unwrap());
        assert_eq!(info_a.remote_peer_id, kb.public().to_peer_id());
        assert_eq!(info_a.remote_public_key, kb.public());
        assert_eq!(info_b.remote_peer_id, ka.public().to_peer_id());
        assert!(info_a.muxer.is_none() && info_b.muxer.is_none());
        a.write_all(b"after").await.unwrap();
        let mut buf = [0u8; 5];
        b.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"after");
    }

    #[tokio::test]
    async fn wrong_peer_is_a_typed_error() {
        let (a, b) = duplex(4096);
        let (ka, kb) = (ed25519_from_seed([1; 32]), ed25519_from_seed([2; 32]));
        let other = ed25519_from_seed([3; 32]).public().to_peer_id();
        let (ra, _) = tokio::join!(handshake(a, &ka, Some(other)), handshake(b, &kb, None));
        match ra {
            Err(PlaintextError::PeerIdMismatch { expected, actual }) => {
                assert_eq!(*expected, other);
                assert_eq!(*actual, kb.public().to_peer_id());
            }
            other => panic!("expected a mismatch, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn pipelined_bytes_are_left_in_the_stream() {
        let (a, mut b) = duplex(4096);
        let kb = ed25519_from_seed([2; 32]);
        let mut out = Exchange::new(kb.public()).encode_framed();
        out.extend_from_slice(b"next layer");
        b.write_all(&out).await.unwrap();
        let (mut a, info) = handshake(a, &ed25519_from_seed([1; 32]), None).await.unwrap();
        assert_eq!(info.remote_peer_id, kb.public().to_peer_id());
        let mut buf = [0u8; 10];
        a.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"next layer");
    }

    #[tokio::test]
    async fn oversized_and_forged_exchanges_are_rejected() {
        let (a, mut b) = duplex(4096);
        b.write_all(&[0xff, 0x7f]).await.unwrap();
        let err = handshake(a, &ed25519_from_seed([1; 32]), None).await.unwrap_err();
        assert!(
            matches!(err, PlaintextError::Exchange(ExchangeError::TooLong { max: MAX_EXCHANGE_LEN, .. })),
            "{err:?}"
        );

        let (a, mut b) = duplex(4096);
        let forged = Exchange {
            peer_id: ed25519_from_seed([9; 32]).public().to_peer_id(),
            public_key: ed25519_from_seed([2; 32]).public(),
        };
        b.write_all(&forged.encode_framed()).await.unwrap();
        let err = handshake(a, &ed25519_from_seed([1; 32]), None).await.unwrap_err();
        assert!(matches!(err, PlaintextError::Exchange(ExchangeError::PeerIdMismatch { .. })), "{err:?}");
    }

    #[tokio::test]
    async fn eof_is_an_io_error() {
        let (a, b) = duplex(4096);
        drop(b);
        let err = handshake(a, &ed25519_from_seed([1; 32]), None).await.unwrap_err();
        assert!(matches!(err, PlaintextError::Io(_)), "{err:?}");
    }

    #[tokio::test]
    async fn over_lazy_multistream() {
        use crate::multistream::{dialer_select, listener_select};
        let (a, b) = duplex(4096);
        let (ka, kb) = (ed25519_from_seed([1; 32]), ed25519_from_seed([2; 32]));
        let dialer = async {
            let (_, io) = dialer_select(a, ["/plaintext/2.0.0"], true).await.unwrap();
            handshake(io, &ka, Some(kb.public().to_peer_id())).await.unwrap()
        };
        let listener = async {
            let (_, io) = listener_select(b, |p| p == "/plaintext/2.0.0").await.unwrap();
            handshake(io, &kb, None).await.unwrap()
        };
        let ((_, ia), (_, ib)) = tokio::join!(dialer, listener);
        assert_eq!(ia.remote_peer_id, kb.public().to_peer_id());
        assert_eq!(ib.remote_peer_id, ka.public().to_peer_id());
    }
}
