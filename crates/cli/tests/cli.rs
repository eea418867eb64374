//! End-to-end tests of the `peerswarm` binary: `listen` plus every client
//! command against it, human and `--json` output, key files, `--seed`,
//! metrics, SIGINT, and every failure path (exit status and the one
//! `peerswarm: ...` line on stderr).
//!
//! The rust-libp2p half (the same commands against a rust-libp2p node, and a
//! rust-libp2p client against `peerswarm listen`) is in
//! `interop/tests/cli_vs_rust_libp2p.rs`.

mod common;

use common::{http_get, peer_of, refused_addr, run, Listener, Running};
use peerswarm::identity::Keypair;
use serde_json::Value;

/// The four client commands with `addr`, each with the arguments it needs.
fn client_commands(addr: &str) -> Vec<Vec<String>> {
    let addr = addr.to_owned();
    vec![
        vec!["ping".into(), addr.clone(), "--count".into(), "1".into()],
        vec!["identify".into(), addr.clone()],
        vec!["echo".into(), addr.clone(), "hi".into()],
        vec!["perf".into(), addr, "--download".into(), "1KiB".into()],
    ]
}

fn run_owned(args: &[String]) -> common::Finished {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(&args)
}

/// The peer ID `--seed n` must give: the Ed25519 key whose 32-byte secret is
/// `[n; 32]`, computed here with libp2p-identity directly.
fn seed_peer(n: u8) -> String {
    let mut secret = [n; 32];
    Keypair::ed25519_from_bytes(&mut secret)
        .expect("32 bytes are an ed25519 secret")
        .public()
        .to_peer_id()
        .to_string()
}

// ---------------------------------------------------------------- the demo

#[test]
fn no_arguments_runs_the_demo() {
    let finished = run(&[]);
    let stdout = finished.success();
    assert!(stdout.contains("A said: Hello Friend!"), "{finished}");
    assert!(stdout.contains("B pinged A"), "{finished}");
    assert!(stdout.contains("perf: uploaded 256 MiB"), "{finished}");

    let finished = run(&["--json"]);
    finished.success();
    let lines = finished.json_lines();
    assert!(lines.len() >= 5, "{finished}");
    for line in &lines {
        assert_eq!(line["type"], "demo", "{finished}");
        assert!(line["message"].is_string(), "{finished}");
    }
    assert!(lines.iter().any(|l| l["message"].as_str().unwrap().contains("Hello Friend!")), "{finished}");
}

// ---------------------------------------------------- listen and the clients

#[test]
fn listen_then_ping() {
    let node = Listener::spawn(&[]);
    assert!(node.addr().starts_with("/ip4/127.0.0.1/tcp/"), "default listen address: {}", node.addr());

    let finished = run(&["ping", node.addr(), "--count", "2"]);
    let lines: Vec<&str> = finished.success().lines().collect();
    assert_eq!(lines.len(), 3, "{finished}");
    for (seq, line) in lines[..2].iter().enumerate() {
        let prefix = format!("ping {} to {}: ", seq + 1, node.peer);
        assert!(line.starts_with(&prefix) && line.ends_with(" ms"), "{finished}");
    }
    assert!(lines[2].starts_with(&format!("2 pings to {}: min ", node.peer)), "{finished}");

    let finished = run(&["--json", "ping", node.addr(), "--count", "2"]);
    finished.success();
    let lines = finished.json_lines();
    assert_eq!(lines.len(), 3, "{finished}");
    for (seq, line) in lines[..2].iter().enumerate() {
        assert_eq!(line["type"], "ping");
        assert_eq!(line["peer_id"], node.peer.as_str());
        assert_eq!(line["seq"], seq as u64 + 1);
        assert!(line["rtt_ms"].as_f64().is_some_and(|ms| ms >= 0.0), "{finished}");
    }
    let summary = &lines[2];
    assert_eq!(summary["type"], "ping_summary");
    assert_eq!(summary["count"], 2);
    let (min, median, max) = (
        summary["min_ms"].as_f64().unwrap(),
        summary["median_ms"].as_f64().unwrap(),
        summary["max_ms"].as_f64().unwrap(),
    );
    assert!(0.0 <= min && min <= median && median <= max, "{finished}");

    node.interrupt();
}

#[test]
fn listen_then_identify() {
    let node = Listener::spawn(&["--perf"]);

    let finished = run(&["identify", node.addr()]);
    let stdout = finished.success();
    assert!(stdout.starts_with(&format!("peer {}\n", node.peer)), "{finished}");
    assert!(stdout.contains("\n  agent peerswarm/"), "{finished}");
    assert!(stdout.contains(&format!("\n  listen addresses {}", node.transport_addr())), "{finished}");
    let protocols = stdout.lines().find_map(|l| l.strip_prefix("  protocols ")).expect("a protocols line");
    for protocol in ["/ipfs/ping/1.0.0", "/ipfs/id/1.0.0", "/echo/1.0.0", "/perf/1.0.0"] {
        assert!(protocols.split(", ").any(|p| p == protocol), "{protocol} missing: {finished}");
    }

    let finished = run(&["--json", "identify", node.addr()]);
    finished.success();
    let lines = finished.json_lines();
    assert_eq!(lines.len(), 1, "{finished}");
    let info = &lines[0];
    assert_eq!(info["type"], "identify");
    assert_eq!(info["peer_id"], node.peer.as_str());
    assert!(info["agent_version"].as_str().is_some_and(|a| a.starts_with("peerswarm/")), "{finished}");
    assert!(info["protocol_version"].is_string(), "{finished}");
    // What the node saw of us: a loopback TCP address.
    assert!(
        info["observed_addr"].as_str().is_some_and(|a| a.starts_with("/ip4/127.0.0.1/tcp/")),
        "{finished}"
    );
    let listen_addrs: Vec<&str> =
        info["listen_addrs"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(listen_addrs.contains(&node.transport_addr()), "{finished}");
    let protocols: Vec<&str> =
        info["protocols"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    for protocol in ["/ipfs/ping/1.0.0", "/ipfs/id/1.0.0", "/echo/1.0.0", "/perf/1.0.0"] {
        assert!(protocols.contains(&protocol), "{protocol} missing: {finished}");
    }
    node.interrupt();

    // Without --perf the node does not offer perf.
    let node = Listener::spawn(&[]);
    let finished = run(&["--json", "identify", node.addr()]);
    finished.success();
    let protocols = finished.json_lines()[0]["protocols"].clone();
    assert!(!protocols.as_array().unwrap().iter().any(|p| p == "/perf/1.0.0"), "{finished}");
    assert!(protocols.as_array().unwrap().iter().any(|p| p == "/echo/1.0.0"), "{finished}");
    node.interrupt();
}

#[test]
fn listen_then_echo() {
    let node = Listener::spawn(&[]);
    let text = "hello, wörld ✓ with  spaces";

    let finished = run(&["echo", node.addr(), text]);
    assert_eq!(finished.success(), format!("{text}\n"), "{finished}");

    let finished = run(&["--json", "echo", node.addr(), text]);
    finished.success();
    let lines = finished.json_lines();
    assert_eq!(lines.len(), 1, "{finished}");
    assert_eq!(lines[0]["type"], "echo");
    assert_eq!(lines[0]["peer_id"], node.peer.as_str());
    assert_eq!(lines[0]["text"], text);

    // The empty text round-trips too.
    let finished = run(&["echo", node.addr(), ""]);
    assert_eq!(finished.success(), "\n", "{finished}");
    node.interrupt();
}

#[test]
fn listen_then_perf() {
    let node = Listener::spawn(&["--perf"]);

    let finished = run(&["perf", node.addr(), "--upload", "1MiB", "--download", "2MiB", "--streams", "2"]);
    let stdout = finished.success();
    let expected = format!("perf with {}: 2 stream(s), uploaded 2 MiB, downloaded 4 MiB in ", node.peer);
    assert!(stdout.starts_with(&expected) && stdout.trim_end().ends_with(" Gbit/s"), "{finished}");
    assert_eq!(stdout.lines().count(), 1, "{finished}");

    // Decimal suffixes, and the JSON form.
    let finished = run(&["--json", "perf", node.addr(), "--upload", "512KB", "--download", "1MB"]);
    finished.success();
    let lines = finished.json_lines();
    assert_eq!(lines.len(), 1, "{finished}");
    let result = &lines[0];
    assert_eq!(result["type"], "perf");
    assert_eq!(result["peer_id"], node.peer.as_str());
    assert_eq!(result["streams"], 1);
    assert_eq!(result["upload_bytes"], 512_000);
    assert_eq!(result["download_bytes"], 1_000_000);
    assert!(result["seconds"].as_f64().is_some_and(|s| s > 0.0), "{finished}");
    assert!(result["gbit_per_s"].as_f64().is_some_and(|g| g > 0.0), "{finished}");
    node.interrupt();
}

#[test]
fn perf_against_a_node_without_perf_fails() {
    let node = Listener::spawn(&[]);
    let finished = run(&["perf", node.addr(), "--download", "1KiB"]);
    finished.failure(1, &["perf against", &node.peer, "failed"]);
    node.interrupt();
}

#[test]
fn listen_on_several_addresses_and_as_json() {
    let node = Listener::spawn_expecting(
        &["--listen", "/ip4/127.0.0.1/tcp/0", "--listen", "/ip4/127.0.0.1/tcp/0"],
        2,
    );
    assert_ne!(node.addrs[0], node.addrs[1], "two listeners, two ports");
    for addr in &node.addrs {
        run(&["ping", addr, "--count", "1"]).success();
    }
    node.interrupt();

    let process = Running::spawn(&["--json", "listen", "--seed", "3"]);
    let line: Value = serde_json::from_str(&process.next_line()).expect("a JSON listen line");
    assert_eq!(line["type"], "listen");
    let addr = line["addr"].as_str().expect("an address").to_owned();
    assert_eq!(peer_of(&addr), seed_peer(3));
    run(&["echo", &addr, "json"]).success();
    process.interrupt();
    process.wait().success();
}

// ------------------------------------------------------- SIGINT and metrics

/// Regression: the SIGINT handler was installed only after the `LISTEN`
/// lines were printed, so an interrupt sent as soon as they appeared killed
/// the node by signal (about half the time) instead of closing it with 0.
#[test]
fn sigint_right_after_listen_exits_zero() {
    for _ in 0..5 {
        let node = Listener::spawn(&["--metrics", "127.0.0.1:0"]);
        node.interrupt();
    }
}

#[test]
fn sigint_with_a_client_connected_closes_cleanly() {
    let node = Listener::spawn(&[]);
    let client = Running::spawn(&["ping", node.addr(), "--count", "100000"]);
    let first = client.next_line();
    assert!(first.starts_with(&format!("ping 1 to {}", node.peer)), "{first}: {}", client.snapshot());
    node.process().wait_stderr("connected ");

    let peer = node.peer.clone();
    let finished = node.interrupt();
    assert!(finished.stderr.contains("disconnected "), "{finished}");
    // The client notices and fails with one clear line.
    client.wait().failure(1, &["ping to", &peer, "failed"]);
}

#[test]
fn metrics_are_served() {
    let node = Listener::spawn(&["--metrics", "127.0.0.1:0"]);
    let metrics = node.metrics_addr();
    assert!(metrics.ip().is_loopback() && metrics.port() != 0, "{metrics}");

    run(&["echo", node.addr(), "count me"]).success();
    let response = http_get(metrics, "/metrics");
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(response.contains("\r\nContent-Type: text/plain"), "{response}");
    for name in ["peerswarm_connections", "peerswarm_peers", "peerswarm_streams", "peerswarm_bytes_received"]
    {
        assert!(response.contains(&format!("\n# TYPE {name} gauge\n")), "{name} missing: {response}");
    }
    let received: u64 = response
        .lines()
        .find_map(|l| l.strip_prefix("peerswarm_bytes_received "))
        .and_then(|v| v.trim().parse().ok())
        .expect("a bytes_received sample");
    assert!(received >= "count me".len() as u64, "{response}");

    let response = http_get(metrics, "/elsewhere");
    assert!(response.starts_with("HTTP/1.1 404 "), "{response}");
    node.interrupt();
}

#[test]
fn metrics_port_in_use_fails() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let addr = taken.local_addr().unwrap().to_string();
    let finished = run(&["listen", "--metrics", &addr]);
    finished.failure(1, &["cannot serve metrics on", &addr]);
}

// ------------------------------------------------------------- identities

#[test]
fn id_creates_and_rereads_key_files_of_every_type() {
    let dir = TempDir::new("id-keys");
    for (key_type, peer_prefix) in
        [("ed25519", "12D3KooW"), ("secp256k1", "16Uiu2HA"), ("ecdsa", "Qm"), ("rsa", "Qm")]
    {
        let file = dir.path.join(format!("{key_type}.key"));
        let file = file.to_str().unwrap();

        let finished = run(&["id", "--key", file, "--key-type", key_type]);
        let line = finished.success().trim_end().to_owned();
        let (peer, rest) = line.split_once(' ').expect("<peer> (<details>)");
        assert!(peer.starts_with(peer_prefix), "{key_type}: {finished}");
        assert_eq!(rest, format!("({key_type}, new key written to {file})"), "{finished}");

        // The file is a libp2p PrivateKey protobuf of that peer.
        let bytes = std::fs::read(file).expect("the key file was written");
        let keypair = Keypair::from_protobuf_encoding(&bytes).expect("a libp2p key file");
        assert_eq!(keypair.public().to_peer_id().to_string(), peer, "{key_type}");

        // Re-read, human and JSON: same peer, not created again.
        let finished = run(&["id", "--key", file]);
        assert_eq!(finished.success().trim_end(), format!("{peer} ({key_type}, from {file})"));
        let finished = run(&["--json", "id", "--key", file, "--key-type", "ed25519"]);
        finished.success();
        let json = &finished.json_lines()[0];
        assert_eq!(json["type"], "id");
        assert_eq!(json["peer_id"], peer);
        assert_eq!(json["key_type"], key_type, "the file decides the type, not --key-type");
        assert_eq!(json["key_file"], file);
        assert_eq!(json["created"], false);
        assert_eq!(std::fs::read(file).unwrap(), bytes, "re-reading does not rewrite the file");

        // `listen --key` takes that identity, and it works on the wire.
        let node = Listener::spawn(&["--key", file]);
        assert_eq!(node.peer, peer, "{key_type}");
        run(&["ping", node.addr(), "--count", "1"]).success();
        node.interrupt();
    }
}

#[test]
fn id_without_a_file_is_not_saved() {
    for key_type in ["ed25519", "secp256k1", "ecdsa", "rsa"] {
        let finished = run(&["--json", "id", "--key-type", key_type]);
        finished.success();
        let json = &finished.json_lines()[0];
        assert_eq!(json["key_type"], key_type);
        assert_eq!(json["key_file"], Value::Null);
        assert_eq!(json["created"], true);
    }
    let first = run(&["id"]);
    assert!(first.success().trim_end().ends_with(" (ed25519, not saved)"), "{first}");
    let second = run(&["id"]);
    assert_ne!(first.success(), second.success(), "fresh keys each time");
}

#[test]
fn seed_gives_the_same_peer_every_time() {
    let first = Listener::spawn(&["--seed", "7"]);
    let second = Listener::spawn(&["--seed", "7"]);
    let other = Listener::spawn(&["--seed", "8"]);
    assert_eq!(first.peer, seed_peer(7));
    assert_eq!(second.peer, first.peer);
    assert_eq!(other.peer, seed_peer(8));
    assert_ne!(other.peer, first.peer);
    // Both nodes with the one identity answer as it.
    for node in [&first, &second] {
        run(&["ping", node.addr(), "--count", "1"]).success();
    }
    first.interrupt();
    second.interrupt();
    other.interrupt();
}

// ---------------------------------------------------------- failure paths

#[test]
fn unparseable_multiaddr_fails() {
    for command in ["ping", "identify", "echo", "perf"] {
        let mut args = vec![command, "not-a-multiaddr"];
        if command == "echo" {
            args.push("text");
        }
        run(&args).failure(2, &["invalid value 'not-a-multiaddr'", "multiaddr"]);
    }
    run(&["ping", "/ip4/127.0.0.1/tcp/1/p2p/not-a-peer-id"]).failure(2, &["invalid value"]);
    run(&["listen", "--listen", "/ip4/nonsense"]).failure(2, &["invalid value '/ip4/nonsense'", "--listen"]);
}

#[test]
fn missing_p2p_part_fails() {
    let addr = refused_addr();
    for args in client_commands(&addr) {
        let finished = run_owned(&args);
        finished.failure(1, &[&format!("address {addr} has no /p2p/<peer id> part")]);
        assert!(finished.stdout.is_empty(), "{finished}");
    }
}

#[test]
fn unknown_key_type_fails() {
    run(&["id", "--key-type", "dsa"])
        .failure(2, &["invalid value 'dsa'", "--key-type", "ed25519, rsa, secp256k1, ecdsa"]);
}

#[test]
fn unreadable_key_file_fails() {
    let dir = TempDir::new("bad-keys");
    let missing = dir.path.join("missing.key");
    let missing = missing.to_str().unwrap();
    run(&["listen", "--key", missing]).failure(1, &["cannot read key file", missing, "No such file"]);

    let garbage = dir.path.join("garbage.key");
    std::fs::write(&garbage, b"not a protobuf key").unwrap();
    let garbage = garbage.to_str().unwrap();
    run(&["listen", "--key", garbage]).failure(1, &["invalid key file", garbage]);
    run(&["id", "--key", garbage]).failure(1, &["invalid key file", garbage]);

    // A directory exists but is no file.
    let dir_path = dir.path.to_str().unwrap();
    run(&["id", "--key", dir_path]).failure(1, &["cannot read key file", dir_path]);
    run(&["listen", "--key", dir_path]).failure(1, &["cannot read key file", dir_path]);

    // `id` cannot create a key file where there is no directory.
    let unwritable = dir.path.join("no/such/dir/new.key");
    let unwritable = unwritable.to_str().unwrap();
    run(&["id", "--key", unwritable]).failure(1, &["cannot write key file", unwritable]);
}

#[test]
fn connection_refused_fails() {
    let addr = format!("{}/p2p/{}", refused_addr(), seed_peer(1));
    for args in client_commands(&addr) {
        let finished = run_owned(&args);
        finished.failure(1, &["cannot connect to", "refused"]);
        assert!(finished.stdout.is_empty(), "{finished}");
    }
    // With --json the error is also a JSON object on stdout.
    let finished = run(&["--json", "ping", &addr]);
    finished.failure(1, &["cannot connect to"]);
    let lines = finished.json_lines();
    assert_eq!(lines.len(), 1, "{finished}");
    assert_eq!(lines[0]["type"], "error");
    assert!(lines[0]["error"].as_str().is_some_and(|e| e.contains("refused")), "{finished}");
}

#[test]
fn wrong_peer_id_fails() {
    let node = Listener::spawn(&["--seed", "1"]);
    let impostor = seed_peer(2);
    let addr = format!("{}/p2p/{impostor}", node.transport_addr());
    for args in client_commands(&addr) {
        let finished = run_owned(&args);
        // The message names the peer we asked for and the one that answered.
        finished.failure(1, &["cannot connect to", &impostor, &node.peer]);
        assert!(finished.stdout.is_empty(), "{finished}");
    }
    // The node carries on after refusing the handshakes.
    run(&["ping", node.addr(), "--count", "1"]).success();
    node.interrupt();
}

#[test]
fn private_network_with_psk() {
    let dir = TempDir::new("psk");
    let key_file = |name: &str, byte: u8| {
        let path = dir.path.join(name);
        let hex: String = std::iter::repeat_n(format!("{byte:02x}"), 32).collect();
        std::fs::write(&path, format!("/key/swarm/psk/1.0.0/\n/base16/\n{hex}\n")).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let (ours, other) = (key_file("ours.key", 1), key_file("other.key", 2));
    let node = Listener::spawn(&["--psk", &ours]);
    node.process().wait_stderr("pre-shared key fingerprint");

    // The same key connects; another key or none does not.
    run(&["ping", node.addr(), "--count", "1", "--psk", &ours]).success();
    run(&["--psk", &ours, "echo", node.addr(), "hi"]).success();
    run(&["ping", node.addr(), "--count", "1", "--psk", &other])
        .failure(1, &["cannot connect to", "pre-shared key"]);
    run(&["ping", node.addr(), "--count", "1"]).failure(1, &["cannot connect to"]);

    // Bad files and misplaced flags are one-line failures.
    let garbage = dir.path.join("garbage.key");
    std::fs::write(&garbage, "not a key file").unwrap();
    let garbage = garbage.to_str().unwrap();
    run(&["ping", node.addr(), "--psk", garbage]).failure(1, &["invalid pre-shared key file", garbage]);
    let missing = dir.path.join("missing.key");
    let missing = missing.to_str().unwrap();
    run(&["listen", "--psk", missing]).failure(1, &["cannot read pre-shared key file", missing]);
    run(&["id", "--psk", &ours]).failure(1, &["--psk applies to listen"]);

    // The node carries on.
    run(&["identify", node.addr(), "--psk", &ours]).success();
    node.interrupt();
}

#[test]
fn bad_arguments_fail() {
    let addr = format!("{}/p2p/{}", refused_addr(), seed_peer(1));
    run(&["perf", &addr, "--download", "12XB"]).failure(2, &["unknown size unit"]);
    run(&["listen", "--seed", "256"]).failure(2, &["invalid value '256'", "--seed"]);
    run(&["listen", "--seed", "1", "--key", "k"]).failure(2, &["--seed", "--key"]);
    run(&["listen", "--metrics", "nowhere"]).failure(2, &["invalid value 'nowhere'", "--metrics"]);
    run(&["ping"]).failure(2, &["required arguments were not provided: <ADDR>"]);
    run(&["frobnicate"]).failure(2, &["unrecognized subcommand 'frobnicate'"]);
    // 192.0.2.0/24 is TEST-NET-1: no local interface has it.
    run(&["listen", "--listen", "/ip4/192.0.2.1/tcp/0"])
        .failure(1, &["cannot listen on /ip4/192.0.2.1/tcp/0"]);
    // Help and version are not failures.
    assert!(run(&["--help"]).success().contains("Usage: peerswarm"));
    assert!(run(&["--version"]).success().starts_with("peerswarm "));
}

/// A directory under the system temp dir, removed on drop.
struct TempDir {
    path: std::path::PathBuf,
}

impl TempDir {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("peerswarm-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create a temp dir");
        Self { path }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
