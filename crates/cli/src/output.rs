//! What the CLI prints: readable lines by default, JSON lines with --json.

use peerswarm::host::{IdentifyInfo, PerfProgress, PerfResult};
use peerswarm::identity::PeerId;
use peerswarm::swarm::{Conn, Notifiee};
use peerswarm::Multiaddr;
use serde_json::json;
use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

pub(crate) struct Output {
    json: bool,
}

fn gbits(bytes: u64, time: Duration) -> f64 {
    bytes as f64 * 8.0 / time.as_secs_f64().max(1e-9) / 1e9
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

impl Output {
    pub(crate) fn new(json: bool) -> Self {
        Self { json }
    }

    fn line(&self, human: String, value: serde_json::Value) {
        let mut stdout = std::io::stdout().lock();
        let _ = if self.json { writeln!(stdout, "{value}") } else { writeln!(stdout, "{human}") };
        let _ = stdout.flush();
    }

    pub(crate) fn error(&self, msg: &str) {
        // One line: multi-line errors (a dial's per-address list) are joined.
        let msg = msg.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; ");
        let msg = msg.as_str();
        if self.json {
            self.line(String::new(), json!({"type": "error", "error": msg}));
        }
        eprintln!("peerswarm: {msg}");
    }

    /// A status line on stderr (stdout stays for results).
    pub(crate) fn info(&self, msg: &str) {
        eprintln!("{msg}");
    }

    /// A demo step: on stdout, as a line of text or a JSON object.
    pub(crate) fn step(&self, msg: &str) {
        self.line(msg.to_owned(), json!({"type": "demo", "message": msg}));
    }

    pub(crate) fn id(&self, peer: &PeerId, key_type: &str, file: Option<&str>, created: bool) {
        let human = match (file, created) {
            (Some(f), true) => format!("{peer} ({key_type}, new key written to {f})"),
            (Some(f), false) => format!("{peer} ({key_type}, from {f})"),
            (None, _) => format!("{peer} ({key_type}, not saved)"),
        };
        self.line(human, json!({"type": "id", "peer_id": peer.to_string(), "key_type": key_type, "key_file": file, "created": created}));
    }

    pub(crate) fn listen(&self, addr: &Multiaddr, peer: &PeerId) {
        let full = format!("{addr}/p2p/{peer}");
        self.line(format!("LISTEN {full}"), json!({"type": "listen", "addr": full}));
    }

    pub(crate) fn ping(&self, peer: &PeerId, seq: u32, rtt: Duration) {
        self.line(
            format!("ping {seq} to {peer}: {:.3} ms", ms(rtt)),
            json!({"type": "ping", "peer_id": peer.to_string(), "seq": seq, "rtt_ms": ms(rtt)}),
        );
    }

    pub(crate) fn ping_summary(&self, peer: &PeerId, rtts: &[Duration]) {
        let mut sorted = rtts.to_vec();
        sorted.sort();
        let (min, max) =
            (sorted.first().copied().unwrap_or_default(), sorted.last().copied().unwrap_or_default());
        let median = sorted.get(sorted.len() / 2).copied().unwrap_or_default();
        self.line(
            format!("{} pings to {peer}: min {:.3} ms, median {:.3} ms, max {:.3} ms", rtts.len(), ms(min), ms(median), ms(max)),
            json!({"type": "ping_summary", "peer_id": peer.to_string(), "count": rtts.len(), "min_ms": ms(min), "median_ms": ms(median), "max_ms": ms(max)}),
        );
    }

    pub(crate) fn identify(&self, info: &IdentifyInfo) {
        let addrs: Vec<String> = info.listen_addrs.iter().map(ToString::to_string).collect();
        let human = format!(
            "peer {}\n  agent {}\n  protocol version {}\n  observed address {}\n  listen addresses {}\n  protocols {}",
            info.peer,
            info.agent_version.as_deref().unwrap_or("-"),
            info.protocol_version.as_deref().unwrap_or("-"),
            info.observed_addr.as_ref().map(ToString::to_string).unwrap_or_else(|| "-".into()),
            addrs.join(", "),
            info.protocols.join(", "),
        );
        self.line(
            human,
            json!({
                "type": "identify", "peer_id": info.peer.to_string(),
                "agent_version": info.agent_version, "protocol_version": info.protocol_version,
                "observed_addr": info.observed_addr.as_ref().map(ToString::to_string),
                "listen_addrs": addrs, "protocols": info.protocols,
            }),
        );
    }

    pub(crate) fn echo(&self, peer: &PeerId, text: &str) {
        self.line(text.to_owned(), json!({"type": "echo", "peer_id": peer.to_string(), "text": text}));
    }

    pub(crate) fn perf(&self, peer: &PeerId, results: &[PerfResult], elapsed: Duration) {
        let up: u64 = results.iter().map(|r| r.upload_bytes).sum();
        let down: u64 = results.iter().map(|r| r.download_bytes).sum();
        let total = gbits(up + down, elapsed);
        self.line(
            format!(
                "perf with {peer}: {} stream(s), uploaded {} MiB, downloaded {} MiB in {:.2} s: {total:.2} Gbit/s",
                results.len(),
                up >> 20,
                down >> 20,
                elapsed.as_secs_f64()
            ),
            json!({"type": "perf", "peer_id": peer.to_string(), "streams": results.len(), "upload_bytes": up, "download_bytes": down, "seconds": elapsed.as_secs_f64(), "gbit_per_s": total}),
        );
    }

    /// A progress bar on stderr while a perf run goes (none with --json or
    /// when stderr is not a terminal).
    pub(crate) fn progress(&self, progress: Arc<PerfProgress>, total: u64) -> ProgressBar {
        use std::io::IsTerminal;
        if self.json || !std::io::stderr().is_terminal() || total == 0 {
            return ProgressBar { task: None };
        }
        let task = tokio::spawn(async move {
            let started = std::time::Instant::now();
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let done = progress.sent.load(Ordering::Relaxed) + progress.received.load(Ordering::Relaxed);
                let fraction = (done as f64 / total as f64).min(1.0);
                let width = 30;
                let filled = (fraction * width as f64) as usize;
                eprint!(
                    "\r[{}{}] {:5.1}% {:.2} Gbit/s ",
                    "#".repeat(filled),
                    " ".repeat(width - filled),
                    fraction * 100.0,
                    gbits(done, started.elapsed())
                );
            }
        });
        ProgressBar { task: Some(task) }
    }
}

pub(crate) struct ProgressBar {
    task: Option<tokio::task::JoinHandle<()>>,
}

impl ProgressBar {
    pub(crate) fn finish(self) {
        if let Some(task) = self.task {
            task.abort();
            eprintln!();
        }
    }
}

/// Logs connections to stderr (the `listen` command).
pub(crate) struct ConnLogger;

impl Notifiee for ConnLogger {
    fn connected(&self, conn: &Conn) {
        eprintln!("connected {} {}", conn.remote_peer(), conn.remote_multiaddr());
    }

    fn disconnected(&self, conn: &Conn) {
        eprintln!("disconnected {} {}", conn.remote_peer(), conn.remote_multiaddr());
    }
}
