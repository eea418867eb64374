//! `Connection::accept_stream` against a peer whose streams stall in
//! protocol negotiation: the node must not wait on one stream to accept the
//! next, and a call that is cancelled must not lose a stream it took in.
//!
//! The negotiation timeout is an hour, so a node that negotiated one stream
//! at a time would hang here; every wait is under a generous timeout that
//! only catches such a hang (nothing asserts on timing).

use std::future::Future;
use std::time::Duration;

use peerswarm::identity::Keypair;
use peerswarm::{Connection, Endpoint, EndpointConfig};
use peerswarm_proto::multistream::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ECHO: &str = "/echo/1.0.0";

async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f).await.unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// A client connection and the node's side of it; the node never times a
/// negotiation out (in these tests).
async fn pair() -> (Connection, Connection) {
    let node = Endpoint::new(
        EndpointConfig::new(Keypair::generate_ed25519()).with_negotiation_timeout(Duration::from_secs(3600)),
    );
    let mut listener = node.listen(&"/ip4/127.0.0.1/tcp/0".parse().unwrap()).await.expect("listen");
    let addr = listener.local_addr().clone();
    let client = Endpoint::new(EndpointConfig::new(Keypair::generate_ed25519()));
    let (dialed, accepted) = tokio::join!(client.dial(&addr, Some(node.local_peer_id())), listener.accept());
    (dialed.expect("dial"), accepted.expect("accept"))
}

fn encode(messages: &[Message]) -> Vec<u8> {
    let mut out = Vec::new();
    messages.iter().for_each(|m| m.encode(&mut out));
    out
}

/// The node's next accepted stream, which must be `/echo/1.0.0` and begin
/// with `expected`. Returned so that the caller decides when it is dropped:
/// dropping it resets the stream (the client has not closed its side), and
/// a reset discards what the client has received and not yet read.
async fn accept_expecting(node: &Connection, expected: &[u8]) -> peerswarm::Stream {
    let mut stream = within("a stream is accepted", node.accept_stream(&[ECHO])).await.expect("accept");
    assert_eq!(stream.protocol(), Some(ECHO));
    let mut got = vec![0u8; expected.len()];
    within("its bytes arrive", stream.read_exact(&mut got)).await.unwrap();
    assert_eq!(got, expected);
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_negotiation_holds_up_no_other_stream() {
    let (client, node) = pair().await;
    // A stream that sends the multistream header and then nothing.
    let mut stalled = client.open_raw_stream().await.expect("open raw");
    stalled.write_all(&encode(&[Message::Header])).await.unwrap();
    // Let the node take it in first.
    tokio::time::sleep(Duration::from_millis(50)).await;

    let mut good = client.open_stream(&[ECHO]).await.expect("open");
    good.write_all(b"first").await.unwrap();
    drop(accept_expecting(&node, b"first").await);

    // The stalled stream was kept: once it proposes, the next call has it.
    stalled.write_all(&encode(&[Message::Protocol(ECHO.into())])).await.unwrap();
    stalled.write_all(b"late").await.unwrap();
    drop(accept_expecting(&node, b"late").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_accept_loses_no_stream() {
    let (client, node) = pair().await;
    let mut slow = client.open_raw_stream().await.expect("open raw");
    slow.write_all(&encode(&[Message::Header])).await.unwrap();
    // The call takes the stream in, then is cancelled mid-negotiation.
    let cancelled = tokio::time::timeout(Duration::from_millis(200), node.accept_stream(&[ECHO])).await;
    assert!(cancelled.is_err(), "nothing could be accepted yet");

    slow.write_all(&encode(&[Message::Protocol(ECHO.into())])).await.unwrap();
    slow.write_all(b"kept").await.unwrap();
    let _kept = accept_expecting(&node, b"kept").await;
    // The node answered the proposal on that same stream.
    let mut answer = vec![0u8; encode(&[Message::Header, Message::Protocol(ECHO.into())]).len()];
    within("the node's answer", slow.read_exact(&mut answer)).await.unwrap();
    assert_eq!(answer, encode(&[Message::Header, Message::Protocol(ECHO.into())]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_and_accepted_streams_interleave() {
    let (client, node) = pair().await;
    // Ten streams propose an unsupported protocol and, refused, propose
    // nothing else (a dialer may try again, so each stays in negotiation):
    // none of them holds up the stream that proposes a supported one.
    let mut refused = Vec::new();
    for _ in 0..10 {
        let mut s = client.open_raw_stream().await.expect("open raw");
        s.write_all(&encode(&[Message::Header, Message::Protocol("/nope/1.0.0".into())])).await.unwrap();
        refused.push(s);
    }
    let mut good = client.open_stream(&[ECHO]).await.expect("open");
    good.write_all(b"ok").await.unwrap();
    let _ok = accept_expecting(&node, b"ok").await;
    // A stream is negotiated once a call takes it in, and the good stream
    // may have been the first to arrive: the SYN of a stream opened but not
    // yet written goes out ahead of queued data, so it can overtake the
    // refused streams' first frames. A call kept running takes in the rest.
    let taker = tokio::spawn({
        let node = node.clone();
        async move { node.accept_stream(&[ECHO]).await.map(|_| ()) }
    });
    // Each refused stream got `na` after the header.
    for mut s in refused {
        let mut reply = vec![0u8; encode(&[Message::Header, Message::NotAvailable]).len()];
        within("the refusal", s.read_exact(&mut reply)).await.unwrap();
        assert_eq!(reply, encode(&[Message::Header, Message::NotAvailable]));
    }
    assert!(!taker.is_finished(), "a refused stream was accepted");
    taker.abort();
}
