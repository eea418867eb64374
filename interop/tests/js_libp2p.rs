//! peerswarm against js-libp2p 3.3 in Node.js (`@libp2p/tcp`,
//! `@chainsafe/libp2p-noise`, `@chainsafe/libp2p-yamux`, its
//! multistream-select; ping, identify, `/echo/1.0.0`), both ways: with the
//! library (a `Host`), and with the `peerswarm` binary's client commands.
//!
//! The js node is `js/node.mjs` ([`JsListener`], [`js_dial`]); its npm
//! dependencies are installed from `js/package-lock.json` on first use.
//! Needs Node.js 20 or later.
//!
//! The short echo closes its write half only once the echo has started:
//! js-libp2p 3 can lose a stream whose FIN arrives, with pipelined data,
//! before it has answered the protocol proposal (see
//! [`exercise::send_and_read_to_end_after_answer`]).

use std::time::Duration;

use libp2p::multiaddr::Protocol;
use peerswarm::host::{Host, HostConfig, AGENT_VERSION_KEY, PROTOCOL_VERSION};
use peerswarm::identity::Keypair;
use peerswarm::swarm::Swarm;
use peerswarm::Multiaddr;
use peerswarm_interop::exercise::{self, assert_same_bytes};
use peerswarm_interop::{js_dial, peerswarm_bin, within, JsListener, ECHO_PROTOCOL, PING_PROTOCOL};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Bound on one step (a dial, an exchange, a transfer).
const STEP: Duration = Duration::from_secs(60);

const IDENTIFY_PROTOCOL: &str = "/ipfs/id/1.0.0";
/// js-libp2p resets streams of this protocol once their first bytes arrive.
const RESET_PROTOCOL: &str = "/interop/reset/1.0.0";

async fn host(config: HostConfig) -> Host {
    let swarm = Swarm::builder(Keypair::generate_ed25519()).build();
    let loopback: Multiaddr = "/ip4/127.0.0.1/tcp/0".parse().expect("valid multiaddr");
    swarm.listen(&[loopback]).await.expect("peerswarm listens");
    Host::new(swarm, config)
}

/// The strings in a JSON array.
fn strings(value: &Value) -> Vec<&str> {
    value.as_array().expect("an array").iter().map(|v| v.as_str().expect("a string")).collect()
}

/// Echoes `len` bytes from `seed` on a new `/echo/1.0.0` stream to `peer`.
async fn echo(host: &Host, peer: &peerswarm::identity::PeerId, seed: u64, len: usize) {
    let stream = host.new_stream(peer, &[ECHO_PROTOCOL]).await.expect("open an echo stream");
    assert_eq!(stream.protocol(), Some(ECHO_PROTOCOL));
    let sent = exercise::payload(seed, len);
    let back = exercise::send_and_read_to_end_after_answer(stream, &sent).await.expect("echo exchange");
    assert_eq!(back.len(), sent.len(), "stream {seed}: bytes echoed");
    assert_same_bytes(&format!("stream {seed}"), &sent, &back);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peerswarm_dials_js_libp2p() {
    let mut js = JsListener::spawn().await;
    let host = host(HostConfig::default().with_agent_version("peerswarm-interop/1")).await;
    let peer = js.peer();
    let conn = within(STEP, "peerswarm dials js-libp2p", host.connect(&peer, vec![js.addr().clone()]))
        .await
        .expect("peerswarm connects to js-libp2p");
    assert_eq!(conn.remote_peer(), peer);

    for _ in 0..3 {
        within(STEP, "a ping", host.ping(&peer)).await.expect("js-libp2p answers pings");
    }

    // What js-libp2p says about itself. (The host identified on connect as
    // well; this request shares that exchange or asks once more.)
    let info = within(STEP, "identify", host.identify(&peer)).await.expect("js-libp2p answers identify");
    let agent = info.agent_version.as_deref().unwrap_or_default();
    assert!(agent.starts_with("js-libp2p/"), "agent version {agent:?}");
    assert_eq!(info.protocol_version.as_deref(), Some(PROTOCOL_VERSION));
    for protocol in [ECHO_PROTOCOL, IDENTIFY_PROTOCOL, PING_PROTOCOL] {
        assert!(info.protocols.iter().any(|p| p == protocol), "{protocol} in {:?}", info.protocols);
    }
    assert_eq!(info.listen_addrs, [js.addr().clone()]);
    // js-libp2p reports our side of the connection, with our /p2p/ part.
    let observed = info.observed_addr.expect("an observed address");
    let expected = conn.local_multiaddr().clone().with(Protocol::P2p(host.local_peer()));
    assert_eq!(observed, expected);

    // What js-libp2p learned about us.
    let learned = js.next_identified().await;
    assert_eq!(learned["peer"], host.local_peer().to_string());
    assert_eq!(learned["agent_version"], "peerswarm-interop/1");
    assert_eq!(learned["protocol_version"], PROTOCOL_VERSION);
    let protocols = strings(&learned["protocols"]);
    for protocol in [ECHO_PROTOCOL, IDENTIFY_PROTOCOL, "/ipfs/id/push/1.0.0", PING_PROTOCOL] {
        assert!(protocols.contains(&protocol), "{protocol} in {protocols:?}");
    }
    let listen_addrs = strings(&learned["listen_addrs"]);
    for addr in host.swarm().interface_listen_addresses() {
        assert!(listen_addrs.contains(&addr.to_string().as_str()), "{addr} in {listen_addrs:?}");
    }

    // A protocol added later reaches js-libp2p by identify push (its
    // `identifyPush` service), and one removed leaves its record the same
    // way.
    host.set_stream_handler("/interop/pushed/1.0.0", |_| async {});
    js.updated_protocols(&host.local_peer(), |p| p.contains(&"/interop/pushed/1.0.0")).await;
    host.remove_stream_handler("/interop/pushed/1.0.0");
    js.updated_protocols(&host.local_peer(), |p| !p.contains(&"/interop/pushed/1.0.0")).await;

    // A short request (all of it, FIN included, can reach js-libp2p before
    // it has answered the proposal), eight streams at once, then one larger
    // than any flow-control window.
    within(STEP, "a short echo", echo(&host, &peer, 0, 100)).await;
    let streams = (1..=8).map(|seed| echo(&host, &peer, seed, 1 << 20));
    within(STEP, "eight concurrent echoes", futures::future::join_all(streams)).await;
    within(STEP, "a 32 MiB echo", echo(&host, &peer, 99, 32 << 20)).await;
    let streams = (1..=100).map(|seed| echo(&host, &peer, 100 + seed, seed as usize * 1024));
    within(STEP, "a hundred concurrent echoes", futures::future::join_all(streams)).await;

    // js-libp2p resets a stream: our read fails with ConnectionReset, and
    // the connection carries on.
    let mut stream = host.new_stream(&peer, &[RESET_PROTOCOL]).await.expect("open a stream");
    stream.write_all(b"reset me").await.expect("write");
    let mut buf = [0u8; 16];
    let read = within(STEP, "the reset to arrive", stream.read(&mut buf)).await;
    assert_eq!(read.expect_err("a reset stream").kind(), std::io::ErrorKind::ConnectionReset);
    within(STEP, "an echo after the reset", echo(&host, &peer, 1000, 1000)).await;
    assert_eq!(host.swarm().conns_to_peer(&peer).len(), 1);
    host.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_libp2p_dials_peerswarm() {
    let host = host(HostConfig::default().with_agent_version("peerswarm-interop/1")).await;
    let listen_addr = host.swarm().interface_listen_addresses()[0].clone();
    let addr = listen_addr.clone().with(Protocol::P2p(host.local_peer()));
    // A hundred small streams at once, then four of 4 MiB.
    let (report, js) =
        js_dial(&addr, 16 << 10, 100).await.unwrap_or_else(|e| panic!("js-libp2p's run failed: {e}"));
    let echoed = report["echoed"].as_array().expect("echoed");
    assert!(echoed.len() == 100 && echoed.iter().all(|n| n == 16 << 10), "{report}");
    js.finish().await;
    let bytes = 4 << 20;
    let (report, js) =
        js_dial(&addr, bytes, 4).await.unwrap_or_else(|e| panic!("js-libp2p's run failed: {e}"));

    assert_eq!(report["remote_peer"], host.local_peer().to_string());
    assert_eq!(report["pings_ms"].as_array().map(Vec::len), Some(3), "{report}");
    let identify = &report["identify"];
    assert_eq!(identify["peer"], host.local_peer().to_string());
    assert_eq!(identify["agent_version"], "peerswarm-interop/1");
    assert_eq!(identify["protocol_version"], PROTOCOL_VERSION);
    let protocols = strings(&identify["protocols"]);
    for protocol in [ECHO_PROTOCOL, IDENTIFY_PROTOCOL, PING_PROTOCOL] {
        assert!(protocols.contains(&protocol), "{protocol} in {protocols:?}");
    }
    assert!(strings(&identify["listen_addrs"]).contains(&listen_addr.to_string().as_str()), "{identify}");
    let echoed: Vec<u64> =
        report["echoed"].as_array().expect("echoed").iter().filter_map(Value::as_u64).collect();
    assert_eq!(echoed, [bytes as u64; 4]);

    // We identified js-libp2p on connect.
    let js_peer = report["local_peer"].as_str().expect("local_peer").parse().expect("a peer ID");
    let agent = host.swarm().peerstore().get(&js_peer, AGENT_VERSION_KEY).unwrap_or_default();
    assert!(agent.starts_with(b"js-libp2p/"), "agent version {:?}", String::from_utf8_lossy(&agent));

    // Streams the other way, on the connection js-libp2p dialed (ours are
    // the yamux server's even stream IDs).
    let conns = host.swarm().conns_to_peer(&js_peer);
    assert_eq!(conns.len(), 1);
    assert_eq!(conns[0].stat().direction, peerswarm::Direction::Inbound);
    let streams = (1..=4).map(|seed| echo(&host, &js_peer, 200 + seed, 1 << 20));
    within(STEP, "echoes on js-libp2p's connection", futures::future::join_all(streams)).await;
    assert_eq!(host.swarm().conns_to_peer(&js_peer).len(), 1, "no second connection was dialed");
    js.finish().await;
    host.close().await;
}

/// `peerswarm --json <args>` to completion; asserts exit 0 and returns the
/// JSON lines.
async fn cli(args: &[&str]) -> Vec<Value> {
    let bin = tokio::task::block_in_place(peerswarm_bin);
    let run = tokio::process::Command::new(bin).arg("--json").args(args).env_remove("RUST_LOG").output();
    let output = within(STEP, "a peerswarm command", run).await.expect("run the peerswarm binary");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "peerswarm {args:?}: {}\n{stdout}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_commands_against_js_libp2p() {
    let js = JsListener::spawn().await;
    let addr = js.addr().clone().with(Protocol::P2p(js.peer())).to_string();

    let pings = cli(&["ping", &addr]).await;
    assert_eq!(pings.iter().filter(|l| l["type"] == "ping").count(), 3, "{pings:?}");

    // Runs right after connecting, beside the identify made on connect:
    // js-libp2p resets a second identify stream on a connection.
    let identify = cli(&["identify", &addr]).await;
    let agent = identify[0]["agent_version"].as_str().unwrap_or_default();
    assert!(agent.starts_with("js-libp2p/"), "{identify:?}");

    let text = "hello from peerswarm, ".repeat(1000);
    let echo = cli(&["echo", &addr, &text]).await;
    assert_eq!(echo[0]["text"], text.as_str());
}
