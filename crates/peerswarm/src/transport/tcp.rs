//! TCP over tokio: `/ip4/A/tcp/P` and `/ip6/A/tcp/P`.
//!
//! Every socket gets `TCP_NODELAY`: the layers above already coalesce writes
//! (Noise frames, batched yamux frames), so Nagle would only add latency to
//! handshakes and small request/response exchanges.

use super::{RawConn, RawIo, RawListener, Transport, TransportError};
use futures::future::BoxFuture;
use multiaddr::{Multiaddr, Protocol};
use std::net::{IpAddr, SocketAddr};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// The listen backlog: how many fully established TCP connections the kernel
/// queues before we accept them.
const LISTEN_BACKLOG: u32 = 1024;

/// Parses `/ip4|ip6/ADDR/tcp/PORT`, ignoring a trailing `/p2p/ID`.
///
/// Returns `None` for anything else (DNS names are resolved by the swarm
/// before an address reaches the transport).
pub(crate) fn socket_addr(addr: &Multiaddr) -> Option<SocketAddr> {
    let mut iter = addr.iter();
    let ip: IpAddr = match iter.next()? {
        Protocol::Ip4(ip) => ip.into(),
        Protocol::Ip6(ip) => ip.into(),
        _ => return None,
    };
    let port = match iter.next()? {
        Protocol::Tcp(port) => port,
        _ => return None,
    };
    match iter.next() {
        None | Some(Protocol::P2p(_)) if iter.next().is_none() => Some(SocketAddr::new(ip, port)),
        _ => None,
    }
}

/// The multiaddr of a socket address.
pub(crate) fn multiaddr(addr: SocketAddr) -> Multiaddr {
    Multiaddr::empty().with(addr.ip().into()).with(Protocol::Tcp(addr.port()))
}

/// The TCP transport (registered by default).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TcpTransport;

impl Transport for TcpTransport {
    fn name(&self) -> &'static str {
        "tcp"
    }

    fn can_dial(&self, addr: &Multiaddr) -> bool {
        socket_addr(addr).is_some()
    }

    fn dial(&self, addr: Multiaddr) -> BoxFuture<'static, Result<RawConn, TransportError>> {
        Box::pin(async move {
            let stream = dial(&addr).await?;
            let local_addr = stream
                .local_addr()
                .map_err(|source| TransportError::Connect { addr: addr.clone(), source })?;
            let remote_addr = match addr.iter().last() {
                Some(Protocol::P2p(_)) => {
                    let mut a = addr.clone();
                    a.pop();
                    a
                }
                _ => addr.clone(),
            };
            Ok(RawConn { io: RawIo::Tcp(stream), local_addr: multiaddr(local_addr), remote_addr })
        })
    }

    fn listen(&self, addr: &Multiaddr) -> Result<RawListener, TransportError> {
        let (listener, bound) = listen(addr)?;
        Ok(RawListener::tcp(bound, listener))
    }
}

/// Opens a TCP connection to `addr`.
pub(crate) async fn dial(addr: &Multiaddr) -> Result<TcpStream, TransportError> {
    let target = socket_addr(addr).ok_or_else(|| TransportError::UnsupportedAddress(addr.clone()))?;
    let stream = TcpStream::connect(target)
        .await
        .map_err(|source| TransportError::Connect { addr: addr.clone(), source })?;
    // Best effort: a socket that refuses the option still works, only slower.
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Binds a listening socket on `addr`, with `SO_REUSEADDR` so a restarted
/// node can listen again on its old port at once.
pub(crate) fn listen(addr: &Multiaddr) -> Result<(TcpListener, Multiaddr), TransportError> {
    let local = socket_addr(addr).ok_or_else(|| TransportError::UnsupportedAddress(addr.clone()))?;
    let listen_err = |source| TransportError::Listen { addr: addr.clone(), source };
    let socket =
        if local.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() }.map_err(listen_err)?;
    socket.set_reuseaddr(true).map_err(listen_err)?;
    socket.bind(local).map_err(listen_err)?;
    let listener = socket.listen(LISTEN_BACKLOG).map_err(listen_err)?;
    let bound = listener.local_addr().map_err(listen_err)?;
    Ok((listener, multiaddr(bound)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tcp_multiaddrs() {
        let cases = [
            ("/ip4/127.0.0.1/tcp/4001", Some("127.0.0.1:4001")),
            ("/ip6/::1/tcp/0", Some("[::1]:0")),
            (
                "/ip4/1.2.3.4/tcp/1/p2p/12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq",
                Some("1.2.3.4:1"),
            ),
            ("/ip4/1.2.3.4/udp/1/quic-v1", None),
            ("/dns4/example.com/tcp/1", None),
            ("/ip4/1.2.3.4", None),
            ("/ip4/1.2.3.4/tcp/1/ws", None),
        ];
        for (text, expected) in cases {
            let addr: Multiaddr = text.parse().unwrap();
            assert_eq!(socket_addr(&addr), expected.map(|s| s.parse().unwrap()), "{text}");
        }
    }

    #[tokio::test]
    async fn port_zero_resolves_to_the_bound_port() {
        let (_listener, bound) = listen(&"/ip4/127.0.0.1/tcp/0".parse().unwrap()).unwrap();
        let port = socket_addr(&bound).unwrap().port();
        assert_ne!(port, 0);
        let stream = dial(&bound).await.unwrap();
        assert!(stream.nodelay().unwrap());
    }
}
