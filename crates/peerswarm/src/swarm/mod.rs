//! The swarm: a node's connections to peers, and the streams over them.
//!
//! A [`Swarm`] listens, dials peers by peer ID (one dial per peer at a time,
//! ranked addresses, per-address backoff, a global dial limiter, timeouts),
//! keeps every live connection, hands inbound streams to a handler, notifies
//! subscribers, gates connections and meters bandwidth. It is go-libp2p's
//! swarm behind cheap clonable handles: no poll loop for the user; each
//! connection has a spawned driver.
//!
//! # Shutdown
//!
//! [`Swarm::close`] is orderly and idempotent: listeners close (each with a
//! `listen_close` notification), every connection closes (its streams are
//! reset, `disconnected` fires), in-flight dials are abandoned; then every
//! call returns [`DialCause::SwarmClosed`] or its equivalent.

mod conn;
pub mod dial;
mod dialer;
mod gater;
mod limits;
pub(crate) mod metrics;
mod notify;
mod resolve;

pub(crate) use conn::StreamRegistration;
pub use conn::{Conn, ConnStat, StreamInfo};
pub use dial::DialCause;
pub use dialer::SharedTransportError;

/// Why `dial_peer` failed: the cause, and what happened at each address.
pub type DialError = dial::DialError<SharedTransportError>;
pub use gater::{ConnAddrs, ConnectionGater};
pub use limits::{ConnectionLimits, LimitExceeded};
pub use metrics::{BandwidthCounter, BandwidthStats, MAX_TRACKED as MAX_METERED, SAMPLE_INTERVAL};
pub use notify::{Notifiee, NotifyId};
pub use resolve::{ResolveError, Resolver, SystemResolver};

use crate::connection::{Connection, StreamError};
use crate::endpoint::{Endpoint, EndpointConfig};
use crate::peerstore::{Peerstore, PeerstoreConfig};
use crate::stream::Stream;
use crate::transport::{TransportError, Transports};
use crate::upgrade::Security;
use crate::yamux;
use futures::future::BoxFuture;
use multiaddr::{Multiaddr, Protocol};
use notify::Notifiees;
use peerswarm_proto::identity::{Keypair, PeerId};
use peerswarm_proto::pnet::PreSharedKey;
use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use thiserror::Error;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Settings of a [`Swarm`]. `Default` gives go-libp2p's values; each setter
/// documents its default and trade-off.
#[derive(Debug, Clone)]
pub struct SwarmConfig {
    pub(crate) security: Security,
    pub(crate) yamux: yamux::Config,
    pub(crate) handshake_timeout: Duration,
    pub(crate) negotiation_timeout: Duration,
    pub(crate) max_pending_inbound: usize,
    pub(crate) dial_timeout: Duration,
    pub(crate) dial_timeout_local: Duration,
    pub(crate) dial_peer_timeout: Duration,
    pub(crate) new_stream_timeout: Duration,
    pub(crate) backoff: dial::BackoffConfig,
    pub(crate) max_fd_dials: usize,
    pub(crate) max_dials_per_peer: usize,
    pub(crate) transports: Transports,
    pub(crate) limits: ConnectionLimits,
    pub(crate) psk: Option<PreSharedKey>,
}

impl Default for SwarmConfig {
    fn default() -> Self {
        Self {
            security: Security::Noise,
            yamux: yamux::Config::default(),
            handshake_timeout: Duration::from_secs(15),
            negotiation_timeout: Duration::from_secs(10),
            max_pending_inbound: 64,
            dial_timeout: Duration::from_secs(15),
            dial_timeout_local: Duration::from_secs(5),
            dial_peer_timeout: Duration::from_secs(60),
            new_stream_timeout: Duration::from_secs(15),
            backoff: dial::BackoffConfig::default(),
            max_fd_dials: 160,
            max_dials_per_peer: 8,
            transports: Transports::default(),
            limits: ConnectionLimits::default(),
            psk: None,
        }
    }
}

impl SwarmConfig {
    /// Uses `/plaintext/2.0.0` instead of Noise: **no encryption, no
    /// authentication**. Tests and benchmarks only. Default: Noise.
    pub fn with_insecure_plaintext(mut self) -> Self {
        self.security = Security::InsecurePlaintext;
        self
    }

    /// Joins the private network of `psk` (libp2p pnet, a pre-shared key):
    /// connections are encrypted with it under the security protocol, and
    /// only peers holding the same key can connect. Default: off (the
    /// public network). See [`EndpointConfig::with_private_network`].
    pub fn with_private_network(mut self, psk: PreSharedKey) -> Self {
        self.psk = Some(psk);
        self
    }

    /// The yamux settings. Default: `yamux::Config::default()`.
    pub fn with_yamux_config(mut self, config: yamux::Config) -> Self {
        self.yamux = config;
        self
    }

    /// Time from accept to a secured, multiplexed inbound connection.
    /// Default 15 s (go-libp2p's accept timeout).
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Inbound connections handshaking at once, per listener; excess are
    /// closed at once. Default 64.
    pub fn with_max_pending_inbound(mut self, max: usize) -> Self {
        self.max_pending_inbound = max.max(1);
        self
    }

    /// Time allowed for one address dial, handshake included. Default 15 s.
    pub fn with_dial_timeout(mut self, timeout: Duration) -> Self {
        self.dial_timeout = timeout;
        self
    }

    /// Dial timeout for loopback and private addresses, used when shorter
    /// than the dial timeout. Default 5 s.
    pub fn with_dial_timeout_local(mut self, timeout: Duration) -> Self {
        self.dial_timeout_local = timeout;
        self
    }

    /// Bound on one `dial_peer` call, all addresses together. Default 60 s.
    pub fn with_dial_peer_timeout(mut self, timeout: Duration) -> Self {
        self.dial_peer_timeout = timeout;
        self
    }

    /// Bound on opening one stream. Default 15 s.
    pub fn with_new_stream_timeout(mut self, timeout: Duration) -> Self {
        self.new_stream_timeout = timeout;
        self
    }

    /// Dial backoff per (peer, address). Default 5 s + 1 s × tries², at most
    /// 5 min.
    pub fn with_backoff(mut self, backoff: dial::BackoffConfig) -> Self {
        self.backoff = backoff;
        self
    }

    /// Concurrent dials that consume a file descriptor, over all peers.
    /// Default 160.
    pub fn with_max_fd_dials(mut self, max: usize) -> Self {
        self.max_fd_dials = max.max(1);
        self
    }

    /// The transports to dial and listen through, in priority order.
    /// Default: TCP.
    pub fn with_transports(mut self, transports: Transports) -> Self {
        self.transports = transports;
        self
    }

    /// Caps on connections (total, inbound, outbound, per peer, per IP).
    /// Default: [`ConnectionLimits::default`].
    pub fn with_connection_limits(mut self, limits: ConnectionLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Concurrent address dials to one peer. Default 8.
    pub fn with_max_dials_per_peer(mut self, max: usize) -> Self {
        self.max_dials_per_peer = max.max(1);
        self
    }
}

/// Why a swarm operation other than a dial failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SwarmError {
    /// The swarm has been closed.
    #[error("swarm closed")]
    Closed,
    /// No listener could be started.
    #[error("failed to listen: {}", join_errors(.0))]
    Listen(Vec<TransportError>),
    /// No transport handles this address.
    #[error("no transport for {0}")]
    NoTransport(Multiaddr),
    /// Dialing the peer failed.
    #[error(transparent)]
    Dial(Box<DialError>),
    /// Opening a stream failed.
    #[error(transparent)]
    Stream(#[from] StreamError),
}

impl From<DialError> for SwarmError {
    fn from(e: DialError) -> Self {
        SwarmError::Dial(Box::new(e))
    }
}

fn join_errors(errors: &[TransportError]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

/// How connected the swarm is to a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Connectedness {
    /// No open connection.
    NotConnected,
    /// At least one open connection.
    Connected,
}

type StreamHandler = Arc<dyn Fn(Stream) -> BoxFuture<'static, ()> + Send + Sync>;
pub(crate) type ConnHandler = Arc<dyn Fn(Conn) -> BoxFuture<'static, ()> + Send + Sync>;

/// Builds a [`Swarm`].
pub struct SwarmBuilder {
    keypair: Keypair,
    peerstore: Option<Peerstore>,
    gater: Option<Arc<dyn ConnectionGater>>,
    bandwidth: Option<BandwidthCounter>,
    resolver: Option<Arc<dyn Resolver>>,
    config: SwarmConfig,
}

impl std::fmt::Debug for SwarmBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SwarmBuilder").field("config", &self.config).finish_non_exhaustive()
    }
}

impl SwarmBuilder {
    /// Uses `peerstore` (default: a new, empty one).
    pub fn peerstore(mut self, peerstore: Peerstore) -> Self {
        self.peerstore = Some(peerstore);
        self
    }

    /// Gates connections with `gater` (default: allow all).
    pub fn gater(mut self, gater: impl ConnectionGater) -> Self {
        self.gater = Some(Arc::new(gater));
        self
    }

    /// Meters bandwidth into `counter` (default: not metered).
    pub fn bandwidth(mut self, counter: BandwidthCounter) -> Self {
        self.bandwidth = Some(counter);
        self
    }

    /// Resolves `/dnsaddr`, `/dns`, `/dns4` and `/dns6` addresses before
    /// dialing with `resolver` (go's `WithMultiaddrResolver`; default:
    /// [`SystemResolver`]).
    pub fn resolver(mut self, resolver: impl Resolver) -> Self {
        self.resolver = Some(Arc::new(resolver));
        self
    }

    /// Replaces the whole configuration.
    pub fn config(mut self, config: SwarmConfig) -> Self {
        self.config = config;
        self
    }

    /// Builds the swarm. It neither listens nor dials until asked to: a swarm
    /// without listen addresses is a valid dial-only node.
    ///
    /// Must be called inside a tokio runtime.
    pub fn build(self) -> Swarm {
        let config = self.config;
        let peerstore = self
            .peerstore
            .unwrap_or_else(|| Peerstore::new(self.keypair.clone(), PeerstoreConfig::default()));
        let mut endpoint_config = EndpointConfig::new(self.keypair.clone())
            .with_yamux_config(config.yamux.clone())
            .with_handshake_timeout(config.handshake_timeout)
            .with_negotiation_timeout(config.negotiation_timeout)
            .with_max_pending_inbound(config.max_pending_inbound)
            .with_transports(config.transports.clone());
        if config.security == Security::InsecurePlaintext {
            endpoint_config = endpoint_config.with_insecure_plaintext();
        }
        if let Some(psk) = &config.psk {
            endpoint_config = endpoint_config.with_private_network(psk.clone());
        }
        let (closing, _) = watch::channel(false);
        let resolver = self.resolver.unwrap_or_else(|| Arc::new(SystemResolver::new()));
        let dialer = dialer::Dialer::new(&config, resolver);
        let user_gater = self.gater;
        let inner = Arc::new_cyclic(|weak| {
            // The endpoint's accept and secured hooks go through the
            // swarm, which adds its connection limits to the user's gater.
            let admission = Admission { user: user_gater.clone(), swarm: weak.clone() };
            let endpoint = Endpoint::new(endpoint_config.with_gater(Some(Arc::new(admission))));
            Shared {
                local_peer: endpoint.local_peer_id(),
                peerstore,
                endpoint,
                gater: user_gater,
                bandwidth: self.bandwidth,
                notifiees: Notifiees::default(),
                state: Mutex::new(State::default()),
                stream_handler: RwLock::new(None),
                conn_handler: RwLock::new(None),
                closing,
                dialer,
                config,
            }
        });
        let owner = Owner { shared: Arc::downgrade(&inner), runtime: tokio::runtime::Handle::current() };
        Swarm { inner, _owner: Some(Arc::new(owner)) }
    }
}

/// The gater the swarm gives its endpoint: the user's gater, plus the
/// connection limits at accept time.
struct Admission {
    user: Option<Arc<dyn ConnectionGater>>,
    swarm: std::sync::Weak<Shared>,
}

impl ConnectionGater for Admission {
    fn intercept_accept(&self, addrs: &ConnAddrs) -> bool {
        if self.user.as_ref().is_some_and(|g| !g.intercept_accept(addrs)) {
            return false;
        }
        let Some(shared) = self.swarm.upgrade() else { return false };
        let state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
        match shared.config.limits.check_accept(&state, &addrs.remote) {
            Ok(()) => true,
            Err(limit) => {
                tracing::debug!(remote = %addrs.remote, %limit, "inbound connection refused");
                false
            }
        }
    }

    fn intercept_secured(&self, direction: crate::Direction, peer: &PeerId, addrs: &ConnAddrs) -> bool {
        self.user.as_ref().is_none_or(|g| g.intercept_secured(direction, peer, addrs))
    }
}

/// A libp2p swarm. Cheap to clone: every clone is the same node.
///
/// Dropping the last handle closes the swarm (as [`Swarm::close`] does, in
/// a task of its own): its listeners, connections and dials end. Await
/// `close` to know when that is done.
#[derive(Clone)]
pub struct Swarm {
    pub(crate) inner: Arc<Shared>,
    /// Present on the handles users hold; the swarm's own tasks (accept
    /// loops, connection drivers, dial workers) hold handles without it, so
    /// they do not keep the node running once its users are gone.
    _owner: Option<Arc<Owner>>,
}

/// Closes the swarm when the last user handle is dropped.
struct Owner {
    shared: std::sync::Weak<Shared>,
    runtime: tokio::runtime::Handle,
}

impl Drop for Owner {
    fn drop(&mut self) {
        if let Some(inner) = self.shared.upgrade() {
            let swarm = Swarm::internal(inner);
            if !swarm.is_closed() {
                self.runtime.spawn(async move { swarm.close().await });
            }
        }
    }
}

impl std::fmt::Debug for Swarm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<Swarm {}>", self.inner.local_peer)
    }
}

pub(crate) struct Shared {
    pub(crate) local_peer: PeerId,
    pub(crate) peerstore: Peerstore,
    pub(crate) endpoint: Endpoint,
    pub(crate) gater: Option<Arc<dyn ConnectionGater>>,
    pub(crate) bandwidth: Option<BandwidthCounter>,
    pub(crate) notifiees: Notifiees,
    pub(crate) state: Mutex<State>,
    stream_handler: RwLock<Option<StreamHandler>>,
    conn_handler: RwLock<Option<ConnHandler>>,
    closing: watch::Sender<bool>,
    pub(crate) dialer: dialer::Dialer,
    pub(crate) config: SwarmConfig,
}

#[derive(Default)]
pub(crate) struct State {
    pub(crate) closed: bool,
    /// Per peer, oldest connection first.
    pub(crate) conns: HashMap<PeerId, Vec<Conn>>,
    listeners: Vec<ListenerEntry>,
    /// Connection driver tasks, so `close` can wait for them.
    drivers: Vec<JoinHandle<()>>,
    interface_addrs: Option<(Instant, Vec<Multiaddr>)>,
}

struct ListenerEntry {
    addr: Multiaddr,
    task: JoinHandle<()>,
}

/// How long `interface_listen_addresses` caches the interface list.
const INTERFACE_CACHE: Duration = Duration::from_secs(60);

impl Swarm {
    /// Starts building a swarm for the node identified by `keypair`.
    pub fn builder(keypair: Keypair) -> SwarmBuilder {
        SwarmBuilder {
            keypair,
            peerstore: None,
            gater: None,
            bandwidth: None,
            resolver: None,
            config: SwarmConfig::default(),
        }
    }

    /// A handle for the swarm's own tasks: it does not keep the node
    /// running (see [`Swarm`]).
    pub(crate) fn internal(inner: Arc<Shared>) -> Swarm {
        Swarm { inner, _owner: None }
    }

    /// [`Swarm::internal`] for this swarm.
    pub(crate) fn internal_clone(&self) -> Swarm {
        Swarm::internal(self.inner.clone())
    }

    /// A swarm with default settings.
    pub fn new(keypair: Keypair) -> Swarm {
        Self::builder(keypair).build()
    }

    /// Our peer ID.
    pub fn local_peer(&self) -> PeerId {
        self.inner.local_peer
    }

    /// The peerstore.
    pub fn peerstore(&self) -> &Peerstore {
        &self.inner.peerstore
    }

    /// The bandwidth counter, if metering is on.
    pub fn bandwidth(&self) -> Option<&BandwidthCounter> {
        self.inner.bandwidth.as_ref()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `close` has been called.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Resolves once the swarm starts closing.
    pub(crate) async fn closing(&self) {
        let mut rx = self.inner.closing.subscribe();
        let _ = rx.wait_for(|closing| *closing).await;
    }

    // ----- handlers and notifications -----

    /// Sets the handler every inbound stream is given to (one task per
    /// stream). The stream arrives raw: protocol negotiation is the host's
    /// job. Without a handler, inbound streams are reset.
    pub fn set_stream_handler<F, Fut>(&self, handler: F)
    where
        F: Fn(Stream) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handler: StreamHandler = Arc::new(move |s| Box::pin(handler(s)));
        *self.inner.stream_handler.write().unwrap_or_else(|e| e.into_inner()) = Some(handler);
    }

    /// Removes the stream handler.
    pub fn remove_stream_handler(&self) {
        *self.inner.stream_handler.write().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Sets a handler run (in its own task) for every new connection, after
    /// the `connected` notifications.
    pub fn set_conn_handler<F, Fut>(&self, handler: F)
    where
        F: Fn(Conn) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handler: ConnHandler = Arc::new(move |c| Box::pin(handler(c)));
        *self.inner.conn_handler.write().unwrap_or_else(|e| e.into_inner()) = Some(handler);
    }

    /// Removes the connection handler.
    pub fn remove_conn_handler(&self) {
        *self.inner.conn_handler.write().unwrap_or_else(|e| e.into_inner()) = None;
    }

    pub(crate) fn stream_handler(&self) -> Option<StreamHandler> {
        self.inner.stream_handler.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn conn_handler(&self) -> Option<ConnHandler> {
        self.inner.conn_handler.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Subscribes to notifications (see [`Notifiee`] for the contract).
    pub fn notify(&self, notifiee: impl Notifiee) -> NotifyId {
        self.inner.notifiees.add(Arc::new(notifiee))
    }

    /// Ends a subscription. Returns whether it existed.
    pub fn stop_notify(&self, id: NotifyId) -> bool {
        self.inner.notifiees.remove(id)
    }

    // ----- listening -----

    /// Listens on every address in `addrs`; succeeds if at least one listener
    /// starts (or `addrs` is empty). Failures are logged and, if all fail,
    /// returned.
    pub async fn listen(&self, addrs: &[Multiaddr]) -> Result<(), SwarmError> {
        let mut errors = Vec::new();
        for addr in addrs {
            match self.add_listen_addr(addr).await {
                Ok(_) => {}
                Err(SwarmError::Closed) => return Err(SwarmError::Closed),
                Err(SwarmError::Listen(mut e)) => {
                    tracing::warn!(%addr, error = ?e, "listen failed");
                    errors.append(&mut e)
                }
                Err(SwarmError::NoTransport(addr)) => {
                    tracing::warn!(%addr, "listen failed: no transport");
                    errors.push(TransportError::UnsupportedAddress(addr))
                }
                Err(other) => return Err(other),
            }
        }
        if !addrs.is_empty() && errors.len() == addrs.len() {
            return Err(SwarmError::Listen(errors));
        }
        Ok(())
    }

    /// Listens on one address; returns the address actually bound (port 0
    /// resolved). Fires `listen` before returning.
    pub async fn add_listen_addr(&self, addr: &Multiaddr) -> Result<Multiaddr, SwarmError> {
        if self.is_closed() {
            return Err(SwarmError::Closed);
        }
        if !self.inner.endpoint.can_listen(addr) {
            return Err(SwarmError::NoTransport(addr.clone()));
        }
        let mut listener = self.inner.endpoint.listen(addr).await.map_err(|e| SwarmError::Listen(vec![e]))?;
        let bound = listener.local_addr().clone();
        let swarm = self.internal_clone();
        let task_addr = bound.clone();
        {
            let mut state = self.lock();
            if state.closed {
                return Err(SwarmError::Closed);
            }
            let task = tokio::spawn(async move {
                while let Some(conn) = listener.accept().await {
                    // A gated connection is closed by `add_conn`; only
                    // shutdown ends the loop.
                    if let Err(DialCause::SwarmClosed) = swarm.add_conn(conn) {
                        break;
                    }
                }
                // The accept loop ends only if the endpoint's listener died.
                if swarm.remove_listener(&task_addr) {
                    swarm.inner.notifiees.emit(|n| n.listen_close(&task_addr));
                }
            });
            state.listeners.push(ListenerEntry { addr: bound.clone(), task });
            state.interface_addrs = None;
        }
        self.inner.notifiees.emit(|n| n.listen(&bound));
        Ok(bound)
    }

    fn remove_listener(&self, addr: &Multiaddr) -> bool {
        let mut state = self.lock();
        let before = state.listeners.len();
        state.listeners.retain(|l| &l.addr != addr);
        state.interface_addrs = None;
        state.listeners.len() != before
    }

    /// Closes the listeners bound to any of `addrs`; each fires
    /// `listen_close`.
    pub fn listen_close(&self, addrs: &[Multiaddr]) {
        let closed: Vec<ListenerEntry> = {
            let mut state = self.lock();
            let (closed, kept) =
                std::mem::take(&mut state.listeners).into_iter().partition(|l| addrs.contains(&l.addr));
            state.listeners = kept;
            state.interface_addrs = None;
            closed
        };
        for entry in closed {
            entry.task.abort();
            self.inner.notifiees.emit(|n| n.listen_close(&entry.addr));
        }
    }

    /// The addresses we listen on, as bound.
    pub fn listen_addresses(&self) -> Vec<Multiaddr> {
        self.lock().listeners.iter().map(|l| l.addr.clone()).collect()
    }

    /// The listen addresses with unspecified IPs (`0.0.0.0`, `::`) expanded
    /// to this host's interface addresses. Cached for a minute; the cache is
    /// dropped whenever a listener is added or removed.
    pub fn interface_listen_addresses(&self) -> Vec<Multiaddr> {
        let listen = {
            let state = self.lock();
            if let Some((at, addrs)) = &state.interface_addrs {
                if at.elapsed() < INTERFACE_CACHE {
                    return addrs.clone();
                }
            }
            state.listeners.iter().map(|l| l.addr.clone()).collect::<Vec<_>>()
        };
        let unspecified = |addr: &Multiaddr| match addr.iter().next() {
            Some(Protocol::Ip4(ip)) => ip.is_unspecified(),
            Some(Protocol::Ip6(ip)) => ip.is_unspecified(),
            _ => false,
        };
        // Listing interfaces takes a few netlink round trips (about 2 ms,
        // blocking): only when there is something to expand.
        let interfaces = if listen.iter().any(unspecified) { interface_ips() } else { Vec::new() };
        let mut out = Vec::new();
        for addr in listen {
            let mut parts = addr.iter();
            let (v4, port_rest) = match parts.next() {
                Some(Protocol::Ip4(ip)) if ip.is_unspecified() => (true, parts),
                Some(Protocol::Ip6(ip)) if ip.is_unspecified() => (false, parts),
                _ => {
                    out.push(addr);
                    continue;
                }
            };
            let rest: Vec<Protocol<'_>> = port_rest.collect();
            for ip in interfaces.iter().filter(|ip| ip.is_ipv4() == v4) {
                let mut expanded = Multiaddr::empty().with((*ip).into());
                for p in &rest {
                    expanded.push(p.clone());
                }
                out.push(expanded);
            }
        }
        self.lock().interface_addrs = Some((Instant::now(), out.clone()));
        out
    }

    // ----- connections -----

    /// Registers an upgraded connection: gater check, bookkeeping,
    /// `connected` notifications, then its driver task (which accepts its
    /// streams). Errors (and closes the connection) if gated or closed.
    pub(crate) fn add_conn(&self, connection: Connection) -> Result<Conn, DialCause> {
        let conn = Conn::new(connection, self.inner.local_peer, Arc::downgrade(&self.inner));
        if let Some(gater) = &self.inner.gater {
            if !gater.intercept_upgraded(&conn) {
                conn.start_close_quietly();
                return Err(DialCause::GaterDisallowed);
            }
        }
        let peer = conn.remote_peer();
        {
            let mut state = self.lock();
            if state.closed {
                drop(state);
                conn.start_close_quietly();
                return Err(DialCause::SwarmClosed);
            }
            if let Err(limit) = self.inner.config.limits.check_established(&state, &conn) {
                drop(state);
                tracing::debug!(%peer, %limit, "connection refused");
                conn.start_close_quietly();
                return Err(DialCause::LimitExceeded(limit));
            }
            state.conns.entry(peer).or_default().push(conn.clone());
        }
        let _ = self.inner.peerstore.add_public_key(peer, conn.remote_public_key().clone(), Instant::now());
        self.inner.dialer.clear_backoff(&peer);
        // The handler in place when the connection joined is the one it gets.
        let handler = self.conn_handler();
        self.inner.notifiees.emit(|n| n.connected(&conn));
        let driver = tokio::spawn(conn::run(self.internal_clone(), conn.clone(), handler));
        let mut state = self.lock();
        state.drivers.retain(|d| !d.is_finished());
        state.drivers.push(driver);
        Ok(conn)
    }

    pub(crate) fn remove_conn(&self, conn: &Conn) {
        let mut state = self.lock();
        let peer = conn.remote_peer();
        if let Some(conns) = state.conns.get_mut(&peer) {
            conns.retain(|c| c != conn);
            if conns.is_empty() {
                state.conns.remove(&peer);
            }
        }
    }

    /// The peers we have at least one connection to.
    pub fn peers(&self) -> Vec<PeerId> {
        self.lock().conns.keys().copied().collect()
    }

    /// Every connection.
    pub fn conns(&self) -> Vec<Conn> {
        self.lock().conns.values().flatten().cloned().collect()
    }

    /// The connections to `peer`, oldest first.
    pub fn conns_to_peer(&self, peer: &PeerId) -> Vec<Conn> {
        self.lock().conns.get(peer).cloned().unwrap_or_default()
    }

    /// Whether we have an open connection to `peer`.
    pub fn connectedness(&self, peer: &PeerId) -> Connectedness {
        match self.best_conn(peer) {
            Some(_) => Connectedness::Connected,
            None => Connectedness::NotConnected,
        }
    }

    /// The connection to use for `peer`: open, most streams, newest on ties.
    pub fn best_conn(&self, peer: &PeerId) -> Option<Conn> {
        let state = self.lock();
        let conns = state.conns.get(peer)?;
        let mut best: Option<(&Conn, usize)> = None;
        for conn in conns.iter().filter(|c| !c.is_closed()) {
            let streams = conn.stat().num_streams;
            if best.is_none_or(|(_, n)| streams >= n) {
                best = Some((conn, streams));
            }
        }
        best.map(|(c, _)| c.clone())
    }

    /// Closes every connection to `peer` (concurrently). Dials in flight to
    /// it are not cancelled.
    pub async fn close_peer(&self, peer: &PeerId) {
        let conns = self.conns_to_peer(peer);
        futures::future::join_all(conns.iter().map(|c| c.close())).await;
    }

    // ----- dialing and streams -----

    /// Whether dials to `peer` at `addr` are currently held back by the
    /// backoff after recent failures.
    pub fn backoff_contains(&self, peer: &PeerId, addr: &Multiaddr) -> bool {
        self.inner.dialer.is_backed_off(peer, addr)
    }

    /// Returns a connection to `peer`, dialing if there is none.
    ///
    /// Concurrent calls for one peer share one dial; cancelling one caller
    /// does not cancel the others. See [`dial`] for the discipline.
    pub async fn dial_peer(&self, peer: &PeerId) -> Result<Conn, DialError> {
        dialer::dial_peer(self, *peer).await
    }

    /// Opens a raw stream to `peer`, dialing first if needed. If the chosen
    /// connection turns out to be closed, another is tried (no second dial).
    pub async fn new_stream(&self, peer: &PeerId) -> Result<Stream, SwarmError> {
        let mut dialed = false;
        loop {
            let conn = match self.best_conn(peer) {
                Some(conn) => conn,
                None if !dialed => {
                    dialed = true;
                    self.dial_peer(peer).await?
                }
                None => return Err(DialError::new(*peer, DialCause::ConnectionClosed).into()),
            };
            match conn.new_stream().await {
                Ok(stream) => return Ok(stream),
                Err(_) if conn.is_closed() => continue,
                Err(error) => return Err(error.into()),
            }
        }
    }

    // ----- shutdown -----

    /// Closes the swarm: listeners, connections and dials. Idempotent. Waits
    /// for every connection driver to finish (so every `disconnected` has
    /// fired), not for stream handlers.
    pub async fn close(&self) {
        let (listeners, conns, drivers) = {
            let mut state = self.lock();
            if state.closed {
                (Vec::new(), Vec::new(), std::mem::take(&mut state.drivers))
            } else {
                state.closed = true;
                let listeners = std::mem::take(&mut state.listeners);
                let conns: Vec<Conn> = state.conns.values().flatten().cloned().collect();
                (listeners, conns, std::mem::take(&mut state.drivers))
            }
        };
        self.inner.closing.send_replace(true);
        self.inner.dialer.close();
        for entry in listeners {
            entry.task.abort();
            self.inner.notifiees.emit(|n| n.listen_close(&entry.addr));
        }
        futures::future::join_all(conns.iter().map(|c| c.close())).await;
        for driver in drivers {
            let _ = driver.await;
        }
    }
}

impl Conn {
    /// Closes without any swarm bookkeeping (the connection never joined).
    fn start_close_quietly(&self) {
        let connection = self.inner.connection.clone();
        tokio::spawn(async move { connection.close().await });
    }
}

/// The host's interface IPs, for expanding unspecified listen addresses.
fn interface_ips() -> Vec<IpAddr> {
    match if_addrs::get_if_addrs() {
        Ok(ifaces) => ifaces.into_iter().map(|i| i.ip()).collect(),
        Err(error) => {
            tracing::warn!(%error, "cannot list network interfaces");
            vec![IpAddr::from([127, 0, 0, 1]), IpAddr::from(std::net::Ipv6Addr::LOCALHOST)]
        }
    }
}
