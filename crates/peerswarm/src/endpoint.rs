//! The endpoint: dials and listens, and hands out upgraded [`Connection`]s.
//!
//! An endpoint is the lowest public layer: one local identity, the
//! transports and the upgrader. It tracks nothing about the connections it
//! makes; the swarm builds peer bookkeeping on top of it.

use crate::connection::{Connection, Direction};
use crate::swarm::{ConnAddrs, ConnectionGater};
use crate::transport::{RawConn, RawListener, Transport, TransportError, Transports};
use crate::upgrade::{Security, UpgradeError, Upgrader};
use crate::yamux;
use multiaddr::Multiaddr;
use peerswarm_proto::identity::{Keypair, PeerId};
use peerswarm_proto::pnet::PreSharedKey;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;

/// Settings of an [`Endpoint`]. Build with [`EndpointConfig::new`], then the
/// `with_*` setters.
#[derive(Clone)]
pub struct EndpointConfig {
    keypair: Keypair,
    security: Security,
    yamux: yamux::Config,
    handshake_timeout: Duration,
    negotiation_timeout: Duration,
    max_pending_inbound: usize,
    accept_backlog: usize,
    gater: Option<Arc<dyn ConnectionGater>>,
    transports: Transports,
    psk: Option<PreSharedKey>,
}

impl std::fmt::Debug for EndpointConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointConfig")
            .field("peer", &self.keypair.public().to_peer_id())
            .field("security", &self.security)
            .field("private_network", &self.psk)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("max_pending_inbound", &self.max_pending_inbound)
            .finish_non_exhaustive()
    }
}

impl EndpointConfig {
    /// Defaults around the node's identity: Noise, yamux with its defaults,
    /// a 10 s handshake timeout, 64 pending inbound handshakes.
    pub fn new(keypair: Keypair) -> Self {
        Self {
            keypair,
            security: Security::Noise,
            yamux: yamux::Config::default(),
            handshake_timeout: Duration::from_secs(10),
            negotiation_timeout: Duration::from_secs(10),
            max_pending_inbound: 64,
            accept_backlog: 32,
            gater: None,
            transports: Transports::default(),
            psk: None,
        }
    }

    /// Replaces Noise with `/plaintext/2.0.0`: **no encryption and no
    /// authentication**; any peer can claim any peer ID. Tests and benchmarks
    /// only. Default: off.
    pub fn with_insecure_plaintext(mut self) -> Self {
        self.security = Security::InsecurePlaintext;
        self
    }

    /// Joins the private network of `psk` (libp2p pnet): every connection
    /// is encrypted with the pre-shared key under the security protocol,
    /// and only peers holding the same key can connect. Dials to other
    /// peers fail with [`UpgradeError::PrivateNetwork`]. Default: off (the
    /// public network). Costs one XSalsa20 pass over every byte and a
    /// 24-byte nonce each way; no extra round trip.
    ///
    /// [`UpgradeError::PrivateNetwork`]: crate::upgrade::UpgradeError::PrivateNetwork
    pub fn with_private_network(mut self, psk: PreSharedKey) -> Self {
        self.psk = Some(psk);
        self
    }

    /// The yamux settings (windows, stream caps, keep-alive, idle-stream
    /// timeout). Unless the config carries its own
    /// [`BufferBudget`](yamux::BufferBudget), the endpoint gives all its
    /// connections one of [`DEFAULT_NODE_BUFFER_BUDGET`](yamux::DEFAULT_NODE_BUFFER_BUDGET)
    /// bytes: received-but-unread stream data of the whole node stays under it.
    pub fn with_yamux_config(mut self, config: yamux::Config) -> Self {
        self.yamux = config;
        self
    }

    /// The time allowed from TCP connect (or accept) to a secured and
    /// multiplexed connection. Default 10 s. A shorter timeout frees the
    /// resources of silent peers sooner but fails on very slow links.
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// The time allowed to agree on a stream's protocol. Default 10 s.
    pub fn with_negotiation_timeout(mut self, timeout: Duration) -> Self {
        self.negotiation_timeout = timeout;
        self
    }

    /// How many inbound connections may be handshaking at once, per listener.
    /// Connections arriving beyond it are closed at once. Default 64. Each
    /// pending handshake costs a socket and a few KiB.
    pub fn with_max_pending_inbound(mut self, max: usize) -> Self {
        self.max_pending_inbound = max.max(1);
        self
    }

    /// The transports to dial and listen through. Default: TCP.
    pub fn with_transports(mut self, transports: Transports) -> Self {
        self.transports = transports;
        self
    }

    /// The transports this endpoint uses.
    pub fn transports(&self) -> &Transports {
        &self.transports
    }

    /// Gates connections (accept and secured hooks; the swarm applies the
    /// others).
    pub(crate) fn with_gater(mut self, gater: Option<Arc<dyn ConnectionGater>>) -> Self {
        self.gater = gater;
        self
    }

    /// The node's identity.
    pub fn keypair(&self) -> &Keypair {
        &self.keypair
    }
}

/// Dials and listens with one local identity. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Endpoint {
    inner: Arc<EndpointInner>,
}

#[derive(Debug)]
struct EndpointInner {
    upgrader: Upgrader,
    local_peer_id: PeerId,
    config: EndpointConfig,
}

impl Endpoint {
    /// Creates an endpoint. Nothing is opened until `listen` or `dial`.
    pub fn new(config: EndpointConfig) -> Self {
        let mut yamux = config.yamux.clone();
        if yamux.buffer_budget().is_none() {
            yamux.set_buffer_budget(Some(yamux::BufferBudget::new(yamux::DEFAULT_NODE_BUFFER_BUDGET)));
        }
        let upgrader = Upgrader {
            keypair: config.keypair.clone(),
            security: config.security,
            yamux,
            handshake_timeout: config.handshake_timeout,
            gater: config.gater.clone(),
            psk: config.psk.clone(),
            noise_key: Default::default(),
        };
        let local_peer_id = config.keypair.public().to_peer_id();
        Self { inner: Arc::new(EndpointInner { upgrader, local_peer_id, config }) }
    }

    /// This node's peer ID.
    pub fn local_peer_id(&self) -> PeerId {
        self.inner.local_peer_id
    }

    /// Connects to `addr`, secures and multiplexes the connection.
    ///
    /// With `expected` set, the handshake fails unless the remote proves that
    /// identity. The whole dial (TCP connect included) is bounded by the
    /// handshake timeout.
    pub async fn dial(
        &self,
        addr: &Multiaddr,
        expected: Option<PeerId>,
    ) -> Result<Connection, TransportError> {
        self.dial_with_timeout(addr, expected, self.inner.config.handshake_timeout).await
    }

    /// [`dial`](Self::dial) bounded by `timeout` instead of the handshake
    /// timeout.
    pub(crate) async fn dial_with_timeout(
        &self,
        addr: &Multiaddr,
        expected: Option<PeerId>,
        timeout: Duration,
    ) -> Result<Connection, TransportError> {
        let connected = AtomicBool::new(false);
        let dial = async {
            let transport = self.transport_for_dial(addr)?;
            let RawConn { io, local_addr, remote_addr } = transport.dial(addr.clone()).await?;
            connected.store(true, Ordering::Relaxed);
            let upgraded = self
                .inner
                .upgrader
                .outbound(io, expected, ConnAddrs { local: local_addr.clone(), remote: remote_addr.clone() })
                .await
                .map_err(|source| TransportError::Upgrade { addr: addr.clone(), source })?;
            Ok(Connection::new(
                upgraded,
                local_addr,
                remote_addr,
                Direction::Outbound,
                self.inner.config.negotiation_timeout,
            ))
        };
        tokio::time::timeout(timeout, dial)
            .await
            .map_err(|_| self.dial_timed_out(addr, connected.load(Ordering::Relaxed)))?
    }

    /// The error of a dial that ran out of time: [`TransportError::Timeout`],
    /// except in a private network once the raw connection was made. Then
    /// the likely cause is a remote with another key that waits, silent, for
    /// the rest of a first message its garbage announced (rust-libp2p's
    /// listener does), and the error says so like the upgrader's own.
    fn dial_timed_out(&self, addr: &Multiaddr, connected: bool) -> TransportError {
        if connected && self.inner.upgrader.psk.is_some() {
            let source = UpgradeError::PrivateNetwork { source: Box::new(UpgradeError::Timeout) };
            return TransportError::Upgrade { addr: addr.clone(), source };
        }
        TransportError::Timeout { addr: addr.clone() }
    }

    fn transport_for_dial(&self, addr: &Multiaddr) -> Result<&dyn Transport, TransportError> {
        self.inner
            .config
            .transports
            .for_dial(addr)
            .ok_or_else(|| TransportError::UnsupportedAddress(addr.clone()))
    }

    /// Whether a registered transport can dial `addr`.
    pub fn can_dial(&self, addr: &Multiaddr) -> bool {
        self.inner.config.transports.for_dial(addr).is_some()
    }

    /// Whether a registered transport can listen on `addr`.
    pub fn can_listen(&self, addr: &Multiaddr) -> bool {
        self.inner.config.transports.for_listen(addr).is_some()
    }

    /// Starts listening on `addr` (`/ip4|ip6/A/tcp/P` with TCP; port 0 picks
    /// a free port, reported by [`Listener::local_addr`]).
    pub async fn listen(&self, addr: &Multiaddr) -> Result<Listener, TransportError> {
        let transport = self
            .inner
            .config
            .transports
            .for_listen(addr)
            .ok_or_else(|| TransportError::UnsupportedAddress(addr.clone()))?;
        let socket = transport.listen(addr)?;
        let local_addr = socket.local_addr().clone();
        let config = &self.inner.config;
        let (tx, rx) = mpsc::channel(config.accept_backlog);
        let task = tokio::spawn(accept_loop(
            socket,
            self.inner.upgrader.clone(),
            Arc::new(Semaphore::new(config.max_pending_inbound)),
            config.negotiation_timeout,
            tx,
        ));
        Ok(Listener { local_addr, incoming: rx, task })
    }
}

/// Accepts raw connections and upgrades each in its own task, at most
/// `pending` at a time; upgraded connections queue in `tx` (bounded) until
/// [`Listener::accept`] takes them.
async fn accept_loop(
    mut socket: RawListener,
    upgrader: Upgrader,
    pending: Arc<Semaphore>,
    negotiation_timeout: Duration,
    tx: mpsc::Sender<Connection>,
) {
    // Upgrades live in this set so that closing the listener aborts them.
    let mut upgrades = JoinSet::new();
    let local_addr = socket.local_addr().clone();
    loop {
        let accepted = tokio::select! {
            accepted = socket.accept() => accepted,
            Some(_) = upgrades.join_next(), if !upgrades.is_empty() => continue,
            _ = tx.closed() => return,
        };
        let raw = match accepted {
            Ok(raw) => raw,
            Err(error) => {
                // Typically EMFILE: back off instead of spinning on the error.
                tracing::warn!(%local_addr, %error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let RawConn { io, local_addr, remote_addr } = raw;
        let Ok(permit) = pending.clone().try_acquire_owned() else {
            tracing::debug!(%remote_addr, "too many pending inbound handshakes; dropping connection");
            continue;
        };
        let addrs = ConnAddrs { local: local_addr.clone(), remote: remote_addr.clone() };
        if upgrader.gater.as_ref().is_some_and(|g| !g.intercept_accept(&addrs)) {
            tracing::debug!(%remote_addr, "gater refused inbound connection");
            continue;
        }
        let upgrader = upgrader.clone();
        let tx = tx.clone();
        upgrades.spawn(async move {
            match upgrader.inbound(io, addrs).await {
                Ok(upgraded) => {
                    let conn = Connection::new(
                        upgraded,
                        local_addr,
                        remote_addr,
                        Direction::Inbound,
                        negotiation_timeout,
                    );
                    // Hold the permit while queued: a full queue throttles accepts.
                    let _ = tx.send(conn).await;
                }
                Err(error) => tracing::debug!(%remote_addr, %error, "inbound upgrade failed"),
            }
            drop(permit);
        });
    }
}

/// A listening socket, yielding upgraded inbound connections.
///
/// Dropping it closes the socket and aborts handshakes in progress;
/// connections already accepted live on.
#[derive(Debug)]
pub struct Listener {
    local_addr: Multiaddr,
    incoming: mpsc::Receiver<Connection>,
    task: tokio::task::JoinHandle<()>,
}

impl Listener {
    /// The address bound, with the real port.
    pub fn local_addr(&self) -> &Multiaddr {
        &self.local_addr
    }

    /// The next upgraded inbound connection. Connections whose handshake
    /// fails are logged and skipped; `None` once the listener has stopped.
    pub async fn accept(&mut self) -> Option<Connection> {
        self.incoming.recv().await
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}
