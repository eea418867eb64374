//! The host: protocol routing, per-protocol caps, and the built-in
//! protocols (identify and push, ping, echo, perf).

mod common;

use common::{eventually, loopback, test_config};
use peerswarm::host::{Host, HostConfig, HostError, ECHO_PROTOCOL};
use peerswarm::identity::Keypair;
use peerswarm::swarm::Swarm;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn host(config: HostConfig) -> Host {
    let swarm = Swarm::builder(Keypair::generate_ed25519()).config(test_config()).build();
    swarm.listen(&[loopback()]).await.unwrap();
    Host::new(swarm, config)
}

async fn pair(server: HostConfig) -> (Host, Host) {
    let (a, b) = (host(HostConfig::default()).await, host(server).await);
    a.connect(&b.local_peer(), b.swarm().listen_addresses()).await.unwrap();
    (a, b)
}

async fn request(
    host: &Host,
    peer: &peerswarm::identity::PeerId,
    protocol: &str,
    msg: &[u8],
) -> Result<Vec<u8>, HostError> {
    let mut stream = host.new_stream(peer, &[protocol]).await?;
    stream.write_all(msg).await?;
    stream.close_write().await?;
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await?;
    Ok(out)
}

#[tokio::test]
async fn routes_by_protocol_and_matcher() {
    let (a, b) = pair(HostConfig::default()).await;
    b.set_stream_handler("/upper/1.0.0", |mut s| async move {
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.unwrap();
        s.write_all(&buf.to_ascii_uppercase()).await.unwrap();
        s.close().await.unwrap();
    });
    b.set_stream_handler_match(
        "/version/",
        |p| p.starts_with("/version/"),
        |mut s| async move {
            let protocol = s.protocol().unwrap().to_owned();
            s.write_all(protocol.as_bytes()).await.unwrap();
            s.close().await.unwrap();
        },
    );
    let peer = b.local_peer();
    assert_eq!(request(&a, &peer, "/upper/1.0.0", b"abc").await.unwrap(), b"ABC");
    assert_eq!(request(&a, &peer, "/version/2.1", b"").await.unwrap(), b"/version/2.1");
    assert_eq!(request(&a, &peer, ECHO_PROTOCOL, b"echo me").await.unwrap(), b"echo me");
    // Several proposals: the first the remote supports wins.
    let stream = a.new_stream(&peer, &["/nope/1.0.0", "/upper/1.0.0"]).await.unwrap();
    assert_eq!(stream.protocol(), Some("/upper/1.0.0"));
    // Unsupported, optimistic: the refusal surfaces on read.
    assert!(request(&a, &peer, "/nope/1.0.0", b"x").await.is_err());
    // Unsupported, with a choice: negotiation fails.
    assert!(matches!(
        a.new_stream(&peer, &["/nope/1.0.0", "/nope/2.0.0"]).await,
        Err(HostError::Negotiation(_))
    ));
}

#[tokio::test]
async fn removed_handler_stops_serving() {
    let (a, b) = pair(HostConfig::default()).await;
    b.set_stream_handler("/tmp/1.0.0", |mut s| async move {
        let _ = s.write_all(b"here").await;
        let _ = s.close().await;
    });
    let peer = b.local_peer();
    assert_eq!(request(&a, &peer, "/tmp/1.0.0", b"").await.unwrap(), b"here");
    assert!(b.protocols().contains(&"/tmp/1.0.0".to_owned()));
    b.remove_stream_handler("/tmp/1.0.0");
    assert!(!b.protocols().contains(&"/tmp/1.0.0".to_owned()));
    assert!(request(&a, &peer, "/tmp/1.0.0", b"").await.is_err());
}

#[tokio::test]
async fn streams_beyond_the_protocol_cap_are_reset_not_queued() {
    let (a, b) = pair(HostConfig::default()).await;
    let running = Arc::new(AtomicUsize::new(0));
    let (release_tx, release_rx) = tokio::sync::watch::channel(false);
    let counter = running.clone();
    b.set_stream_handler_with_limit("/slow/1.0.0", 2, move |mut s| {
        let (counter, mut release) = (counter.clone(), release_rx.clone());
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            let _ = release.wait_for(|r| *r).await;
            let _ = s.write_all(b"done").await;
            let _ = s.close().await;
        }
    });
    let peer = b.local_peer();
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = a.new_stream(&peer, &["/slow/1.0.0"]).await.unwrap();
        s.write_all(b"go").await.unwrap();
        held.push(s);
    }
    assert!(eventually(Duration::from_secs(2), || running.load(Ordering::SeqCst) == 2).await);
    // The third is refused at once, while the first two still wait.
    let mut third = a.new_stream(&peer, &["/slow/1.0.0"]).await.unwrap();
    third.write_all(b"go").await.unwrap();
    let mut buf = Vec::new();
    let refused = tokio::time::timeout(Duration::from_secs(5), third.read_to_end(&mut buf)).await.unwrap();
    assert!(refused.is_err(), "third stream should be reset, got {buf:?}");
    assert_eq!(running.load(Ordering::SeqCst), 2);
    release_tx.send(true).unwrap();
    for mut s in held {
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        assert_eq!(out, b"done");
    }
}

#[tokio::test]
async fn identify_records_the_peer_and_reports_the_observed_address() {
    let (a, b) = pair(HostConfig::default().with_agent_version("test-agent/9")).await;
    let info = a.identify(&b.local_peer()).await.unwrap();
    assert_eq!(info.agent_version.as_deref(), Some("test-agent/9"));
    assert_eq!(info.protocol_version.as_deref(), Some(peerswarm::host::PROTOCOL_VERSION));
    assert!(info.protocols.contains(&"/ipfs/ping/1.0.0".to_owned()));
    assert_eq!(info.listen_addrs, b.swarm().interface_listen_addresses());
    let conn = &a.swarm().conns_to_peer(&b.local_peer())[0];
    assert_eq!(info.observed_addr.as_ref(), Some(conn.local_multiaddr()));
    let store = a.swarm().peerstore();
    assert!(store.supports_any(&b.local_peer(), &["/echo/1.0.0"]));
    assert_eq!(
        store.get(&b.local_peer(), peerswarm::host::AGENT_VERSION_KEY).as_deref(),
        Some(&b"test-agent/9"[..])
    );
}

#[tokio::test]
async fn confirm_protocol_reports_acceptance_or_refusal_before_any_read() {
    let (a, b) = pair(HostConfig::default()).await;
    let peer = b.local_peer();
    let mut accepted = a.new_stream(&peer, &[ECHO_PROTOCOL]).await.unwrap();
    accepted.write_all(b"ping").await.unwrap();
    accepted.confirm_protocol().await.unwrap();
    accepted.close_write().await.unwrap();
    let mut back = Vec::new();
    accepted.read_to_end(&mut back).await.unwrap();
    assert_eq!(back, b"ping");

    let mut refused = a.new_stream(&peer, &["/nobody/1.0.0"]).await.unwrap();
    let err = refused.confirm_protocol().await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    assert!(matches!(HostError::from(err), HostError::Negotiation(_)));
}

/// Serves identify like a peer that takes its time and, like js-libp2p,
/// resets identify streams beyond `limit` at once; counts the streams.
fn slow_identify(host: &Host, limit: usize) -> Arc<AtomicUsize> {
    let streams = Arc::new(AtomicUsize::new(0));
    let counted = streams.clone();
    host.set_stream_handler_with_limit(peerswarm_proto::identify::PROTOCOL, limit, move |mut s| {
        counted.fetch_add(1, Ordering::SeqCst);
        async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let answer = peerswarm_proto::identify::Identify {
                agent_version: Some("slow/1".into()),
                protocols: vec!["/slow/1.0.0".into()],
                ..Default::default()
            };
            let _ = s.write_all(&answer.encode_delimited()).await;
            let _ = s.close().await;
        }
    });
    streams
}

#[tokio::test]
async fn concurrent_identify_requests_share_one_exchange() {
    let a = host(HostConfig::default().with_identify_on_connect(false)).await;
    let b = host(HostConfig::default()).await;
    let streams = slow_identify(&b, 1);
    let peer = b.local_peer();
    a.connect(&peer, b.swarm().listen_addresses()).await.unwrap();
    let requests = (0..3).map(|_| a.identify(&peer));
    for info in futures::future::join_all(requests).await {
        assert_eq!(info.unwrap().agent_version.as_deref(), Some("slow/1"));
    }
    assert_eq!(streams.load(Ordering::SeqCst), 1, "one identify stream served three requests");
    // Once that exchange is over, a new request asks again.
    assert_eq!(a.identify(&peer).await.unwrap().protocols, ["/slow/1.0.0"]);
    assert_eq!(streams.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn identify_waiting_on_a_cancelled_exchange_asks_itself() {
    let a = host(HostConfig::default().with_identify_on_connect(false)).await;
    let b = host(HostConfig::default()).await;
    let streams = slow_identify(&b, 2);
    let peer = b.local_peer();
    a.connect(&peer, b.swarm().listen_addresses()).await.unwrap();
    let identify = |a: &Host| {
        let a = a.clone();
        tokio::spawn(async move { a.identify(&peer).await })
    };
    let leader = identify(&a);
    // The leader's exchange is under way once the peer serves its stream
    // (and the peer takes a second to answer).
    assert!(eventually(Duration::from_secs(5), || streams.load(Ordering::SeqCst) == 1).await);
    let follower = identify(&a);
    tokio::time::sleep(Duration::from_millis(50)).await;
    leader.abort();
    assert!(leader.await.unwrap_err().is_cancelled());
    // The follower asks itself (had it not joined in time, it led its own
    // exchange: the outcome is the same).
    assert_eq!(follower.await.unwrap().unwrap().agent_version.as_deref(), Some("slow/1"));
    assert_eq!(streams.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn identify_runs_on_connect_and_push_announces_new_protocols() {
    let (a, b) = pair(HostConfig::default()).await;
    let (peer, store) = (b.local_peer(), a.swarm().peerstore().clone());
    assert!(eventually(Duration::from_secs(5), || store.supports_any(&peer, &["/ipfs/ping/1.0.0"])).await);
    b.set_stream_handler("/new/1.0.0", |_| async {});
    assert!(eventually(Duration::from_secs(5), || store.supports_any(&peer, &["/new/1.0.0"])).await);
    b.remove_stream_handler("/new/1.0.0");
    assert!(eventually(Duration::from_secs(5), || !store.supports_any(&peer, &["/new/1.0.0"])).await);
}

#[tokio::test]
async fn a_burst_of_protocol_changes_leaves_peers_with_the_final_set() {
    let (a, b) = pair(HostConfig::default()).await;
    let (peer, store) = (b.local_peer(), a.swarm().peerstore().clone());
    assert!(eventually(Duration::from_secs(5), || store.supports_any(&peer, &["/ipfs/ping/1.0.0"])).await);
    let churn: Vec<String> = (0..20).map(|i| format!("/churn/{i}/1.0.0")).collect();
    for protocol in &churn {
        b.set_stream_handler(protocol, |_| async {});
    }
    for protocol in &churn[..19] {
        b.remove_stream_handler(protocol);
    }
    // Pushes go out a round at a time, each with the message of its start:
    // the last one carries the final set.
    let final_set = || {
        store.supports_any(&peer, &[churn[19].as_str()])
            && !churn[..19].iter().any(|p| store.supports_any(&peer, &[p.as_str()]))
    };
    assert!(eventually(Duration::from_secs(5), final_set).await, "the peer kept a stale protocol set");
}

#[tokio::test]
async fn dropping_every_host_handle_closes_its_connections() {
    let (a, b) = pair(HostConfig::default()).await;
    let peer = a.local_peer();
    // Identify (on connect) and a push have run: the host's own tasks and
    // handlers must not keep it alive.
    a.set_stream_handler("/new/1.0.0", |_| async {});
    let store = b.swarm().peerstore().clone();
    assert!(eventually(Duration::from_secs(5), || store.supports_any(&peer, &["/new/1.0.0"])).await);
    drop(a);
    assert!(
        eventually(Duration::from_secs(5), || b.swarm().conns_to_peer(&peer).is_empty()).await,
        "the dropped host's connection stayed open"
    );
}

#[tokio::test]
async fn ping_repeats_on_one_stream() {
    let (a, b) = pair(HostConfig::default()).await;
    let mut pinger = a.pinger(&b.local_peer()).await.unwrap();
    for _ in 0..5 {
        pinger.ping().await.unwrap();
    }
    pinger.close().await;
    a.ping(&b.local_peer()).await.unwrap();
}

#[tokio::test]
async fn perf_is_off_by_default_and_measures_when_on() {
    let (a, b) = pair(HostConfig::default()).await;
    assert!(a.perf(&b.local_peer(), 10, 10, None).await.is_err(), "perf must be opt-in");
    let (a, b) = pair(HostConfig::default().with_perf(true).with_perf_max_bytes(1 << 20)).await;
    let result = a.perf(&b.local_peer(), 300_000, 700_000, None).await.unwrap();
    assert_eq!((result.upload_bytes, result.download_bytes), (300_000, 700_000));
    // Asking for more than the server allows gets the stream reset.
    assert!(a.perf(&b.local_peer(), 0, 2 << 20, None).await.is_err());
}

/// A stream that opens and never proposes a protocol is reset once the
/// negotiation timeout passes; the connection carries on.
#[tokio::test]
async fn silent_stream_is_reset_at_the_negotiation_timeout() {
    let config = HostConfig::default().with_negotiation_timeout(Duration::from_secs(1));
    let (a, b) = pair(config).await;
    let conn = a.swarm().conns_to_peer(&b.local_peer()).pop().expect("connected");
    let mut silent = conn.new_stream().await.unwrap();
    let started = std::time::Instant::now();
    // The listener may greet with its multistream header; then nothing.
    let mut buf = [0u8; 64];
    let read_until_error = async {
        loop {
            match silent.read(&mut buf).await {
                Ok(0) => panic!("clean EOF, not a reset"),
                Ok(_) => {}
                Err(e) => break e,
            }
        }
    };
    let e = tokio::time::timeout(Duration::from_secs(10), read_until_error).await.expect("reset within 10 s");
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
    assert!(started.elapsed() >= Duration::from_millis(900), "reset after {:?}", started.elapsed());
    assert_eq!(request(&a, &b.local_peer(), ECHO_PROTOCOL, b"still here").await.unwrap(), b"still here");
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// Reads the rest of `stream` with chunk reads of at most `max`.
async fn read_chunks_to_end(stream: &mut peerswarm::Stream, max: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(chunk) = stream.read_chunk(max).await.unwrap() {
        assert!(!chunk.is_empty() && chunk.len() <= max, "chunk of {} for max {max}", chunk.len());
        out.extend_from_slice(&chunk);
    }
    out
}

/// Chunk reads through multistream-select: on the dialer, the listener's
/// answer and the payload behind it arrive together and the payload comes
/// first; on the listener, so does the request pipelined behind the
/// proposal. A refused protocol, `close_read` and the read deadline fail
/// them as they fail reads.
#[tokio::test]
async fn chunk_reads_work_through_the_negotiation_and_fail_like_reads() {
    let (a, b) = pair(HostConfig::default()).await;
    let reply = pattern(300_000);
    let served = reply.clone();
    b.set_stream_handler("/chunks/1.0.0", move |mut s| {
        let served = served.clone();
        async move {
            // The request, pipelined behind the dialer's proposal.
            let request = read_chunks_to_end(&mut s, 3).await;
            assert_eq!(request, b"request");
            s.write_all(&served).await.unwrap();
            s.close().await.unwrap();
        }
    });
    let peer = b.local_peer();
    let mut stream = a.new_stream(&peer, &["/chunks/1.0.0"]).await.unwrap();
    stream.write_all(b"request").await.unwrap();
    stream.close_write().await.unwrap();
    assert!(read_chunks_to_end(&mut stream, 5).await == reply, "reply differs");
    assert!(stream.read_chunk(5).await.unwrap().is_none(), "the end repeats");

    let mut refused = a.new_stream(&peer, &["/nobody/1.0.0"]).await.unwrap();
    let err = refused.read_chunk(100).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);

    b.set_stream_handler("/silent/1.0.0", |mut s| async move {
        s.write_all(b"x").await.unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
    let mut silent = a.new_stream(&peer, &["/silent/1.0.0"]).await.unwrap();
    assert_eq!(silent.read_chunk(100).await.unwrap().as_deref(), Some(&b"x"[..]));
    silent.set_read_deadline(Some(std::time::Instant::now() + Duration::from_millis(100)));
    let err = silent.read_chunk(100).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    silent.close_read();
    let err = silent.read_chunk(100).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotConnected);
}
