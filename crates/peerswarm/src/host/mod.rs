//! The host: protocol routing over a [`Swarm`], and the built-in protocols.
//!
//! The swarm hands the host every inbound stream raw. The host negotiates
//! its protocol with multistream-select against the registered handlers,
//! then runs the matching handler in the stream's own task. Outbound,
//! [`Host::new_stream`] dials if needed and negotiates (optimistically when
//! a single protocol is offered: the proposal rides with the first write).
//!
//! A protocol is a plain async function over a [`Stream`]:
//!
//! ```ignore
//! host.set_stream_handler("/hello/1.0.0", |mut stream| async move {
//!     let _ = stream.write_all(b"Hello Friend!").await;
//!     let _ = stream.close().await;
//! });
//! ```
//!
//! Each protocol has a cap on concurrent inbound streams; a stream beyond it
//! is reset at once rather than queued.

mod echo;
mod identify;
mod perf;
mod ping;

pub use echo::PROTOCOL as ECHO_PROTOCOL;
pub use identify::{IdentifyInfo, AGENT_VERSION_KEY, PROTOCOL_VERSION, PROTOCOL_VERSION_KEY};
pub use perf::{PerfProgress, PerfResult};
pub use ping::Pinger;

use crate::connection::StreamError;
use crate::multistream::NegotiationError;
use crate::stream::Stream;
use crate::swarm::{Conn, DialError, Notifiee, Swarm, SwarmError};
use futures::future::BoxFuture;
use multiaddr::Multiaddr;
use peerswarm_proto::identity::PeerId;
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use thiserror::Error;
use tokio::sync::Semaphore;

/// Settings of a [`Host`].
#[derive(Debug, Clone)]
pub struct HostConfig {
    pub(crate) negotiation_timeout: Duration,
    pub(crate) default_max_inbound_streams: usize,
    pub(crate) agent_version: String,
    pub(crate) perf: bool,
    pub(crate) perf_max_bytes: u64,
    pub(crate) identify_on_connect: bool,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            negotiation_timeout: Duration::from_secs(10),
            default_max_inbound_streams: 128,
            agent_version: concat!("peerswarm/", env!("CARGO_PKG_VERSION")).to_owned(),
            perf: false,
            perf_max_bytes: 64 << 30,
            identify_on_connect: true,
        }
    }
}

impl HostConfig {
    /// Time allowed to agree on an inbound stream's protocol; a stream that
    /// stalls longer is reset. Default 10 s.
    pub fn with_negotiation_timeout(mut self, timeout: Duration) -> Self {
        self.negotiation_timeout = timeout;
        self
    }

    /// Concurrent inbound streams per protocol, unless the handler was
    /// registered with its own cap. Default 128.
    pub fn with_default_max_inbound_streams(mut self, max: usize) -> Self {
        self.default_max_inbound_streams = max.max(1);
        self
    }

    /// The agent version identify reports. Default `peerswarm/<version>`.
    pub fn with_agent_version(mut self, agent: impl Into<String>) -> Self {
        self.agent_version = agent.into();
        self
    }

    /// Serves `/perf/1.0.0`. Default off: perf lets any peer ask us to send
    /// up to `perf_max_bytes` for 8 bytes of request.
    pub fn with_perf(mut self, enabled: bool) -> Self {
        self.perf = enabled;
        self
    }

    /// The largest download a perf client may ask for. Default 64 GiB.
    pub fn with_perf_max_bytes(mut self, max: u64) -> Self {
        self.perf_max_bytes = max;
        self
    }

    /// Runs identify on every new connection. Default on.
    pub fn with_identify_on_connect(mut self, enabled: bool) -> Self {
        self.identify_on_connect = enabled;
        self
    }
}

/// Why a host operation failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum HostError {
    /// No connection could be made.
    #[error(transparent)]
    Dial(Box<DialError>),
    /// The stream could not be opened.
    #[error(transparent)]
    Stream(#[from] StreamError),
    /// The peer speaks none of the protocols offered.
    #[error("protocol negotiation failed: {0}")]
    Negotiation(#[from] NegotiationError),
    /// The swarm failed.
    #[error(transparent)]
    Swarm(#[from] SwarmError),
    /// The stream failed mid-protocol.
    #[error("i/o error: {0}")]
    Io(std::io::Error),
    /// The remote broke the protocol (wrong echo, oversized message, ...).
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// The operation did not finish in time.
    #[error("timed out")]
    Timeout,
}

impl From<std::io::Error> for HostError {
    /// An optimistic negotiation's refusal arrives as an I/O error on the
    /// stream; it is reported as the negotiation failure it is.
    fn from(e: std::io::Error) -> Self {
        if e.get_ref().is_some_and(|inner| inner.is::<NegotiationError>()) {
            if let Some(inner) = e.into_inner() {
                if let Ok(negotiation) = inner.downcast::<NegotiationError>() {
                    return HostError::Negotiation(*negotiation);
                }
            }
            return HostError::Io(std::io::Error::other("negotiation failed"));
        }
        HostError::Io(e)
    }
}

impl From<DialError> for HostError {
    fn from(e: DialError) -> Self {
        HostError::Dial(Box::new(e))
    }
}

type Handler = Arc<dyn Fn(Stream) -> BoxFuture<'static, ()> + Send + Sync>;
type Matcher = Arc<dyn Fn(&str) -> bool + Send + Sync>;

#[derive(Clone)]
struct Route {
    protocol: Arc<str>,
    matcher: Option<Matcher>,
    handler: Handler,
    limit: Arc<Semaphore>,
}

impl Route {
    fn matches(&self, proposed: &str) -> bool {
        match &self.matcher {
            Some(m) => m(proposed),
            None => &*self.protocol == proposed,
        }
    }
}

/// A swarm plus protocol routing and the built-in protocols. Cheap to clone.
#[derive(Clone)]
pub struct Host {
    inner: Arc<HostInner>,
}

struct HostInner {
    swarm: Swarm,
    routes: RwLock<Vec<Route>>,
    config: HostConfig,
    /// Identify exchanges in flight, one per connection at most (see
    /// `identify::request_conn`).
    identify_runs: identify::Runs,
    /// Sends identify pushes when our protocols or addresses change.
    identify_push: identify::Pusher,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host").field("peer", &self.inner.swarm.local_peer()).finish_non_exhaustive()
    }
}

impl Host {
    /// Wraps `swarm`: takes over its stream handler and serves identify,
    /// identify-push, ping and echo (and perf, if enabled).
    pub fn new(swarm: Swarm, config: HostConfig) -> Host {
        let host = Host {
            inner: Arc::new(HostInner {
                swarm,
                routes: RwLock::default(),
                config,
                identify_runs: identify::Runs::default(),
                identify_push: identify::Pusher::default(),
            }),
        };
        let weak = Arc::downgrade(&host.inner);
        host.inner.swarm.set_stream_handler(move |stream| {
            let weak = weak.clone();
            async move {
                if let Some(inner) = weak.upgrade() {
                    Host { inner }.handle_inbound(stream).await;
                }
            }
        });
        host.inner.swarm.notify(HostNotifiee(Arc::downgrade(&host.inner)));
        identify::install(&host);
        ping::install(&host);
        echo::install(&host);
        if host.inner.config.perf {
            perf::install(&host);
        }
        host
    }

    /// A handle that does not keep the host alive: for stream handlers
    /// and other tasks the host itself owns, which would otherwise keep it
    /// (and its swarm) from ever being freed.
    pub fn downgrade(&self) -> WeakHost {
        WeakHost(Arc::downgrade(&self.inner))
    }

    /// The swarm underneath.
    pub fn swarm(&self) -> &Swarm {
        &self.inner.swarm
    }

    /// Our peer ID.
    pub fn local_peer(&self) -> PeerId {
        self.inner.swarm.local_peer()
    }

    /// The host's configuration.
    pub fn config(&self) -> &HostConfig {
        &self.inner.config
    }

    /// Serves `protocol` with `handler`, one task per inbound stream, at most
    /// the default number at once. Replaces an existing handler.
    ///
    /// The host owns its handlers: a handler that holds a `Host` keeps the
    /// host, and its swarm, alive until [`Host::close`]. Give it a
    /// [`WeakHost`] ([`Host::downgrade`]) instead.
    pub fn set_stream_handler<F, Fut>(&self, protocol: &str, handler: F)
    where
        F: Fn(Stream) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.add_route(protocol, None, self.inner.config.default_max_inbound_streams, handler);
    }

    /// Like [`set_stream_handler`](Self::set_stream_handler) with its own cap
    /// on concurrent inbound streams.
    pub fn set_stream_handler_with_limit<F, Fut>(&self, protocol: &str, max_inbound: usize, handler: F)
    where
        F: Fn(Stream) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.add_route(protocol, None, max_inbound, handler);
    }

    /// Serves every proposed protocol for which `matcher` is true (e.g. any
    /// version of a protocol family). Registered under `protocol`, which is
    /// what [`remove_stream_handler`](Self::remove_stream_handler) takes.
    pub fn set_stream_handler_match<M, F, Fut>(&self, protocol: &str, matcher: M, handler: F)
    where
        M: Fn(&str) -> bool + Send + Sync + 'static,
        F: Fn(Stream) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let max = self.inner.config.default_max_inbound_streams;
        self.add_route(protocol, Some(Arc::new(matcher)), max, handler);
    }

    fn add_route<F, Fut>(&self, protocol: &str, matcher: Option<Matcher>, max_inbound: usize, handler: F)
    where
        F: Fn(Stream) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let route = Route {
            protocol: protocol.into(),
            matcher,
            handler: Arc::new(move |s| Box::pin(handler(s))),
            limit: Arc::new(Semaphore::new(max_inbound.max(1))),
        };
        {
            let mut routes = self.inner.routes.write().unwrap_or_else(|e| e.into_inner());
            routes.retain(|r| &*r.protocol != protocol);
            routes.push(route);
        }
        identify::protocols_changed(self);
    }

    /// Stops serving `protocol`.
    pub fn remove_stream_handler(&self, protocol: &str) {
        self.inner.routes.write().unwrap_or_else(|e| e.into_inner()).retain(|r| &*r.protocol != protocol);
        identify::protocols_changed(self);
    }

    /// The protocols served, as advertised by identify.
    pub fn protocols(&self) -> Vec<String> {
        let routes = self.inner.routes.read().unwrap_or_else(|e| e.into_inner());
        routes.iter().map(|r| r.protocol.to_string()).collect()
    }

    fn route_for(&self, proposed: &str) -> Option<Route> {
        let routes = self.inner.routes.read().unwrap_or_else(|e| e.into_inner());
        routes.iter().find(|r| r.matches(proposed)).cloned()
    }

    async fn handle_inbound(&self, stream: Stream) {
        let negotiate = stream.negotiate_inbound(|p| self.route_for(p).is_some());
        let mut stream = match tokio::time::timeout(self.inner.config.negotiation_timeout, negotiate).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                tracing::debug!(%error, "inbound stream negotiation failed");
                return;
            }
            Err(_) => {
                tracing::debug!("inbound stream negotiation timed out");
                return;
            }
        };
        let Some(route) = stream.protocol().and_then(|p| self.route_for(p)) else {
            // The handler was removed during negotiation.
            stream.reset();
            return;
        };
        let Ok(_permit) = route.limit.clone().try_acquire_owned() else {
            tracing::debug!(protocol = %route.protocol, "inbound stream limit reached; resetting");
            stream.reset();
            return;
        };
        (route.handler)(stream).await;
    }

    /// Opens a stream to `peer` (dialing if needed) speaking the first of
    /// `protocols` the peer supports. With one protocol the negotiation is
    /// optimistic and a refusal shows on the first read.
    pub async fn new_stream<P: AsRef<str>>(
        &self,
        peer: &PeerId,
        protocols: &[P],
    ) -> Result<Stream, HostError> {
        let stream = self.inner.swarm.new_stream(peer).await?;
        let negotiate = stream.negotiate_outbound(protocols);
        tokio::time::timeout(self.inner.config.negotiation_timeout, negotiate)
            .await
            .map_err(|_| HostError::Timeout)?
            .map_err(HostError::Negotiation)
    }

    /// Records `addrs` for `peer` and connects to it.
    pub async fn connect(&self, peer: &PeerId, addrs: Vec<Multiaddr>) -> Result<Conn, HostError> {
        let _ = self.inner.swarm.peerstore().add_addrs_now(*peer, addrs, crate::peerstore::TEMP_ADDR_TTL);
        Ok(self.inner.swarm.dial_peer(peer).await?)
    }

    /// Pings `peer` once; returns the round-trip time.
    pub async fn ping(&self, peer: &PeerId) -> Result<Duration, HostError> {
        ping::ping(self, peer).await
    }

    /// Asks `peer` to identify itself (and records the answer), dialing if
    /// need be. A request made while an identify exchange is already under
    /// way on that connection (the one made on connect, say) shares its
    /// answer instead of opening a second identify stream, which peers may
    /// refuse (js-libp2p serves one at a time per connection).
    pub async fn identify(&self, peer: &PeerId) -> Result<IdentifyInfo, HostError> {
        identify::request(self, peer).await
    }

    /// Closes the host and its swarm. Dropping every handle closes them
    /// too, in the background; await this to know when it is done.
    pub async fn close(&self) {
        self.inner.swarm.close().await;
    }
}

/// A [`Host`] that is not kept alive by this handle ([`Host::downgrade`]).
#[derive(Clone, Debug)]
pub struct WeakHost(std::sync::Weak<HostInner>);

impl WeakHost {
    /// The host, if any of its [`Host`] handles is still alive.
    pub fn upgrade(&self) -> Option<Host> {
        self.0.upgrade().map(|inner| Host { inner })
    }
}

/// Forwards swarm notifications to the host without keeping it alive.
struct HostNotifiee(std::sync::Weak<HostInner>);

impl Notifiee for HostNotifiee {
    fn connected(&self, conn: &Conn) {
        if let Some(inner) = self.0.upgrade() {
            identify::on_connected(&Host { inner }, conn);
        }
    }

    fn listen(&self, _addr: &Multiaddr) {
        if let Some(inner) = self.0.upgrade() {
            identify::addresses_changed(&Host { inner });
        }
    }
}
