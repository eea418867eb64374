//! A js-libp2p 3 node in Node.js (`js/node.mjs`: TCP, Noise, yamux; ping,
//! identify and `/echo/1.0.0`), run as a child process beside peerswarm.
//!
//! * [`JsListener`]: `node.mjs listen`, serving until dropped; reports each
//!   peer that js-libp2p's identify learned about.
//! * [`js_dial`]: `node.mjs dial`, which pings, identifies and echoes
//!   against an address, reports what it saw, and stays connected until
//!   [`JsDial::finish`].
//!
//! Both speak one JSON object per stdout line. Node's dependencies come from
//! [`js_node_dir`]; every wait is bounded by [`within`].

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use crate::{js_node_dir, within};

/// The limit for any one wait on the Node.js process.
const LIMIT: Duration = Duration::from_secs(120);

/// `node node.mjs <args>`, piped, killed if dropped.
fn node(args: &[&str]) -> Command {
    let dir = tokio::task::block_in_place(js_node_dir);
    let mut command = Command::new("node");
    command
        .arg(dir.join("node.mjs"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Collects a child's stderr as it comes, for failure messages.
pub fn collect_stderr(child: &mut Child) -> Arc<Mutex<String>> {
    let stderr = Arc::new(Mutex::new(String::new()));
    let mut pipe = child.stderr.take().expect("stderr is piped");
    let sink = stderr.clone();
    tokio::spawn(async move {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = pipe.read(&mut buf).await {
            sink.lock().unwrap_or_else(|e| e.into_inner()).push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    stderr
}

/// A running `node.mjs listen`; stopped when dropped.
#[derive(Debug)]
pub struct JsListener {
    _child: Child,
    addr: Multiaddr,
    peer: PeerId,
    identified: mpsc::UnboundedReceiver<Value>,
    updated: mpsc::UnboundedReceiver<Value>,
    stderr: Arc<Mutex<String>>,
}

impl JsListener {
    /// Starts the node; returns once it listens.
    pub async fn spawn() -> Self {
        let mut child = node(&["listen"]).spawn().expect("spawn node (Node.js)");
        let stderr = collect_stderr(&mut child);
        let mut lines = BufReader::new(child.stdout.take().expect("stdout is piped")).lines();
        let first = within(LIMIT, "the js node's address line", lines.next_line())
            .await
            .expect("read the js node's stdout")
            .unwrap_or_else(|| panic!("the js node exited: {}", stderr.lock().unwrap()));
        let first: Value = serde_json::from_str(&first).expect("a JSON line");
        let mut addr: Multiaddr = first["addr"].as_str().expect("addr").parse().expect("a multiaddr");
        let Some(Protocol::P2p(peer)) = addr.pop() else { panic!("{first} has no /p2p/ part") };
        let (identified_tx, identified) = mpsc::unbounded_channel();
        let (updated_tx, updated) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let Ok(mut event) = serde_json::from_str::<Value>(&line) else { continue };
                if let Some(info) = event.get_mut("identified") {
                    let _ = identified_tx.send(info.take());
                } else if let Some(update) = event.get_mut("updated") {
                    let _ = updated_tx.send(update.take());
                }
            }
        });
        JsListener { _child: child, addr, peer, identified, updated, stderr }
    }

    /// Where it listens (without `/p2p/`).
    pub fn addr(&self) -> &Multiaddr {
        &self.addr
    }

    /// Its peer ID.
    pub fn peer(&self) -> PeerId {
        self.peer
    }

    /// The next peer js-libp2p's identify learned about: `peer`,
    /// `agent_version`, `protocol_version`, `protocols`, `listen_addrs`,
    /// `observed_addr`.
    pub async fn next_identified(&mut self) -> Value {
        let next = within(LIMIT, "js-libp2p to identify a peer", self.identified.recv()).await;
        next.unwrap_or_else(|| panic!("the js node exited: {}", self.stderr.lock().unwrap()))
    }
}

impl JsListener {
    /// Waits for an update of `peer`'s record in js-libp2p's peer store
    /// whose protocols satisfy `accept` (earlier updates are skipped).
    pub async fn updated_protocols(&mut self, peer: &PeerId, accept: impl Fn(&[&str]) -> bool) {
        let peer = peer.to_string();
        let wait = async {
            while let Some(update) = self.updated.recv().await {
                let protocols: Vec<&str> =
                    update["protocols"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
                if update["peer"] == peer.as_str() && accept(&protocols) {
                    return true;
                }
            }
            false
        };
        let seen = within(LIMIT, "js-libp2p to update a peer's protocols", wait).await;
        assert!(seen, "the js node exited: {}", self.stderr.lock().unwrap());
    }
}

/// A `node.mjs dial` run that has reported and stays connected, serving
/// echo, until [`JsDial::finish`] (or until dropped, which kills it).
#[derive(Debug)]
pub struct JsDial {
    child: Child,
    stderr: Arc<Mutex<String>>,
}

impl JsDial {
    /// Closes the node's stdin and waits for it to stop cleanly.
    pub async fn finish(mut self) {
        drop(self.child.stdin.take());
        let status = within(LIMIT, "the js node to stop", self.child.wait()).await.expect("wait for node");
        assert!(status.success(), "the js node exited with {status}: {}", self.stderr.lock().unwrap());
    }
}

/// Runs `node.mjs dial ADDR BYTES STREAMS` against `addr` (with `/p2p/`):
/// three pings, an identify, then `bytes` echoed on each of `streams`
/// concurrent streams. Returns its report (`local_peer`, `remote_peer`,
/// `pings_ms`, `identify`, `echoed`) and the still connected node, or
/// what it printed if it failed.
pub async fn js_dial(addr: &Multiaddr, bytes: usize, streams: usize) -> Result<(Value, JsDial), String> {
    let mut child = node(&["dial", &addr.to_string(), &bytes.to_string(), &streams.to_string()])
        .spawn()
        .expect("spawn node (Node.js)");
    let stderr = collect_stderr(&mut child);
    let mut lines = BufReader::new(child.stdout.take().expect("stdout is piped")).lines();
    let line =
        within(LIMIT, "the js node's dial report", lines.next_line()).await.map_err(|e| e.to_string())?;
    let Some(line) = line else {
        let status = within(LIMIT, "the js node to exit", child.wait()).await;
        return Err(format!("{status:?}: {}", stderr.lock().unwrap()));
    };
    let report = serde_json::from_str(&line).map_err(|e| format!("not JSON ({e}): {line}"))?;
    Ok((report, JsDial { child, stderr }))
}
