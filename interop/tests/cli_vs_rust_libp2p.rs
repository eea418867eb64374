//! The `peerswarm` binary against rust-libp2p 0.57, both ways:
//!
//! * `peerswarm ping | identify | echo | perf` against a [`RustNode`] (ping,
//!   identify, echo and perf services);
//! * a [`RustNode`] against `peerswarm listen --perf`: its ping behaviour
//!   pings the CLI node, its identify behaviour receives the CLI node's
//!   info, and it runs an echo and a perf exchange on streams it opens.
//!
//! The binary is [`peerswarm_bin`]: built once per test process (or named
//! by `PEERSWARM_BIN`).
//!
//! Every wait is bounded by [`within`] with a generous limit; no timing
//! assertions; only ephemeral ports.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use libp2p::{Multiaddr, PeerId};
use peerswarm_interop::{
    collect_stderr, exercise, peerswarm_bin, perf_client, within, NodeEvent, RustNode, RustNodeConfig,
    ECHO_PROTOCOL, IDENTIFY_PROTOCOL_VERSION, PERF_PROTOCOL, PING_PROTOCOL,
};
use rand::RngCore;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The limit for any one wait (a command to finish, a line, an event).
const LIMIT: Duration = Duration::from_secs(120);

/// `peerswarm <args>` with its output captured and no `RUST_LOG` from the
/// caller; killed if dropped before it exits.
fn peerswarm(args: &[&str]) -> Command {
    // Building may take a while; keep it off the async worker threads.
    let bin = tokio::task::block_in_place(peerswarm_bin);
    let mut command = Command::new(bin);
    command
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// A finished command.
struct Finished {
    status: std::process::ExitStatus,
    stdout: String,
    stderr: String,
}

impl std::fmt::Display for Finished {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}\n--- stdout ---\n{}--- stderr ---\n{}", self.status, self.stdout, self.stderr)
    }
}

impl Finished {
    /// Asserts exit 0 without a panic; returns stdout.
    #[track_caller]
    fn success(&self) -> &str {
        assert!(self.status.success(), "expected success: {self}");
        assert!(!self.stderr.contains("panicked"), "panic: {self}");
        &self.stdout
    }

    /// The stdout lines as JSON objects.
    #[track_caller]
    fn json_lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}: {self}")))
            .collect()
    }
}

/// Runs `peerswarm <args>` to completion.
async fn run(args: &[&str]) -> Finished {
    let output = within(LIMIT, "a peerswarm command to finish", peerswarm(args).output())
        .await
        .expect("spawn the peerswarm binary");
    Finished {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A running `peerswarm listen`, killed on drop.
struct CliNode {
    child: Child,
    peer: PeerId,
    addr: Multiaddr,
    stderr: Arc<Mutex<String>>,
}

impl CliNode {
    /// `peerswarm listen <args>`; returns once the `LISTEN` line is read.
    async fn spawn(args: &[&str]) -> Self {
        let mut full = vec!["listen"];
        full.extend_from_slice(args);
        let mut child = peerswarm(&full).spawn().expect("spawn peerswarm listen");
        let stderr = collect_stderr(&mut child);
        let mut lines = BufReader::new(child.stdout.take().expect("stdout is piped")).lines();
        let line = within(LIMIT, "the LISTEN line", lines.next_line())
            .await
            .expect("read listen's stdout")
            .unwrap_or_else(|| panic!("listen exited without a LISTEN line: {}", stderr.lock().unwrap()));
        // Keep draining stdout so the node never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let full: Multiaddr = line
            .strip_prefix("LISTEN ")
            .unwrap_or_else(|| panic!("not a LISTEN line: {line:?}"))
            .parse()
            .expect("a multiaddr");
        let mut addr = full.clone();
        let Some(libp2p::multiaddr::Protocol::P2p(peer)) = addr.pop() else {
            panic!("{full} does not end in /p2p/<id>");
        };
        Self { child, peer, addr, stderr }
    }

    /// SIGINT, then asserts exit status 0.
    async fn interrupt(mut self) {
        let pid = self.child.id().expect("still running").to_string();
        let status = Command::new("kill").args(["-INT", &pid]).status().await.expect("run kill");
        assert!(status.success(), "kill -INT: {status}");
        let status = within(LIMIT, "listen to exit after SIGINT", self.child.wait()).await.expect("wait");
        assert!(status.success(), "listen exited with {status}: {}", self.stderr.lock().unwrap());
    }
}

/// A rust-libp2p node with every service the CLI's client commands use,
/// and its full address.
async fn rust_server() -> (RustNode, String) {
    let config =
        RustNodeConfig::default().with_ping(Duration::from_secs(60)).with_identify().with_echo().with_perf();
    let node = within(LIMIT, "spawn the rust-libp2p node", RustNode::spawn(config))
        .await
        .expect("spawn the rust-libp2p node");
    let addr = format!("{}/p2p/{}", node.listen_addr(), node.peer_id());
    (node, addr)
}

/// A rust-libp2p node dialed to a fresh `peerswarm listen --perf`.
async fn rust_client_of_cli(
    config: RustNodeConfig,
) -> (RustNode, CliNode, tokio::sync::broadcast::Receiver<NodeEvent>) {
    let cli = CliNode::spawn(&["--perf"]).await;
    let node = within(LIMIT, "spawn the rust-libp2p node", RustNode::spawn(config))
        .await
        .expect("spawn the rust-libp2p node");
    let events = node.events();
    let peer =
        within(LIMIT, "rust-libp2p to dial peerswarm listen", node.dial(cli.addr.clone(), Some(cli.peer)))
            .await
            .expect("rust-libp2p connects to peerswarm listen");
    assert_eq!(peer, cli.peer);
    (node, cli, events)
}

// ------------------------------------------- the CLI against rust-libp2p

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_pings_rust_libp2p() {
    let (node, addr) = rust_server().await;
    let finished = run(&["ping", &addr, "--count", "2"]).await;
    let lines: Vec<&str> = finished.success().lines().collect();
    assert_eq!(lines.len(), 3, "{finished}");
    assert!(lines[0].starts_with(&format!("ping 1 to {}: ", node.peer_id())), "{finished}");
    assert!(lines[1].starts_with(&format!("ping 2 to {}: ", node.peer_id())), "{finished}");
    assert!(lines[2].starts_with(&format!("2 pings to {}: min ", node.peer_id())), "{finished}");

    let finished = run(&["--json", "ping", &addr, "--count", "1"]).await;
    finished.success();
    let lines = finished.json_lines();
    assert_eq!(lines[0]["type"], "ping", "{finished}");
    assert!(lines[0]["rtt_ms"].as_f64().is_some_and(|ms| ms >= 0.0), "{finished}");
    assert_eq!(lines[1]["type"], "ping_summary", "{finished}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_identifies_rust_libp2p() {
    let (node, addr) = rust_server().await;

    let finished = run(&["identify", &addr]).await;
    let stdout = finished.success();
    assert!(stdout.starts_with(&format!("peer {}\n", node.peer_id())), "{finished}");
    assert!(stdout.contains("\n  agent rust-libp2p/"), "{finished}");

    let finished = run(&["--json", "identify", &addr]).await;
    finished.success();
    let info = &finished.json_lines()[0];
    assert_eq!(info["type"], "identify");
    assert_eq!(info["peer_id"], node.peer_id().to_string());
    assert!(info["agent_version"].as_str().is_some_and(|a| a.starts_with("rust-libp2p/")), "{finished}");
    assert_eq!(info["protocol_version"], IDENTIFY_PROTOCOL_VERSION, "{finished}");
    let protocols: Vec<&str> =
        info["protocols"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    for protocol in [PING_PROTOCOL, "/ipfs/id/1.0.0", ECHO_PROTOCOL, PERF_PROTOCOL] {
        assert!(protocols.contains(&protocol), "{protocol} missing: {finished}");
    }
    let listen_addrs: Vec<&str> =
        info["listen_addrs"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(listen_addrs.contains(&node.listen_addr().to_string().as_str()), "{finished}");
    assert!(
        info["observed_addr"].as_str().is_some_and(|a| a.starts_with("/ip4/127.0.0.1/tcp/")),
        "{finished}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_echoes_through_rust_libp2p() {
    let (node, addr) = rust_server().await;
    let text = "through rust-libp2p ✓";
    let finished = run(&["echo", &addr, text]).await;
    assert_eq!(finished.success(), format!("{text}\n"), "{finished}");

    let finished = run(&["--json", "echo", &addr, text]).await;
    finished.success();
    let line = &finished.json_lines()[0];
    assert_eq!(line["text"], text);
    assert_eq!(line["peer_id"], node.peer_id().to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_perf_against_rust_libp2p() {
    let (node, addr) = rust_server().await;
    let finished =
        run(&["--json", "perf", &addr, "--upload", "1MiB", "--download", "2MiB", "--streams", "2"]).await;
    finished.success();
    let result = &finished.json_lines()[0];
    assert_eq!(result["type"], "perf");
    assert_eq!(result["peer_id"], node.peer_id().to_string());
    assert_eq!(result["streams"], 2);
    assert_eq!(result["upload_bytes"], 2 << 20, "{finished}");
    assert_eq!(result["download_bytes"], 4 << 20, "{finished}");

    let finished = run(&["perf", &addr, "--download", "512KB"]).await;
    assert!(
        finished.success().starts_with(&format!("perf with {}: 1 stream(s)", node.peer_id())),
        "{finished}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_rejects_rust_libp2p_with_the_wrong_peer_id() {
    let (node, _) = rust_server().await;
    let impostor = libp2p::identity::Keypair::generate_ed25519().public().to_peer_id();
    let addr = format!("{}/p2p/{impostor}", node.listen_addr());
    let finished = run(&["ping", &addr]).await;
    assert_eq!(finished.status.code(), Some(1), "{finished}");
    let line = finished.stderr.trim_end();
    assert_eq!(line.lines().count(), 1, "{finished}");
    assert!(line.starts_with("peerswarm: cannot connect to"), "{finished}");
    assert!(line.contains(&impostor.to_string()) && line.contains(&node.peer_id().to_string()), "{finished}");
}

// ------------------------------------------- rust-libp2p against the CLI

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_libp2p_pings_cli_listen() {
    let config = RustNodeConfig::default().with_ping(Duration::from_millis(200));
    let (_node, cli, mut events) = rust_client_of_cli(config).await;
    let mut successes = 0;
    within(LIMIT, "three pings from rust-libp2p to succeed", async {
        while successes < 3 {
            if let NodeEvent::Ping { peer, result } = events.recv().await.expect("events flow") {
                assert_eq!(peer, cli.peer);
                result.unwrap_or_else(|e| panic!("rust-libp2p ping failed: {e}"));
                successes += 1;
            }
        }
    })
    .await;
    cli.interrupt().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_libp2p_identifies_cli_listen() {
    let config = RustNodeConfig::default().with_identify();
    let (node, cli, mut events) = rust_client_of_cli(config).await;
    let info = within(LIMIT, "rust-libp2p to identify peerswarm listen", async {
        loop {
            if let NodeEvent::Identified { peer, info } = events.recv().await.expect("events flow") {
                assert_eq!(peer, cli.peer);
                break info;
            }
        }
    })
    .await;
    assert!(info.agent_version.starts_with("peerswarm/"), "{info:?}");
    assert_eq!(info.public_key.to_peer_id(), cli.peer);
    let protocols: Vec<String> = info.protocols.iter().map(ToString::to_string).collect();
    for protocol in [PING_PROTOCOL, "/ipfs/id/1.0.0", ECHO_PROTOCOL, PERF_PROTOCOL] {
        assert!(protocols.iter().any(|p| p == protocol), "{protocol} missing: {protocols:?}");
    }
    assert!(info.listen_addrs.contains(&cli.addr), "{:?} lacks {}", info.listen_addrs, cli.addr);
    // What peerswarm saw of the rust node: its loopback address.
    assert!(info.observed_addr.to_string().starts_with("/ip4/127.0.0.1/tcp/"), "{info:?}");
    drop(node);
    cli.interrupt().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_libp2p_echoes_via_cli_listen() {
    let (node, cli, _) = rust_client_of_cli(RustNodeConfig::default()).await;
    let mut payload = vec![0u8; 256 * 1024];
    rand::thread_rng().fill_bytes(&mut payload);
    let stream = within(LIMIT, "open /echo/1.0.0", node.open_stream(cli.peer, ECHO_PROTOCOL))
        .await
        .expect("peerswarm listen accepts /echo/1.0.0");
    let back = within(LIMIT, "the echo", exercise::send_and_read_to_end(stream, &payload))
        .await
        .expect("the echo exchange");
    assert!(back == payload, "echo differs: sent {} bytes, got {}", payload.len(), back.len());
    cli.interrupt().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_libp2p_perf_against_cli_listen() {
    let (node, cli, _) = rust_client_of_cli(RustNodeConfig::default()).await;
    for (upload, download) in [(1 << 20, 2 << 20), (0, 1000), (3000, 0)] {
        let stream = within(LIMIT, "open /perf/1.0.0", node.open_stream(cli.peer, PERF_PROTOCOL))
            .await
            .expect("peerswarm listen --perf accepts /perf/1.0.0");
        let received = within(LIMIT, "the perf exchange", perf_client(stream, upload, download))
            .await
            .expect("the perf exchange");
        assert_eq!(received, download, "upload {upload}, download {download}");
    }
    cli.interrupt().await;
}

/// `peerswarm echo` against a peer that accepts `/echo/1.0.0` and then says
/// nothing (here a peerswarm host with a silent handler): the command gives
/// up at its `--timeout` instead of hanging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_gives_up_on_a_silent_peer() {
    use peerswarm::host::{Host, HostConfig};
    let swarm = peerswarm::swarm::Swarm::builder(peerswarm::identity::Keypair::generate_ed25519()).build();
    swarm.listen(&["/ip4/127.0.0.1/tcp/0".parse().expect("a multiaddr")]).await.expect("listen");
    let host = Host::new(swarm, HostConfig::default());
    host.set_stream_handler(ECHO_PROTOCOL, |stream| async move {
        tokio::time::sleep(LIMIT).await;
        drop(stream);
    });
    let addr = format!("{}/p2p/{}", host.swarm().interface_listen_addresses()[0], host.local_peer());
    let finished = run(&["echo", "--timeout", "1", &addr, "hello"]).await;
    assert!(!finished.status.success(), "echo to a silent peer succeeded: {finished}");
    assert!(finished.stderr.contains("deadline exceeded"), "not a time-out: {finished}");
}
