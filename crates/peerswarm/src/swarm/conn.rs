//! [`Conn`]: a connection that belongs to a swarm, and its driver task.

use super::{Shared, Swarm};
use crate::connection::{Connection, ConnectionId, Direction, StreamError};
use crate::stream::Stream;
use multiaddr::Multiaddr;
use peerswarm_proto::identity::{PeerId, PublicKey};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// A connection owned by a [`Swarm`]. Cheap to clone; equality is identity.
#[derive(Clone)]
pub struct Conn {
    pub(crate) inner: Arc<ConnInner>,
}

pub(crate) struct ConnInner {
    pub(crate) connection: Connection,
    pub(crate) local_peer: PeerId,
    pub(crate) opened: Instant,
    pub(crate) swarm: Weak<Shared>,
    /// Set once, by whoever closes first; later closes are no-ops.
    pub(crate) closed: AtomicBool,
    pub(crate) streams: Mutex<StreamSet>,
}

/// The streams open on a connection, for `Conn::streams` and stream counts.
#[derive(Default)]
pub(crate) struct StreamSet {
    /// Once set, no stream can be registered (the connection is closing).
    pub(crate) closed: bool,
    pub(crate) open: HashMap<u32, StreamInfo>,
}

/// What the swarm knows of one open stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    /// The stream's ID on its connection.
    pub id: u32,
    /// The connection it belongs to.
    pub conn: ConnectionId,
    /// The protocol, if known when the stream was registered.
    pub protocol: Option<String>,
    /// Who opened it.
    pub direction: Direction,
    /// When it was opened.
    pub opened: Instant,
}

/// A stream's place in its connection's stream set. Dropping it (when the
/// stream is closed, reset or dropped) removes the stream and fires
/// `closed_stream`, exactly once.
pub(crate) struct StreamRegistration {
    info: StreamInfo,
    conn: Weak<ConnInner>,
    swarm: Weak<Shared>,
}

impl StreamRegistration {
    pub(crate) fn set_protocol(&mut self, protocol: &str) {
        self.info.protocol = Some(protocol.to_owned());
        if let Some(conn) = self.conn.upgrade() {
            if let Some(entry) =
                conn.streams.lock().unwrap_or_else(|e| e.into_inner()).open.get_mut(&self.info.id)
            {
                entry.protocol = Some(protocol.to_owned());
            }
        }
    }
}

impl Drop for StreamRegistration {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.upgrade() {
            let mut set = conn.streams.lock().unwrap_or_else(|e| e.into_inner());
            set.open.remove(&self.info.id);
            if set.open.is_empty() {
                // An idle connection keeps no table (a few hundred bytes).
                set.open = HashMap::new();
            }
        }
        if let Some(shared) = self.swarm.upgrade() {
            shared.notifiees.emit(|n| n.closed_stream(&self.info));
        }
    }
}

/// A connection's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnStat {
    /// Who opened it.
    pub direction: Direction,
    /// When the swarm registered it.
    pub opened: Instant,
    /// Streams open on it now.
    pub num_streams: usize,
}

impl PartialEq for Conn {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Eq for Conn {}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("id", &self.id())
            .field("remote_peer", &self.remote_peer())
            .field("remote_addr", self.remote_multiaddr())
            .field("direction", &self.inner.connection.direction())
            .finish()
    }
}

impl Conn {
    pub(crate) fn new(connection: Connection, local_peer: PeerId, swarm: Weak<Shared>) -> Self {
        Self {
            inner: Arc::new(ConnInner {
                connection,
                local_peer,
                opened: Instant::now(),
                swarm,
                closed: AtomicBool::new(false),
                streams: Mutex::default(),
            }),
        }
    }

    /// The connection's identifier.
    pub fn id(&self) -> ConnectionId {
        self.inner.connection.id()
    }

    /// Our peer ID.
    pub fn local_peer(&self) -> PeerId {
        self.inner.local_peer
    }

    /// The authenticated remote peer.
    pub fn remote_peer(&self) -> PeerId {
        self.inner.connection.remote_peer_id()
    }

    /// The remote's identity key.
    pub fn remote_public_key(&self) -> &PublicKey {
        self.inner.connection.remote_public_key()
    }

    /// Our end's address.
    pub fn local_multiaddr(&self) -> &Multiaddr {
        self.inner.connection.local_addr()
    }

    /// The remote end's address.
    pub fn remote_multiaddr(&self) -> &Multiaddr {
        self.inner.connection.remote_addr()
    }

    /// The underlying connection handle.
    pub fn connection(&self) -> &Connection {
        &self.inner.connection
    }

    /// Direction, age and stream count.
    pub fn stat(&self) -> ConnStat {
        ConnStat {
            direction: self.inner.connection.direction(),
            opened: self.inner.opened,
            num_streams: self.lock_streams().open.len(),
        }
    }

    /// The streams open on this connection.
    pub fn streams(&self) -> Vec<StreamInfo> {
        self.lock_streams().open.values().cloned().collect()
    }

    /// Whether the connection has been closed (by either side).
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire) || self.inner.connection.is_closed()
    }

    fn lock_streams(&self) -> std::sync::MutexGuard<'_, StreamSet> {
        self.inner.streams.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn swarm(&self) -> Option<Swarm> {
        self.inner.swarm.upgrade().map(Swarm::internal)
    }

    /// Opens a raw stream (no protocol negotiated: the host layer does that),
    /// bounded by the swarm's stream-open timeout.
    pub async fn new_stream(&self) -> Result<Stream, StreamError> {
        let timeout =
            self.swarm().map(|s| s.inner.config.new_stream_timeout).unwrap_or(Duration::from_secs(15));
        let raw = tokio::time::timeout(timeout, self.inner.connection.open_raw_stream())
            .await
            .map_err(|_| StreamError::Timeout)??;
        let stream = Connection::raw_stream(raw, Direction::Outbound, self.id());
        self.register(stream).ok_or(StreamError::Connection(crate::ConnectionError::Closed))
    }

    /// Registers a stream with this connection and the swarm: counts it,
    /// meters it, announces it. `None` (and the stream reset) if the
    /// connection is closing.
    pub(crate) fn register(&self, mut stream: Stream) -> Option<Stream> {
        let info = StreamInfo {
            id: stream.id(),
            conn: self.id(),
            protocol: stream.protocol().map(str::to_owned),
            direction: stream.direction(),
            opened: stream.stat().opened,
        };
        {
            let mut set = self.lock_streams();
            if set.closed {
                drop(set);
                stream.reset();
                return None;
            }
            set.open.insert(info.id, info.clone());
        }
        let shared = self.inner.swarm.upgrade();
        let meters = shared
            .as_ref()
            .and_then(|s| s.bandwidth.as_ref())
            .map(|b| b.stream_meters(&self.remote_peer(), stream.protocol()));
        if let Some(shared) = &shared {
            shared.notifiees.emit(|n| n.opened_stream(&info));
        }
        let registration =
            StreamRegistration { info, conn: Arc::downgrade(&self.inner), swarm: self.inner.swarm.clone() };
        stream.attach(meters, registration);
        Some(stream)
    }

    /// Closes the connection: it leaves the swarm at once, every stream on it
    /// is reset, the remote is told (yamux go-away). Idempotent; does not
    /// wait for the `disconnected` notification.
    pub async fn close(&self) {
        if !self.inner.closed.swap(true, Ordering::AcqRel) {
            if let Some(swarm) = self.swarm() {
                swarm.remove_conn(self);
            }
            self.lock_streams().closed = true;
        }
        self.inner.connection.close().await;
    }

    /// Starts closing without waiting (for synchronous contexts such as
    /// notification callbacks).
    pub fn start_close(&self) {
        let conn = self.clone();
        tokio::spawn(async move { conn.close().await });
    }
}

/// The connection's driver: announces the connection, then accepts inbound
/// streams and hands each to the stream handler until the connection ends,
/// then announces the disconnection. Exactly one runs per connection.
pub(crate) async fn run(swarm: Swarm, conn: Conn, handler: Option<super::ConnHandler>) {
    if let Some(handler) = handler {
        let conn = conn.clone();
        tokio::spawn(handler(conn));
    }
    loop {
        let raw = tokio::select! {
            raw = conn.inner.connection.accept_raw_stream() => raw,
            _ = swarm.closing() => break,
        };
        let Ok(raw) = raw else { break };
        let stream = Connection::raw_stream(raw, Direction::Inbound, conn.id());
        let Some(stream) = conn.register(stream) else { break };
        match swarm.stream_handler() {
            Some(handler) => {
                tokio::spawn(handler(stream));
            }
            // go-libp2p leaves handler-less streams open until the remote
            // closes them; we reset them at once so they cost nothing.
            None => drop(stream),
        }
    }
    // Remote close, local close or swarm shutdown: the same exit.
    if !conn.inner.closed.swap(true, Ordering::AcqRel) {
        swarm.remove_conn(&conn);
        conn.lock_streams().closed = true;
    }
    conn.inner.connection.close().await;
    swarm.inner.notifiees.emit(|n| n.disconnected(&conn));
}
