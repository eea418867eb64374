//! Transports: how raw byte streams to and from a multiaddr are made.
//!
//! A transport knows nothing of peers or security; it connects, listens and
//! accepts. The [`upgrade`](crate::upgrade) layer turns what it yields into an
//! authenticated, multiplexed connection.
//!
//! [`Transports`] is the registry an endpoint or swarm dials and listens
//! through. The choice is deterministic: the first registered transport that
//! accepts the address wins (go-libp2p iterates a map here; quirk §8.1).
//! TCP is registered by default and stays unboxed ([`RawIo::Tcp`]); other
//! transports hand out boxed streams.

pub(crate) mod tcp;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::StreamExt;
use multiaddr::Multiaddr;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A byte stream a transport may hand out.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// A raw (not yet secured) connection's byte stream.
#[derive(Debug)]
#[non_exhaustive]
pub enum RawIo {
    /// A TCP socket (the common case, dispatched without a vtable).
    Tcp(tokio::net::TcpStream),
    /// Any other transport's stream.
    Boxed(Box<dyn Io>),
}

impl std::fmt::Debug for dyn Io {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Io")
    }
}

/// A raw connection and its two ends.
#[derive(Debug)]
pub struct RawConn {
    /// The byte stream.
    pub io: RawIo,
    /// Our end.
    pub local_addr: Multiaddr,
    /// The remote end.
    pub remote_addr: Multiaddr,
}

/// A bound listener of some transport.
pub struct RawListener {
    local_addr: Multiaddr,
    incoming: ListenerKind,
}

enum ListenerKind {
    Tcp(tokio::net::TcpListener),
    Boxed(BoxStream<'static, io::Result<RawConn>>),
}

impl std::fmt::Debug for RawListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawListener").field("local_addr", &self.local_addr).finish_non_exhaustive()
    }
}

impl RawListener {
    /// A listener over a transport's own stream of accepted connections.
    pub fn new(local_addr: Multiaddr, incoming: BoxStream<'static, io::Result<RawConn>>) -> Self {
        Self { local_addr, incoming: ListenerKind::Boxed(incoming) }
    }

    pub(crate) fn tcp(local_addr: Multiaddr, listener: tokio::net::TcpListener) -> Self {
        Self { local_addr, incoming: ListenerKind::Tcp(listener) }
    }

    /// The address bound.
    pub fn local_addr(&self) -> &Multiaddr {
        &self.local_addr
    }

    /// The next accepted connection.
    pub async fn accept(&mut self) -> io::Result<RawConn> {
        match &mut self.incoming {
            ListenerKind::Tcp(listener) => {
                let (socket, remote) = listener.accept().await?;
                // Best effort: without it the connection works, only slower.
                let _ = socket.set_nodelay(true);
                Ok(RawConn {
                    io: RawIo::Tcp(socket),
                    local_addr: self.local_addr.clone(),
                    remote_addr: tcp::multiaddr(remote),
                })
            }
            ListenerKind::Boxed(stream) => stream
                .next()
                .await
                .unwrap_or_else(|| Err(io::Error::new(io::ErrorKind::NotConnected, "listener closed"))),
        }
    }
}

/// A way of making raw connections (TCP today; QUIC or WebSocket later).
pub trait Transport: Send + Sync + 'static {
    /// A short name, unique in a registry (`"tcp"`).
    fn name(&self) -> &'static str;
    /// Whether this transport can dial `addr` (a trailing `/p2p/ID` allowed).
    fn can_dial(&self, addr: &Multiaddr) -> bool;
    /// Whether this transport can listen on `addr`.
    fn can_listen(&self, addr: &Multiaddr) -> bool {
        self.can_dial(addr)
    }
    /// Opens a raw connection to `addr`.
    fn dial(&self, addr: Multiaddr) -> BoxFuture<'static, Result<RawConn, TransportError>>;
    /// Binds a listener on `addr`.
    fn listen(&self, addr: &Multiaddr) -> Result<RawListener, TransportError>;
}

/// Why a transport could not be registered.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// A transport with this name is registered already.
    #[error("a transport named {0:?} is registered already")]
    Duplicate(&'static str),
}

/// The transports an endpoint dials and listens through, in priority
/// (registration) order. Cheap to clone. `Default` has TCP.
#[derive(Clone)]
pub struct Transports {
    list: Vec<Arc<dyn Transport>>,
}

impl std::fmt::Debug for Transports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.list.iter().map(|t| t.name())).finish()
    }
}

impl Default for Transports {
    fn default() -> Self {
        Self { list: vec![Arc::new(tcp::TcpTransport)] }
    }
}

impl Transports {
    /// A registry with no transport at all.
    pub fn empty() -> Self {
        Self { list: Vec::new() }
    }

    /// Registers `transport` after the ones already there.
    pub fn add(&mut self, transport: impl Transport) -> Result<(), RegistryError> {
        if self.list.iter().any(|t| t.name() == transport.name()) {
            return Err(RegistryError::Duplicate(transport.name()));
        }
        self.list.push(Arc::new(transport));
        Ok(())
    }

    /// The transport that dials `addr`: the first registered that can.
    pub fn for_dial(&self, addr: &Multiaddr) -> Option<&dyn Transport> {
        self.list.iter().find(|t| t.can_dial(addr)).map(|t| t.as_ref())
    }

    /// The transport that listens on `addr`: the first registered that can.
    pub fn for_listen(&self, addr: &Multiaddr) -> Option<&dyn Transport> {
        self.list.iter().find(|t| t.can_listen(addr)).map(|t| t.as_ref())
    }

    /// The registered transports' names, in priority order.
    pub fn names(&self) -> Vec<&'static str> {
        self.list.iter().map(|t| t.name()).collect()
    }
}

impl AsyncRead for RawIo {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            RawIo::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            RawIo::Boxed(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for RawIo {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            RawIo::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            RawIo::Boxed(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            RawIo::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            RawIo::Boxed(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            RawIo::Tcp(s) => s.is_write_vectored(),
            RawIo::Boxed(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            RawIo::Tcp(s) => Pin::new(s).poll_flush(cx),
            RawIo::Boxed(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            RawIo::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            RawIo::Boxed(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// Why a transport could not dial or listen on an address.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TransportError {
    /// No transport handles this multiaddr (wrong protocols, or malformed).
    #[error("unsupported multiaddr {0}")]
    UnsupportedAddress(Multiaddr),
    /// The TCP connection could not be made.
    #[error("connect to {addr} failed: {source}")]
    Connect {
        /// The address dialed.
        addr: Multiaddr,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The listening socket could not be opened.
    #[error("listen on {addr} failed: {source}")]
    Listen {
        /// The address asked for.
        addr: Multiaddr,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The connection was made but its security or muxer upgrade failed.
    #[error("upgrade of connection to {addr} failed: {source}")]
    Upgrade {
        /// The remote address.
        addr: Multiaddr,
        /// What went wrong.
        #[source]
        source: crate::upgrade::UpgradeError,
    },
    /// The connection was made but refused locally (gater, or the swarm is
    /// closing).
    #[error("connection to {addr} refused: {cause}")]
    Refused {
        /// The remote address.
        addr: Multiaddr,
        /// Why.
        cause: String,
    },
    /// The dial did not complete within its timeout.
    #[error("dial to {addr} timed out")]
    Timeout {
        /// The address dialed.
        addr: Multiaddr,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A transport that claims everything and dials nothing.
    struct Claims(&'static str);

    impl Transport for Claims {
        fn name(&self) -> &'static str {
            self.0
        }
        fn can_dial(&self, _: &Multiaddr) -> bool {
            true
        }
        fn dial(&self, addr: Multiaddr) -> BoxFuture<'static, Result<RawConn, TransportError>> {
            Box::pin(async move { Err(TransportError::UnsupportedAddress(addr)) })
        }
        fn listen(&self, addr: &Multiaddr) -> Result<RawListener, TransportError> {
            Err(TransportError::UnsupportedAddress(addr.clone()))
        }
    }

    #[test]
    fn choice_is_registration_order_and_names_are_unique() {
        let tcp_addr: Multiaddr = "/ip4/127.0.0.1/tcp/1".parse().unwrap();
        let quic_addr: Multiaddr = "/ip4/127.0.0.1/udp/1/quic-v1".parse().unwrap();
        let mut transports = Transports::default();
        transports.add(Claims("catch-all")).unwrap();
        assert_eq!(transports.names(), ["tcp", "catch-all"]);
        assert_eq!(transports.for_dial(&tcp_addr).map(|t| t.name()), Some("tcp"));
        assert_eq!(transports.for_dial(&quic_addr).map(|t| t.name()), Some("catch-all"));
        assert_eq!(transports.add(Claims("catch-all")), Err(RegistryError::Duplicate("catch-all")));
        assert!(Transports::empty().for_listen(&tcp_addr).is_none());
    }
}
