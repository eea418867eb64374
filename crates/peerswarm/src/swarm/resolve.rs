//! Address resolution before a dial: `/dnsaddr` through TXT records, then
//! `/dns`, `/dns4` and `/dns6` to IP addresses (go-libp2p's
//! `resolveAddrs`, and go's `WithMultiaddrResolver` option as
//! [`SwarmBuilder::resolver`](super::SwarmBuilder::resolver)).
//!
//! # What a dial resolves
//!
//! Per go-libp2p's swarm (§2.4 of the port's reference):
//!
//! 1. `/dnsaddr/<domain>/...`: the TXT records of `_dnsaddr.<domain>`; each
//!    record `dnsaddr=<multiaddr>` is one result (multiaddr DNSADDR spec).
//!    Results that are themselves `/dnsaddr` are resolved again, at most
//!    4 lookups deep along one chain (deeper ones are
//!    dropped). A result whose trailing `/p2p/<id>` names another peer is
//!    dropped; when the `/dnsaddr` address carries more than its `/p2p`
//!    part (`/dnsaddr/d/tcp/1`), a result must end with that part.
//! 2. A leading `/dns` (both families), `/dns4` (IPv4 only) or `/dns6`
//!    (IPv6 only) becomes one address per IP. Only the *leading* component is
//!    resolved: `/dns/a/.../p2p-circuit/dns/b/...` yields one address per IP of
//!    `a`, not the product of both (go's `TestSkipDialingManyDNS`).
//! 3. The trailing `/p2p/<id>` is stripped and duplicates removed, keeping
//!    the first. At most 100 addresses come out.
//!
//! Lookup errors are logged at `debug` and the address dropped; resolution
//! itself never fails. go's transport-specific resolvers (websocket SNI) and
//! `SkipResolver` have no counterpart: the only transport is TCP.
//!
//! # Bounds
//!
//! Each lookup is cut off after 10 s whatever the resolver does; one
//! resolution makes at most 32 TXT lookups (a hostile zone can fan out wide
//! as well as deep) and runs at most 8 IP lookups at a time.

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use multiaddr::{Multiaddr, Protocol};
use peerswarm_proto::dns::{DnsError, Query, Reply};
use peerswarm_proto::identity::PeerId;
use std::collections::HashSet;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// Most addresses one resolution yields (go: 100).
pub(crate) const MAX_RESOLVED: usize = 100;
/// Most `/dnsaddr` lookups along one chain of nested records (go: 4).
pub(crate) const MAX_DNSADDR_DEPTH: usize = 4;
/// Most TXT lookups in one resolution, over all chains.
pub(crate) const MAX_TXT_LOOKUPS: usize = 32;
/// IP lookups in flight at once during one resolution.
pub(crate) const CONCURRENT_IP_LOOKUPS: usize = 8;
/// Bound on one lookup by any [`Resolver`], enforced by the swarm.
pub(crate) const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a name could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ResolveError {
    /// The name does not exist (NXDOMAIN) or has no address.
    #[error("{name}: not found")]
    NotFound {
        /// The name looked up.
        name: String,
    },
    /// No answer in time.
    #[error("{name}: lookup timed out")]
    Timeout {
        /// The name looked up.
        name: String,
    },
    /// The name cannot be put in a query (empty label, too long).
    #[error("{name}: invalid name")]
    InvalidName {
        /// The name looked up.
        name: String,
    },
    /// No nameserver is configured (nothing usable in `/etc/resolv.conf`).
    #[error("no nameserver configured")]
    NoNameserver,
    /// The nameserver answered with an error code (the server's fault).
    #[error("{name}: nameserver error (rcode {rcode})")]
    Server {
        /// The name looked up.
        name: String,
        /// The DNS response code.
        rcode: u8,
    },
    /// The only replies received were malformed or not for our query.
    #[error("{name}: malformed reply: {reason}")]
    Malformed {
        /// The name looked up.
        name: String,
        /// What was wrong with the last reply.
        reason: DnsError,
    },
    /// A socket error.
    #[error("{name}: i/o error: {kind}")]
    Io {
        /// The name looked up.
        name: String,
        /// The error's kind.
        kind: io::ErrorKind,
    },
    /// An error from a custom [`Resolver`].
    #[error("{0}")]
    Other(String),
}

/// Name lookups for address resolution (go's `network.MultiaddrDNSResolver`
/// at the level of DNS queries). Inject one with
/// [`SwarmBuilder::resolver`](super::SwarmBuilder::resolver); the default is
/// [`SystemResolver`].
///
/// Methods return boxed futures so the trait is object-safe. The swarm
/// bounds every call by 10 s and drops the future when it
/// gives up, so implementations must be cancel-safe.
pub trait Resolver: Send + Sync + 'static {
    /// The IP addresses of `host`, both families (the caller filters).
    fn lookup_ip<'a>(&'a self, host: &'a str) -> BoxFuture<'a, Result<Vec<IpAddr>, ResolveError>>;

    /// The TXT records of `name`, one string per record (a record's
    /// character strings concatenated). Records that are not UTF-8 are left
    /// out.
    fn lookup_txt<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Vec<String>, ResolveError>>;
}

/// The default [`Resolver`]: IP addresses from the operating system
/// (`getaddrinfo`, through `tokio::net::lookup_host`), TXT records from a
/// small built-in DNS client that asks the first `nameserver` of
/// `/etc/resolv.conf` over UDP, and again over TCP if the reply was
/// truncated.
///
/// The client sends one query (no retransmission, no search domains, no
/// EDNS) and ignores datagrams that are not a reply to it (wrong ID or
/// question); an off-path attacker must guess the 16-bit random ID, and
/// the source port is random too. Use DNS-over-TLS/HTTPS through a custom
/// [`Resolver`] where that is not enough.
#[derive(Debug, Clone)]
pub struct SystemResolver {
    nameserver: Option<SocketAddr>,
    resolv_conf: PathBuf,
    timeout: Duration,
}

impl Default for SystemResolver {
    fn default() -> Self {
        Self {
            nameserver: None,
            resolv_conf: PathBuf::from("/etc/resolv.conf"),
            timeout: Duration::from_secs(5),
        }
    }
}

impl SystemResolver {
    /// The resolver with its defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sends TXT queries to `nameserver` instead of the first one in
    /// `/etc/resolv.conf` (read at each lookup, port 53).
    pub fn with_nameserver(mut self, nameserver: SocketAddr) -> Self {
        self.nameserver = Some(nameserver);
        self
    }

    /// Time allowed for one lookup, TCP fallback included. Default 5 s.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    async fn nameserver(&self) -> Result<SocketAddr, ResolveError> {
        if let Some(ns) = self.nameserver {
            return Ok(ns);
        }
        let text = read_resolv_conf(&self.resolv_conf).await.ok_or(ResolveError::NoNameserver)?;
        first_nameserver(&text).map(|ip| SocketAddr::new(ip, 53)).ok_or(ResolveError::NoNameserver)
    }

    async fn txt(&self, name: &str) -> Result<Vec<String>, ResolveError> {
        let query = Query::txt(rand::random(), name)
            .map_err(|_| ResolveError::InvalidName { name: name.to_owned() })?;
        let ns = self.nameserver().await?;
        let io = |e: io::Error| ResolveError::Io { name: name.to_owned(), kind: e.kind() };
        let mut reply = query_udp(&query, ns, name).await?;
        if reply == Reply::Truncated {
            reply = query_tcp(&query, ns).await.map_err(io)?.map_err(|reason| match reason {
                DnsError::Rcode { rcode } => ResolveError::Server { name: name.to_owned(), rcode },
                reason => ResolveError::Malformed { name: name.to_owned(), reason },
            })?;
        }
        match reply {
            Reply::Answers(answers) => Ok(query
                .txt_data(&answers)
                .into_iter()
                .filter_map(|record| String::from_utf8(record).ok())
                .collect()),
            Reply::NxDomain => Err(ResolveError::NotFound { name: name.to_owned() }),
            Reply::Truncated => {
                Err(ResolveError::Malformed { name: name.to_owned(), reason: DnsError::NotResponse })
            }
        }
    }
}

impl Resolver for SystemResolver {
    fn lookup_ip<'a>(&'a self, host: &'a str) -> BoxFuture<'a, Result<Vec<IpAddr>, ResolveError>> {
        async move {
            let lookup = tokio::net::lookup_host((host, 0));
            let addrs = match tokio::time::timeout(self.timeout, lookup).await {
                Err(_) => return Err(ResolveError::Timeout { name: host.to_owned() }),
                // getaddrinfo folds "no such host" into an opaque error.
                Ok(Err(_)) => return Err(ResolveError::NotFound { name: host.to_owned() }),
                Ok(Ok(addrs)) => addrs,
            };
            let mut ips: Vec<IpAddr> = Vec::new();
            for ip in addrs.map(|a| a.ip()) {
                if !ips.contains(&ip) {
                    ips.push(ip);
                }
            }
            Ok(ips)
        }
        .boxed()
    }

    fn lookup_txt<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Vec<String>, ResolveError>> {
        async move {
            match tokio::time::timeout(self.timeout, self.txt(name)).await {
                Ok(result) => result,
                Err(_) => Err(ResolveError::Timeout { name: name.to_owned() }),
            }
        }
        .boxed()
    }
}

async fn read_resolv_conf(path: &Path) -> Option<String> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        // Bounded: a resolv.conf is a few hundred bytes.
        let mut text = String::new();
        std::fs::File::open(path).ok()?.take(64 * 1024).read_to_string(&mut text).ok()?;
        Some(text)
    })
    .await
    .ok()
    .flatten()
}

/// The first `nameserver` line's address in resolv.conf text (comments
/// start with `#` or `;`; IPv6 zone indices are not supported and skipped).
fn first_nameserver(text: &str) -> Option<IpAddr> {
    text.lines().find_map(|line| {
        let line = line.split(['#', ';']).next().unwrap_or("");
        let mut words = line.split_whitespace();
        (words.next() == Some("nameserver")).then(|| words.next()?.parse().ok()).flatten()
    })
}

/// Sends `query` over UDP and waits for the matching reply. Datagrams that
/// are not a reply to it are logged and ignored; the caller's timeout ends
/// the wait.
async fn query_udp(query: &Query, ns: SocketAddr, name: &str) -> Result<Reply, ResolveError> {
    let io = |e: io::Error| ResolveError::Io { name: name.to_owned(), kind: e.kind() };
    let local: SocketAddr = match ns {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).await.map_err(io)?;
    // Connected: the kernel drops datagrams from anyone but the server.
    socket.connect(ns).await.map_err(io)?;
    socket.send(&query.encode()).await.map_err(io)?;
    // Replies without EDNS are at most 512 bytes; a longer datagram is cut
    // and then fails to decode, which is safe.
    let mut buf = vec![0; 4096];
    loop {
        let n = socket.recv(&mut buf).await.map_err(io)?;
        match query.handle_response(&buf[..n]) {
            Ok(reply) => return Ok(reply),
            Err(DnsError::Rcode { rcode }) => {
                return Err(ResolveError::Server { name: name.to_owned(), rcode })
            }
            Err(reason) => tracing::debug!(%name, %reason, "ignoring dns datagram"),
        }
    }
}

/// Sends `query` over TCP (RFC 1035 §4.2.2 framing) and reads one reply.
async fn query_tcp(query: &Query, ns: SocketAddr) -> io::Result<Result<Reply, DnsError>> {
    let mut stream = TcpStream::connect(ns).await?;
    stream.write_all(&query.encode_tcp()).await?;
    let len = stream.read_u16().await? as usize;
    // At most 64 KiB, the protocol's own bound.
    let mut buf = vec![0; len];
    stream.read_exact(&mut buf).await?;
    Ok(match query.handle_response(&buf) {
        Ok(Reply::Truncated) => Err(DnsError::NotResponse),
        other => other,
    })
}

/// The resolved addresses of `peer` (see the module docs): never fails;
/// at most `MAX_RESOLVED` addresses, `/p2p` stripped, no duplicates.
pub(crate) async fn resolve_addrs(
    resolver: &dyn Resolver,
    peer: PeerId,
    addrs: Vec<Multiaddr>,
) -> Vec<Multiaddr> {
    let expanded = resolve_dnsaddrs(resolver, peer, addrs).await;
    let resolved = resolve_dns(resolver, expanded).await;
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for mut addr in resolved {
        if let Some(Protocol::P2p(_)) = addr.iter().last() {
            addr.pop();
        }
        if out.len() < MAX_RESOLVED && seen.insert(addr.clone()) {
            out.push(addr);
        }
    }
    out
}

/// Whether `addr` names a peer other than `peer` in its trailing `/p2p`.
fn for_other_peer(addr: &Multiaddr, peer: &PeerId) -> bool {
    matches!(addr.iter().last(), Some(Protocol::P2p(id)) if id != *peer)
}

/// `addr` without a trailing `/p2p/<id>`.
fn without_p2p(addr: &Multiaddr) -> Multiaddr {
    let mut addr = addr.clone();
    if let Some(Protocol::P2p(_)) = addr.iter().last() {
        addr.pop();
    }
    addr
}

/// Expands `/dnsaddr` addresses depth-first, in order, keeping the others.
async fn resolve_dnsaddrs(resolver: &dyn Resolver, peer: PeerId, addrs: Vec<Multiaddr>) -> Vec<Multiaddr> {
    let mut out = Vec::new();
    let mut lookups = 0;
    // (address, lookups made on its chain so far); popped from the end.
    let mut stack: Vec<(Multiaddr, usize)> = addrs.into_iter().rev().map(|a| (a, 0)).collect();
    while let Some((addr, depth)) = stack.pop() {
        if out.len() >= MAX_RESOLVED {
            break;
        }
        if for_other_peer(&addr, &peer) {
            tracing::debug!(%addr, %peer, "dropping address of another peer");
            continue;
        }
        let mut parts = addr.iter();
        let Some(Protocol::Dnsaddr(domain)) = parts.next() else {
            out.push(addr);
            continue;
        };
        if depth >= MAX_DNSADDR_DEPTH || lookups >= MAX_TXT_LOOKUPS {
            tracing::debug!(%addr, depth, lookups, "dnsaddr lookup limit reached");
            continue;
        }
        lookups += 1;
        let suffix = without_p2p(&parts.collect());
        let name = format!("_dnsaddr.{domain}");
        let records = match tokio::time::timeout(LOOKUP_TIMEOUT, resolver.lookup_txt(&name)).await {
            Ok(Ok(records)) => records,
            Ok(Err(error)) => {
                tracing::debug!(%addr, %error, "dnsaddr lookup failed");
                continue;
            }
            Err(_) => {
                tracing::debug!(%addr, "dnsaddr lookup timed out");
                continue;
            }
        };
        let mut children = Vec::new();
        for record in records {
            let Some(text) = record.strip_prefix("dnsaddr=") else { continue };
            let Ok(child) = text.parse::<Multiaddr>() else {
                tracing::debug!(%addr, record = %text, "ignoring unparsable dnsaddr record");
                continue;
            };
            if !without_p2p(&child).ends_with(&suffix) {
                continue;
            }
            children.push((child, depth + 1));
            // Memory bound: no chain can use more than the output cap.
            if children.len() >= MAX_RESOLVED {
                break;
            }
        }
        stack.extend(children.into_iter().rev());
    }
    out
}

/// Resolves a leading `/dns`, `/dns4` or `/dns6` to IPs, in order.
async fn resolve_dns(resolver: &dyn Resolver, addrs: Vec<Multiaddr>) -> Vec<Multiaddr> {
    let results = futures::stream::iter(addrs)
        .map(|addr| async move {
            let mut parts = addr.iter();
            let (host, v4, v6) = match parts.next() {
                Some(Protocol::Dns(h)) => (h, true, true),
                Some(Protocol::Dns4(h)) => (h, true, false),
                Some(Protocol::Dns6(h)) => (h, false, true),
                _ => return vec![addr],
            };
            let rest: Vec<Protocol<'_>> = parts.collect();
            let ips = match tokio::time::timeout(LOOKUP_TIMEOUT, resolver.lookup_ip(&host)).await {
                Ok(Ok(ips)) => ips,
                Ok(Err(error)) => {
                    tracing::debug!(%addr, %error, "dns lookup failed");
                    return Vec::new();
                }
                Err(_) => {
                    tracing::debug!(%addr, "dns lookup timed out");
                    return Vec::new();
                }
            };
            ips.into_iter()
                .filter(|ip| if ip.is_ipv4() { v4 } else { v6 })
                .take(MAX_RESOLVED)
                .map(|ip| {
                    let mut resolved = Multiaddr::empty().with(ip.into());
                    for p in &rest {
                        resolved.push(p.clone());
                    }
                    resolved
                })
                .collect()
        })
        .buffered(CONCURRENT_IP_LOOKUPS);
    futures::pin_mut!(results);
    let mut out = Vec::new();
    while let Some(batch) = results.next().await {
        out.extend(batch);
        if out.len() >= MAX_RESOLVED {
            out.truncate(MAX_RESOLVED);
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A resolver answering from tables; unknown names are not found. Counts
    /// TXT lookups.
    #[derive(Default)]
    struct Mock {
        ips: HashMap<String, Vec<IpAddr>>,
        txt: HashMap<String, Vec<String>>,
        txt_lookups: std::sync::atomic::AtomicUsize,
    }

    impl Resolver for Mock {
        fn lookup_ip<'a>(&'a self, host: &'a str) -> BoxFuture<'a, Result<Vec<IpAddr>, ResolveError>> {
            let r = self.ips.get(host).cloned().ok_or(ResolveError::NotFound { name: host.into() });
            async move { r }.boxed()
        }

        fn lookup_txt<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Vec<String>, ResolveError>> {
            self.txt_lookups.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let r = self.txt.get(name).cloned().ok_or(ResolveError::NotFound { name: name.into() });
            async move { r }.boxed()
        }
    }

    fn ma(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    /// `_dnsaddr.d0` → `/dnsaddr/d1` → ... → `/dnsaddr/d{n-1}` → an IP.
    fn chain(n: usize) -> Mock {
        let mut mock = Mock::default();
        for i in 0..n {
            let next =
                if i + 1 == n { "/ip4/1.2.3.4/tcp/1".to_owned() } else { format!("/dnsaddr/d{}", i + 1) };
            mock.txt.insert(format!("_dnsaddr.d{i}"), vec![format!("dnsaddr={next}")]);
        }
        mock
    }

    #[tokio::test]
    async fn dnsaddr_depth_limit() {
        let peer = PeerId::random();
        let got = resolve_addrs(&chain(MAX_DNSADDR_DEPTH), peer, vec![ma("/dnsaddr/d0")]).await;
        assert_eq!(got, vec![ma("/ip4/1.2.3.4/tcp/1")]);
        let too_deep = chain(MAX_DNSADDR_DEPTH + 1);
        assert!(resolve_addrs(&too_deep, peer, vec![ma("/dnsaddr/d0")]).await.is_empty());
        assert_eq!(too_deep.txt_lookups.into_inner(), MAX_DNSADDR_DEPTH);
    }

    #[tokio::test]
    async fn output_capped() {
        let peer = PeerId::random();
        let mut mock = Mock::default();
        let records = (0..255).map(|i| format!("dnsaddr=/ip4/10.0.0.{i}/tcp/1")).collect();
        mock.txt.insert("_dnsaddr.many".into(), records);
        let got = resolve_addrs(&mock, peer, vec![ma("/dnsaddr/many"), ma("/ip4/1.1.1.1/tcp/1")]).await;
        assert_eq!(got.len(), MAX_RESOLVED);
        assert_eq!(got[0], ma("/ip4/10.0.0.0/tcp/1"));
        assert_eq!(got[99], ma("/ip4/10.0.0.99/tcp/1"));

        // DNS fan-out is capped too.
        let mut mock = Mock::default();
        mock.ips.insert("wide".into(), (0..=255).map(|i| IpAddr::from([10, 0, 1, i])).collect());
        let got = resolve_addrs(&mock, peer, vec![ma("/dns4/wide/tcp/1"), ma("/dns4/wide/tcp/2")]).await;
        assert_eq!(got.len(), MAX_RESOLVED);
        assert!(got.iter().all(|a| a.to_string().ends_with("/tcp/1")));
    }

    #[tokio::test]
    async fn txt_lookups_bounded_across_chains() {
        // 100 records, each a dnsaddr leading nowhere: only MAX_TXT_LOOKUPS
        // lookups are made.
        let mut mock = Mock::default();
        let records = (0..100).map(|i| format!("dnsaddr=/dnsaddr/x{i}")).collect();
        mock.txt.insert("_dnsaddr.wide".into(), records);
        assert!(resolve_addrs(&mock, PeerId::random(), vec![ma("/dnsaddr/wide")]).await.is_empty());
        assert_eq!(mock.txt_lookups.into_inner(), MAX_TXT_LOOKUPS);
    }

    #[tokio::test]
    async fn dnsaddr_peer_and_suffix_filter() {
        let (us, them) = (PeerId::random(), PeerId::random());
        let mut mock = Mock::default();
        mock.txt.insert(
            "_dnsaddr.example.com".into(),
            vec![
                format!("dnsaddr=/ip4/1.1.1.1/tcp/1/p2p/{us}"),
                format!("dnsaddr=/ip4/2.2.2.2/tcp/2/p2p/{them}"),
                "dnsaddr=/ip4/3.3.3.3/udp/3/quic-v1".into(),
                "dnsaddr=not a multiaddr".into(),
                "v=spf1 -all".into(),
                "dnsaddr=/ip4/4.4.4.4/tcp/4".into(),
            ],
        );
        let got = resolve_addrs(&mock, us, vec![ma(&format!("/dnsaddr/example.com/p2p/{us}"))]).await;
        assert_eq!(
            got,
            vec![ma("/ip4/1.1.1.1/tcp/1"), ma("/ip4/3.3.3.3/udp/3/quic-v1"), ma("/ip4/4.4.4.4/tcp/4")]
        );
        // With a transport suffix, only records ending with it.
        let got = resolve_addrs(&mock, us, vec![ma("/dnsaddr/example.com/tcp/4")]).await;
        assert_eq!(got, vec![ma("/ip4/4.4.4.4/tcp/4")]);
        // The address itself for another peer: no lookup at all.
        let got = resolve_addrs(&mock, us, vec![ma(&format!("/dnsaddr/example.com/p2p/{them}"))]).await;
        assert!(got.is_empty());
    }

    #[tokio::test]
    async fn dns_families_and_dedup() {
        let mut mock = Mock::default();
        mock.ips.insert("example.com".into(), vec!["1.2.3.4".parse().unwrap(), "::1".parse().unwrap()]);
        let peer = PeerId::random();
        let input = vec![
            ma("/dns4/example.com/tcp/1234"),
            ma("/ip4/1.2.3.4/tcp/1234"),
            ma("/dns6/example.com/tcp/1"),
            ma("/dns/example.com/tcp/2"),
            ma("/dns/unknown.example/tcp/3"),
            ma(&format!("/ip4/1.2.3.4/tcp/1234/p2p/{peer}")),
        ];
        let got = resolve_addrs(&mock, peer, input).await;
        assert_eq!(
            got,
            vec![
                ma("/ip4/1.2.3.4/tcp/1234"),
                ma("/ip6/::1/tcp/1"),
                ma("/ip4/1.2.3.4/tcp/2"),
                ma("/ip6/::1/tcp/2"),
            ]
        );
    }

    #[tokio::test]
    async fn only_leading_dns_resolved() {
        // go's TestSkipDialingManyDNS.
        let mut mock = Mock::default();
        mock.ips.insert("example.com".into(), vec!["1.2.3.4".parse().unwrap(), "1.2.3.5".parse().unwrap()]);
        let addr = ma("/dns/example.com/tcp/1234/p2p-circuit/dns/example.com/tcp/1234/p2p-circuit/dns/example.com/tcp/1");
        let got = resolve_addrs(&mock, PeerId::random(), vec![addr]).await;
        assert_eq!(got.len(), 2, "{got:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn hanging_resolver_is_cut_off() {
        struct Hang;
        impl Resolver for Hang {
            fn lookup_ip<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<Vec<IpAddr>, ResolveError>> {
                futures::future::pending().boxed()
            }
            fn lookup_txt<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<Vec<String>, ResolveError>> {
                futures::future::pending().boxed()
            }
        }
        let input = vec![ma("/dnsaddr/a"), ma("/dns4/b/tcp/1"), ma("/ip4/1.1.1.1/tcp/1")];
        let got = resolve_addrs(&Hang, PeerId::random(), input).await;
        assert_eq!(got, vec![ma("/ip4/1.1.1.1/tcp/1")]);
    }

    #[test]
    fn resolv_conf() {
        let text = "# generated\nsearch lan\n; nameserver 9.9.9.9\nnameserver fe80::1%eth0\nnameserver 10.0.0.53 # router\nnameserver 1.1.1.1\n";
        assert_eq!(first_nameserver(text), Some(IpAddr::from([10, 0, 0, 53])));
        assert_eq!(first_nameserver("nameserver ::1"), Some("::1".parse().unwrap()));
        assert_eq!(first_nameserver("options ndots:1\n"), None);
    }
}
