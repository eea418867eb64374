//! The upgrader: turns a raw transport stream into an authenticated,
//! multiplexed connection.
//!
//! ```text
//! outbound: TCP ─ multistream (lazy: "/noise") ─ Noise XX ─┬─ muxer agreed in Noise ─┬─ yamux (client)
//!                                                          └─ multistream (lazy: "/yamux/1.0.0") ─┘
//! inbound:  TCP ─ multistream (answer "/noise") ─ Noise XX ─┬─ muxer agreed in Noise ─┬─ yamux (server)
//!                                                           └─ multistream (answer) ───┘
//! ```
//!
//! The dialer proposes exactly one security protocol and one muxer, so both
//! negotiations are optimistic: the multistream header and proposal ride in
//! the same write as the first handshake message (or the first yamux frame),
//! and no round trip is spent waiting for the echo. When both sides offer
//! Noise's `stream_muxers` extension, the muxer is agreed inside the
//! handshake and the second negotiation disappears altogether.
//!
//! The whole upgrade runs under one deadline (`handshake_timeout`): a peer
//! that connects and then says nothing costs us one timer, not a task forever.
//!
//! # Private networks
//!
//! With a pre-shared key ([`EndpointConfig::with_private_network`]), the
//! TCP stream is wrapped before anything else: each side sends a random
//! 24-byte nonce, then everything (multistream, Noise, yamux) is XSalsa20
//! encrypted under the key (`pnet/Private-Networks-PSK-V1.md`). The nonce
//! rides in the first write, so this costs no round trip. A peer with
//! another key (or none) decrypts to garbage; the failure shows up as a
//! negotiation error, a handshake error, EOF or a timeout, and is reported
//! wrapped in [`UpgradeError::PrivateNetwork`].
//!
//! [`EndpointConfig::with_private_network`]: crate::EndpointConfig::with_private_network

use crate::multistream::{self, NegotiationError};
use crate::security::pnet::PnetStream;
use crate::security::{noise, plaintext, SecureInfo};
use crate::swarm::{ConnAddrs, ConnectionGater};
use crate::yamux;
use crate::Direction;
use peerswarm_proto::identity::{Keypair, PeerId};
use peerswarm_proto::pnet::PreSharedKey;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

pub use crate::security::noise::NoiseError;
pub use crate::security::plaintext::PlaintextError;

/// The protocol ID of Noise, the default security protocol.
pub const NOISE_PROTOCOL: &str = "/noise";
/// The protocol ID of plaintext, the insecure test-only "security" protocol.
pub const PLAINTEXT_PROTOCOL: &str = "/plaintext/2.0.0";
/// The protocol ID of yamux, the stream muxer.
pub const YAMUX_PROTOCOL: &str = "/yamux/1.0.0";

/// How connections are secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Security {
    /// Noise XX (`/noise`): authenticated and encrypted. The default.
    #[default]
    Noise,
    /// `/plaintext/2.0.0`: peer IDs are exchanged but **nothing is
    /// authenticated or encrypted**. For tests and benchmarks only.
    InsecurePlaintext,
}

impl Security {
    fn protocol_id(self) -> &'static str {
        match self {
            Security::Noise => NOISE_PROTOCOL,
            Security::InsecurePlaintext => PLAINTEXT_PROTOCOL,
        }
    }
}

/// Why a connection could not be upgraded.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum UpgradeError {
    /// The peers could not agree on a security protocol.
    #[error("security protocol negotiation failed: {0}")]
    SecurityNegotiation(#[source] NegotiationError),
    /// The Noise handshake failed (bad signature, wrong peer, bad frame, ...).
    #[error("noise handshake failed: {0}")]
    Noise(#[source] NoiseError),
    /// The plaintext exchange failed.
    #[error("plaintext handshake failed: {0}")]
    Plaintext(#[source] PlaintextError),
    /// The peers could not agree on a stream muxer.
    #[error("muxer negotiation failed: {0}")]
    MuxerNegotiation(#[source] NegotiationError),
    /// The handshake agreed on a muxer that this node does not implement.
    #[error("unsupported muxer {0:?}")]
    UnsupportedMuxer(String),
    /// The connection gater refused the authenticated peer.
    #[error("gater refused connection with {peer}")]
    Gated {
        /// The authenticated remote.
        peer: Box<PeerId>,
    },
    /// The socket failed while finishing the upgrade.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The upgrade did not finish within the handshake timeout.
    #[error("handshake timed out")]
    Timeout,
    /// A connection in a private network failed before it was secured
    /// (`source` says how). The likely cause is a remote with a different
    /// pre-shared key, or none: its bytes decrypt to garbage, so the
    /// mismatch surfaces as a negotiation or handshake error, EOF or a
    /// timeout. Only produced when this node has a pre-shared key.
    #[error("{source} (private network: the remote likely has a different pre-shared key, or none)")]
    PrivateNetwork {
        /// What went wrong below the security protocol.
        source: Box<UpgradeError>,
    },
}

/// A connection fresh out of the upgrader.
#[derive(Debug)]
pub(crate) struct Upgraded {
    pub(crate) muxer: yamux::Connection,
    pub(crate) info: SecureInfo,
}

/// Settings shared by every upgrade an endpoint performs.
#[derive(Clone)]
pub(crate) struct Upgrader {
    pub(crate) keypair: Keypair,
    pub(crate) security: Security,
    pub(crate) yamux: yamux::Config,
    pub(crate) handshake_timeout: Duration,
    pub(crate) gater: Option<Arc<dyn ConnectionGater>>,
    /// The private network's key: when set, every connection is wrapped in
    /// a [`PnetStream`] before security negotiation.
    pub(crate) psk: Option<PreSharedKey>,
    /// The Noise static key, made once for all of the endpoint's handshakes.
    pub(crate) noise_key: noise::NoiseKeyCache,
}

impl std::fmt::Debug for Upgrader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upgrader")
            .field("security", &self.security)
            .field("psk", &self.psk)
            .finish_non_exhaustive()
    }
}

impl Upgrader {
    fn muxers() -> Vec<String> {
        vec![YAMUX_PROTOCOL.to_owned()]
    }

    /// The gater's `intercept_secured` hook, between security and muxer.
    /// Marks the connection `secured`: a private-network key mismatch can no
    /// longer be the cause of a failure.
    fn check_secured(
        &self,
        direction: Direction,
        info: &SecureInfo,
        addrs: &ConnAddrs,
        secured: &AtomicBool,
    ) -> Result<(), UpgradeError> {
        secured.store(true, Ordering::Relaxed);
        match &self.gater {
            Some(g) if !g.intercept_secured(direction, &info.remote_peer_id, addrs) => {
                Err(UpgradeError::Gated { peer: Box::new(info.remote_peer_id) })
            }
            _ => Ok(()),
        }
    }

    /// Upgrades a connection we initiated, checking the remote is `expected`.
    pub(crate) async fn outbound<S>(
        &self,
        io: S,
        expected: Option<PeerId>,
        addrs: ConnAddrs,
    ) -> Result<Upgraded, UpgradeError>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let secured = AtomicBool::new(false);
        let upgrade = async {
            match &self.psk {
                Some(psk) => self.outbound_inner(PnetStream::new(io, psk), expected, addrs, &secured).await,
                None => self.outbound_inner(io, expected, addrs, &secured).await,
            }
        };
        let result = tokio::time::timeout(self.handshake_timeout, upgrade).await;
        self.finish(result, &secured)
    }

    /// Upgrades a connection the remote initiated.
    pub(crate) async fn inbound<S>(&self, io: S, addrs: ConnAddrs) -> Result<Upgraded, UpgradeError>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let secured = AtomicBool::new(false);
        let upgrade = async {
            match &self.psk {
                Some(psk) => self.inbound_inner(PnetStream::new(io, psk), addrs, &secured).await,
                None => self.inbound_inner(io, addrs, &secured).await,
            }
        };
        let result = tokio::time::timeout(self.handshake_timeout, upgrade).await;
        self.finish(result, &secured)
    }

    /// Maps a timeout to [`UpgradeError::Timeout`] and, in a private
    /// network, wraps a failure before the connection was secured in
    /// [`UpgradeError::PrivateNetwork`].
    fn finish(
        &self,
        result: Result<Result<Upgraded, UpgradeError>, tokio::time::error::Elapsed>,
        secured: &AtomicBool,
    ) -> Result<Upgraded, UpgradeError> {
        let error = match result {
            Ok(Ok(upgraded)) => return Ok(upgraded),
            Ok(Err(error)) => error,
            Err(_) => UpgradeError::Timeout,
        };
        if self.psk.is_some() && !secured.load(Ordering::Relaxed) {
            return Err(UpgradeError::PrivateNetwork { source: Box::new(error) });
        }
        Err(error)
    }

    async fn outbound_inner<S>(
        &self,
        io: S,
        expected: Option<PeerId>,
        addrs: ConnAddrs,
        secured: &AtomicBool,
    ) -> Result<Upgraded, UpgradeError>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (_, io) = multistream::dialer_select(io, [self.security.protocol_id()], true)
            .await
            .map_err(UpgradeError::SecurityNegotiation)?;
        match self.security {
            Security::Noise => {
                let (io, info) = noise::upgrade_outbound_cached(
                    io,
                    &self.noise_key,
                    &self.keypair,
                    expected,
                    &Self::muxers(),
                )
                .await
                .map_err(UpgradeError::Noise)?;
                self.check_secured(Direction::Outbound, &info, &addrs, secured)?;
                self.mux(io, info, yamux::Role::Client, |io| Box::new(io)).await
            }
            Security::InsecurePlaintext => {
                let (io, info) = plaintext::handshake(io, &self.keypair, expected)
                    .await
                    .map_err(UpgradeError::Plaintext)?;
                self.check_secured(Direction::Outbound, &info, &addrs, secured)?;
                self.mux(io, info, yamux::Role::Client, yamux::plain_io).await
            }
        }
    }

    async fn inbound_inner<S>(
        &self,
        io: S,
        addrs: ConnAddrs,
        secured: &AtomicBool,
    ) -> Result<Upgraded, UpgradeError>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let wanted = self.security.protocol_id();
        let (_, io) = multistream::listener_select_coalesced(io, |p| p == wanted)
            .await
            .map_err(UpgradeError::SecurityNegotiation)?;
        match self.security {
            Security::Noise => {
                let (io, info) =
                    noise::upgrade_inbound_cached(io, &self.noise_key, &self.keypair, &Self::muxers())
                        .await
                        .map_err(UpgradeError::Noise)?;
                self.check_secured(Direction::Inbound, &info, &addrs, secured)?;
                self.mux(io, info, yamux::Role::Server, |io| Box::new(io)).await
            }
            Security::InsecurePlaintext => {
                let (io, info) =
                    plaintext::handshake(io, &self.keypair, None).await.map_err(UpgradeError::Plaintext)?;
                self.check_secured(Direction::Inbound, &info, &addrs, secured)?;
                self.mux(io, info, yamux::Role::Server, yamux::plain_io).await
            }
        }
    }

    /// Agrees on the muxer (unless the security handshake already did) and
    /// starts its driver.
    /// `boxed` hands `io` to the muxer as is (a Noise channel then gives
    /// the muxer its decrypted frames without a copy).
    async fn mux<S>(
        &self,
        io: S,
        info: SecureInfo,
        role: yamux::Role,
        boxed: fn(S) -> Box<dyn yamux::ConnIo>,
    ) -> Result<Upgraded, UpgradeError>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        // The handshake's round trip seeds the muxer's RTT estimate (and
        // saves its probe ping). An initiator's sample can be too high (its
        // first flight may wait for a path a proxy is still setting up),
        // which only makes window growth bolder; the first window update
        // measures with a ping.
        let rtt_seed = info.handshake_rtt;
        let muxer = match info.muxer.as_deref() {
            Some(YAMUX_PROTOCOL) => yamux::Connection::with_io(boxed(io), role, self.yamux.clone(), rtt_seed),
            Some(other) => return Err(UpgradeError::UnsupportedMuxer(other.to_owned())),
            None => {
                let io = match role {
                    yamux::Role::Client => {
                        let (_, mut io) = multistream::dialer_select(io, [YAMUX_PROTOCOL], true)
                            .await
                            .map_err(UpgradeError::MuxerNegotiation)?;
                        // Send the proposal now rather than with the first
                        // frame: the listener may want to open the first stream.
                        io.flush().await?;
                        io
                    }
                    yamux::Role::Server => {
                        multistream::listener_select(io, |p| p == YAMUX_PROTOCOL)
                            .await
                            .map_err(UpgradeError::MuxerNegotiation)?
                            .1
                    }
                };
                yamux::Connection::with_io(yamux::plain_io(io), role, self.yamux.clone(), rtt_seed)
            }
        };
        Ok(Upgraded { muxer, info })
    }
}
