//! Address resolution before dialing: go-libp2p's `TestAddrResolution`,
//! `TestAddrResolutionRecursive`, `TestBasicDialPeerWithResolver`,
//! `TestDedupAddrsForDial` and the limits of `TestSwarmResolver`, with a
//! mock [`Resolver`]; then the built-in [`SystemResolver`] against
//! `localhost` and a fake DNS server on loopback (no test needs real DNS).

mod common;

use common::*;
use futures::future::BoxFuture;
use futures::FutureExt;
use peerswarm::identity::{Keypair, PeerId};
use peerswarm::peerstore::PERMANENT_ADDR_TTL;
use peerswarm::swarm::{ConnectionGater, DialCause, ResolveError, Resolver, Swarm, SystemResolver};
use peerswarm::Multiaddr;
use peerswarm_proto::dns::{Message, Query, RData, Record, CLASS_IN, RCODE_NXDOMAIN, TYPE_TXT};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Answers from tables; unknown names are not found.
#[derive(Default)]
struct MockResolver {
    ips: HashMap<String, Vec<IpAddr>>,
    txt: HashMap<String, Vec<String>>,
}

impl MockResolver {
    fn txt(mut self, name: &str, records: &[String]) -> Self {
        self.txt.insert(name.to_owned(), records.to_vec());
        self
    }

    fn ip(mut self, host: &str, ips: &[&str]) -> Self {
        self.ips.insert(host.to_owned(), ips.iter().map(|ip| ip.parse().unwrap()).collect());
        self
    }
}

impl Resolver for MockResolver {
    fn lookup_ip<'a>(&'a self, host: &'a str) -> BoxFuture<'a, Result<Vec<IpAddr>, ResolveError>> {
        let r = self.ips.get(host).cloned().ok_or(ResolveError::NotFound { name: host.into() });
        async move { r }.boxed()
    }

    fn lookup_txt<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Vec<String>, ResolveError>> {
        let r = self.txt.get(name).cloned().ok_or(ResolveError::NotFound { name: name.into() });
        async move { r }.boxed()
    }
}

/// Records every address the dialer asks about; allows or refuses all.
#[derive(Clone)]
struct RecordingGater {
    seen: Arc<Mutex<Vec<Multiaddr>>>,
    allow: bool,
}

impl RecordingGater {
    fn new(allow: bool) -> Self {
        Self { seen: Arc::default(), allow }
    }

    fn seen(&self) -> Vec<Multiaddr> {
        self.seen.lock().unwrap().clone()
    }
}

impl ConnectionGater for RecordingGater {
    fn intercept_addr_dial(&self, _peer: &PeerId, addr: &Multiaddr) -> bool {
        self.seen.lock().unwrap().push(addr.clone());
        self.allow
    }
}

fn ma(s: &str) -> Multiaddr {
    s.parse().unwrap()
}

fn dialer_with(resolver: impl Resolver, gater: Option<RecordingGater>) -> Swarm {
    let builder = Swarm::builder(Keypair::generate_ed25519()).config(test_config()).resolver(resolver);
    match gater {
        Some(gater) => builder.gater(gater).build(),
        None => builder.build(),
    }
}

fn listen_addr(swarm: &Swarm) -> Multiaddr {
    swarm.listen_addresses()[0].clone()
}

fn port(swarm: &Swarm) -> u16 {
    swarm.listen_addresses()[0]
        .iter()
        .find_map(|p| match p {
            multiaddr::Protocol::Tcp(port) => Some(port),
            _ => None,
        })
        .unwrap()
}

#[tokio::test]
async fn addr_resolution() {
    // go TestAddrResolution: a dnsaddr with entries for two peers yields
    // only ours; the resolved address lands in the peerstore.
    let b = gen_swarm().await;
    echo_handler(&b);
    let other = PeerId::random();
    let ours = format!("{}/p2p/{}", listen_addr(&b), b.local_peer());
    let theirs = format!("/ip4/127.0.0.1/tcp/1/p2p/{other}");
    let resolver = MockResolver::default()
        .txt("_dnsaddr.example.com", &[format!("dnsaddr={theirs}"), format!("dnsaddr={ours}")]);
    let gater = RecordingGater::new(true);
    let a = dialer_with(resolver, Some(gater.clone()));
    let dnsaddr = ma(&format!("/dnsaddr/example.com/p2p/{}", b.local_peer()));
    a.peerstore().add_addrs_now(b.local_peer(), [dnsaddr], PERMANENT_ADDR_TTL).unwrap();

    assert_eq!(echo(&a, &b.local_peer(), b"resolved").await, b"resolved");
    assert_eq!(gater.seen(), vec![listen_addr(&b)]);
    let mut stored = a.peerstore().addrs_now(&b.local_peer());
    stored.sort_by_key(|a| a.to_string());
    assert_eq!(stored, vec![ma("/dnsaddr/example.com"), listen_addr(&b)]);
}

#[tokio::test]
async fn addr_resolution_recursive() {
    // go TestAddrResolutionRecursive: nested dnsaddr; other peers' entries
    // are dropped at every level.
    let b = gen_swarm().await;
    echo_handler(&b);
    let other = PeerId::random();
    let resolver = MockResolver::default()
        .txt(
            "_dnsaddr.example.com",
            &["dnsaddr=/dnsaddr/foo.example.com".into(), "dnsaddr=/dnsaddr/bar.example.com".into()],
        )
        .txt(
            "_dnsaddr.foo.example.com",
            &[
                format!("dnsaddr=/ip4/127.0.0.1/tcp/1/p2p/{other}"),
                format!("dnsaddr={}/p2p/{}", listen_addr(&b), b.local_peer()),
            ],
        )
        .txt("_dnsaddr.bar.example.com", &[format!("dnsaddr=/ip4/127.0.0.1/tcp/2/p2p/{other}")]);
    let gater = RecordingGater::new(true);
    let a = dialer_with(resolver, Some(gater.clone()));
    a.peerstore().add_addrs_now(b.local_peer(), [ma("/dnsaddr/example.com")], PERMANENT_ADDR_TTL).unwrap();
    assert_eq!(echo(&a, &b.local_peer(), b"deep").await, b"deep");
    assert_eq!(gater.seen(), vec![listen_addr(&b)]);

    // A peer whose only address resolves to other peers' entries: it *had*
    // addresses, none survived, so NoGoodAddresses (as go's
    // ErrNoGoodAddresses). NoAddresses means the peerstore knew nothing.
    let lonely = PeerId::random();
    a.peerstore().add_addrs_now(lonely, [ma("/dnsaddr/bar.example.com")], PERMANENT_ADDR_TTL).unwrap();
    let err = a.dial_peer(&lonely).await.unwrap_err();
    assert!(matches!(err.cause, DialCause::NoGoodAddresses), "{err}");
    // Likewise for a name that does not resolve at all.
    let unknown = PeerId::random();
    a.peerstore().add_addrs_now(unknown, [ma("/dnsaddr/nx.example.com")], PERMANENT_ADDR_TTL).unwrap();
    let err = a.dial_peer(&unknown).await.unwrap_err();
    assert!(matches!(err.cause, DialCause::NoGoodAddresses), "{err}");
}

/// `_dnsaddr.lN.example` → `/dnsaddr/lN+1.example` ..., the last level
/// pointing at `target`.
fn dnsaddr_chain(levels: usize, target: &Multiaddr) -> MockResolver {
    let mut resolver = MockResolver::default();
    for i in 0..levels {
        let next = if i + 1 == levels { target.to_string() } else { format!("/dnsaddr/l{}.example", i + 1) };
        resolver = resolver.txt(&format!("_dnsaddr.l{i}.example"), &[format!("dnsaddr={next}")]);
    }
    resolver
}

#[tokio::test]
async fn dnsaddr_recursion_limit() {
    let b = gen_swarm().await;
    // Four nested lookups are allowed.
    let a = dialer_with(dnsaddr_chain(4, &listen_addr(&b)), None);
    a.peerstore().add_addrs_now(b.local_peer(), [ma("/dnsaddr/l0.example")], PERMANENT_ADDR_TTL).unwrap();
    a.dial_peer(&b.local_peer()).await.expect("4 levels resolve");
    // A fifth is not: the chain is dropped and nothing is left to dial.
    let a = dialer_with(dnsaddr_chain(5, &listen_addr(&b)), None);
    a.peerstore().add_addrs_now(b.local_peer(), [ma("/dnsaddr/l0.example")], PERMANENT_ADDR_TTL).unwrap();
    let err = a.dial_peer(&b.local_peer()).await.unwrap_err();
    assert!(matches!(err.cause, DialCause::NoGoodAddresses), "{err}");
}

#[tokio::test]
async fn resolution_output_capped() {
    // 150 records; a gater that refuses every address sees only 100 of them
    // (and nothing is dialed).
    let records: Vec<String> =
        (0..150).map(|i| format!("dnsaddr=/ip4/127.0.0.1/tcp/{}", 10_000 + i)).collect();
    let gater = RecordingGater::new(false);
    let a = dialer_with(MockResolver::default().txt("_dnsaddr.many.example", &records), Some(gater.clone()));
    let peer = PeerId::random();
    a.peerstore().add_addrs_now(peer, [ma("/dnsaddr/many.example")], PERMANENT_ADDR_TTL).unwrap();
    let err = a.dial_peer(&peer).await.unwrap_err();
    assert!(matches!(err.cause, DialCause::NoGoodAddresses), "{err}");
    let seen = gater.seen();
    assert_eq!(seen.len(), 100);
    assert_eq!(seen[0], ma("/ip4/127.0.0.1/tcp/10000"));
    assert_eq!(seen[99], ma("/ip4/127.0.0.1/tcp/10099"));
}

#[tokio::test]
async fn basic_dial_peer_with_resolver() {
    // go TestBasicDialPeerWithResolver.
    let b = gen_swarm().await;
    echo_handler(&b);
    let a = dialer_with(MockResolver::default().ip("example.com", &["127.0.0.1"]), None);
    let addr = ma(&format!("/dns4/example.com/tcp/{}", port(&b)));
    a.peerstore().add_addrs_now(b.local_peer(), [addr], PERMANENT_ADDR_TTL).unwrap();
    assert_eq!(echo(&a, &b.local_peer(), b"via dns").await, b"via dns");
    assert!(a.peerstore().addrs_now(&b.local_peer()).contains(&listen_addr(&b)));
}

#[tokio::test]
async fn dedup_addrs_for_dial() {
    // go TestDedupAddrsForDial: `/dns4/example.com/tcp/P` and the IP it
    // resolves to collapse to one address.
    let b = gen_swarm().await;
    let gater = RecordingGater::new(true);
    let a = dialer_with(MockResolver::default().ip("example.com", &["127.0.0.1"]), Some(gater.clone()));
    let addrs = [ma(&format!("/dns4/example.com/tcp/{}", port(&b))), listen_addr(&b)];
    a.peerstore().add_addrs_now(b.local_peer(), addrs, PERMANENT_ADDR_TTL).unwrap();
    a.dial_peer(&b.local_peer()).await.unwrap();
    assert_eq!(gater.seen(), vec![listen_addr(&b)]);
}

#[tokio::test]
async fn dns6_does_not_use_ipv4_answers() {
    let b = gen_swarm().await;
    let a = dialer_with(MockResolver::default().ip("example.com", &["127.0.0.1"]), None);
    let addr = ma(&format!("/dns6/example.com/tcp/{}", port(&b)));
    a.peerstore().add_addrs_now(b.local_peer(), [addr], PERMANENT_ADDR_TTL).unwrap();
    let err = a.dial_peer(&b.local_peer()).await.unwrap_err();
    assert!(matches!(err.cause, DialCause::NoGoodAddresses), "{err}");
}

// ----- the system resolver, on loopback only -----

#[tokio::test]
async fn system_resolver_localhost() {
    let ips = SystemResolver::new().lookup_ip("localhost").await.unwrap();
    assert!(ips.iter().any(|ip| ip.is_loopback()), "{ips:?}");

    // And a whole dial through it, with the default resolver.
    let b = gen_swarm().await;
    echo_handler(&b);
    let a = gen_dial_only();
    let addr = ma(&format!("/dns4/localhost/tcp/{}", port(&b)));
    a.peerstore().add_addrs_now(b.local_peer(), [addr], PERMANENT_ADDR_TTL).unwrap();
    assert_eq!(echo(&a, &b.local_peer(), b"localhost").await, b"localhost");
}

/// How the fake DNS server misbehaves over UDP.
#[derive(Clone, Copy, PartialEq)]
enum Udp {
    /// Answers.
    Answer,
    /// First a reply with the wrong ID and one with another question, then
    /// the answer.
    SpoofFirst,
    /// Replies truncated (TC, no answers); the answer is over TCP.
    Truncate,
    /// Never replies.
    Silent,
}

/// A DNS server on loopback (UDP and TCP on one port) answering TXT
/// queries from `table`; other names get NXDOMAIN. Records are split into
/// 16-byte character strings so clients must concatenate them.
async fn fake_dns(table: HashMap<String, Vec<String>>, udp: Udp) -> SocketAddr {
    let table = Arc::new(table);
    let (socket, tcp) = loop {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        if let Ok(tcp) = tokio::net::TcpListener::bind(socket.local_addr().unwrap()).await {
            break (socket, tcp);
        }
    };
    let addr = socket.local_addr().unwrap();
    let answer = {
        let table = table.clone();
        move |bytes: &[u8]| -> Option<Message> {
            let query = Message::decode(bytes).ok()?;
            let question = query.questions.first()?.clone();
            let mut reply = Message::response_to(&Query::txt(query.id, &question.name.to_string()).ok()?);
            match table.get(&question.name.to_string()) {
                Some(records) => {
                    for record in records {
                        reply.answers.push(Record {
                            name: question.name.clone(),
                            rtype: TYPE_TXT,
                            class: CLASS_IN,
                            ttl: 60,
                            data: RData::Txt(record.as_bytes().chunks(16).map(<[u8]>::to_vec).collect()),
                        });
                    }
                }
                None => reply.flags |= u16::from(RCODE_NXDOMAIN),
            }
            Some(reply)
        }
    };
    let udp_answer = answer.clone();
    tokio::spawn(async move {
        let mut buf = vec![0; 512];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let Some(mut reply) = udp_answer(&buf[..n]) else { continue };
            match udp {
                Udp::Answer => {}
                Udp::Silent => continue,
                Udp::Truncate => {
                    reply.answers.clear();
                    reply.flags |= 0x0200;
                }
                Udp::SpoofFirst => {
                    let mut wrong_id = reply.clone();
                    wrong_id.id ^= 1;
                    let _ = socket.send_to(&wrong_id.encode(), from).await;
                    let mut wrong_question = reply.clone();
                    wrong_question.questions[0].qtype = 1;
                    let _ = socket.send_to(&wrong_question.encode(), from).await;
                    let _ = socket.send_to(b"\xff garbage", from).await;
                }
            }
            let _ = socket.send_to(&reply.encode(), from).await;
        }
    });
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = tcp.accept().await {
            let answer = answer.clone();
            tokio::spawn(async move {
                let len = stream.read_u16().await.ok()? as usize;
                let mut buf = vec![0; len];
                stream.read_exact(&mut buf).await.ok()?;
                let reply = answer(&buf)?.encode();
                stream.write_u16(reply.len() as u16).await.ok()?;
                stream.write_all(&reply).await.ok()
            });
        }
    });
    addr
}

fn bootstrap_table() -> HashMap<String, Vec<String>> {
    let long = format!("dnsaddr=/ip4/1.2.3.4/tcp/4001/p2p/{}", PeerId::random());
    HashMap::from([(
        "_dnsaddr.example.com".to_owned(),
        vec!["dnsaddr=/ip4/127.0.0.1/tcp/4001".to_owned(), "v=spf1 -all".to_owned(), long],
    )])
}

#[tokio::test]
async fn system_resolver_txt_over_udp() {
    let table = bootstrap_table();
    for udp in [Udp::Answer, Udp::SpoofFirst, Udp::Truncate] {
        let ns = fake_dns(table.clone(), udp).await;
        let resolver = SystemResolver::new().with_nameserver(ns).with_timeout(Duration::from_secs(5));
        let records = resolver.lookup_txt("_dnsaddr.example.com").await.unwrap();
        assert_eq!(records, table["_dnsaddr.example.com"], "udp mode {}", udp as u8);
    }
}

#[tokio::test]
async fn system_resolver_txt_errors() {
    let ns = fake_dns(bootstrap_table(), Udp::Answer).await;
    let resolver = SystemResolver::new().with_nameserver(ns);
    assert_eq!(
        resolver.lookup_txt("_dnsaddr.nx.example").await,
        Err(ResolveError::NotFound { name: "_dnsaddr.nx.example".into() })
    );
    assert!(matches!(resolver.lookup_txt("a..b").await, Err(ResolveError::InvalidName { .. })));

    let ns = fake_dns(bootstrap_table(), Udp::Silent).await;
    let resolver = SystemResolver::new().with_nameserver(ns).with_timeout(Duration::from_millis(200));
    assert!(matches!(resolver.lookup_txt("_dnsaddr.example.com").await, Err(ResolveError::Timeout { .. })));
}

#[tokio::test]
async fn dial_through_dnsaddr_with_system_resolver() {
    // End to end: peerstore /dnsaddr → UDP TXT query → truncated → TCP →
    // record → dial → echo.
    let b = gen_swarm().await;
    echo_handler(&b);
    let table = HashMap::from([(
        "_dnsaddr.node.example".to_owned(),
        vec![format!("dnsaddr={}/p2p/{}", listen_addr(&b), b.local_peer())],
    )]);
    let ns = fake_dns(table, Udp::Truncate).await;
    let a = dialer_with(SystemResolver::new().with_nameserver(ns), None);
    a.peerstore().add_addrs_now(b.local_peer(), [ma("/dnsaddr/node.example")], PERMANENT_ADDR_TTL).unwrap();
    assert_eq!(echo(&a, &b.local_peer(), b"end to end").await, b"end to end");
}
