//! Runs the real `peerswarm` binary: short commands to completion, and
//! long-running ones (`listen`) in the background behind a guard that kills
//! the process when dropped, so a failing test leaves nothing behind.
//!
//! Every wait has a generous limit (the machine may be busy) and fails the
//! test with what the process printed so far; nothing asserts on timing.

#![allow(dead_code, unreachable_pub)] // Each test binary uses its own subset.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The limit for any one wait: a process to finish, a line to appear.
pub const LIMIT: Duration = Duration::from_secs(120);

/// The binary under test, with a clean environment for its logging: no
/// `RUST_LOG` from the caller (it would add lines to stderr), and
/// backtraces on, so a panic is unmistakable in a failure report.
pub fn peerswarm(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_peerswarm"));
    command.args(args).env_remove("RUST_LOG").env("RUST_BACKTRACE", "1").stdin(Stdio::null());
    command
}

/// What a finished command printed, and how it exited.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    /// Asserts exit status 0 and no panic; returns stdout.
    #[track_caller]
    pub fn success(&self) -> &str {
        assert!(self.status.success(), "expected success, got {self}");
        assert!(!self.stderr.contains("panicked"), "panic on stderr: {self}");
        &self.stdout
    }

    /// The non-empty stdout lines parsed as JSON objects.
    #[track_caller]
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?} in {self}")))
            .collect()
    }

    /// Asserts the contract for failures: exit status `code`, and exactly
    /// one line on stderr, `peerswarm: ...`, containing each of `needles`;
    /// no panic or backtrace. Returns that line.
    #[track_caller]
    pub fn failure(&self, code: i32, needles: &[&str]) -> &str {
        assert_eq!(self.status.code(), Some(code), "wrong exit status: {self}");
        let lines: Vec<&str> = self.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "expected one line on stderr: {self}");
        let line = lines[0];
        assert!(line.starts_with("peerswarm: "), "stderr line lacks the `peerswarm: ` prefix: {self}");
        for needle in needles {
            assert!(line.contains(needle), "stderr line lacks {needle:?}: {self}");
        }
        for bad in ["panicked", "backtrace", "RUST_BACKTRACE"] {
            assert!(!line.contains(bad), "panic on stderr: {self}");
        }
        line
    }
}

impl std::fmt::Display for Finished {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}\n--- stdout ---\n{}--- stderr ---\n{}", self.status, self.stdout, self.stderr)
    }
}

/// Runs `peerswarm <args>` to completion (at most [`LIMIT`]).
#[track_caller]
pub fn run(args: &[&str]) -> Finished {
    Running::spawn(args).wait()
}

/// A background `peerswarm` process; killed on drop unless it was waited for.
#[derive(Debug)]
pub struct Running {
    what: String,
    child: Option<Child>,
    lines: mpsc::Receiver<String>,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

impl Running {
    /// Spawns `peerswarm <args>` with stdout and stderr captured.
    #[track_caller]
    pub fn spawn(args: &[&str]) -> Self {
        let what = format!("peerswarm {}", args.join(" "));
        let mut child = peerswarm(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {what}: {e}"));
        let (stdout, stderr) = (Arc::new(Mutex::new(String::new())), Arc::new(Mutex::new(String::new())));
        let (tx, lines) = mpsc::channel();
        let out_pipe = child.stdout.take().expect("stdout is piped");
        let err_pipe = child.stderr.take().expect("stderr is piped");
        let readers = vec![
            {
                let stdout = stdout.clone();
                std::thread::spawn(move || {
                    for line in BufReader::new(out_pipe).lines() {
                        let Ok(line) = line else { break };
                        stdout.lock().unwrap().push_str(&format!("{line}\n"));
                        let _ = tx.send(line);
                    }
                })
            },
            {
                let stderr = stderr.clone();
                std::thread::spawn(move || {
                    let mut pipe = err_pipe;
                    let mut buf = [0u8; 4096];
                    while let Ok(n @ 1..) = pipe.read(&mut buf) {
                        stderr.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
                    }
                })
            },
        ];
        Self { what, child: Some(child), lines, stdout, stderr, readers }
    }

    /// The process ID.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("not yet waited for").id()
    }

    /// What the process printed so far.
    pub fn snapshot(&self) -> String {
        format!(
            "{}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.what,
            self.stdout.lock().unwrap(),
            self.stderr.lock().unwrap()
        )
    }

    /// The next stdout line (at most [`LIMIT`]).
    #[track_caller]
    pub fn next_line(&self) -> String {
        match self.lines.recv_timeout(LIMIT) {
            Ok(line) => line,
            Err(e) => panic!("no stdout line ({e}): {}", self.snapshot()),
        }
    }

    /// Waits until stderr contains `needle`; returns the stderr so far.
    #[track_caller]
    pub fn wait_stderr(&self, needle: &str) -> String {
        let deadline = Instant::now() + LIMIT;
        loop {
            let stderr = self.stderr.lock().unwrap().clone();
            if stderr.contains(needle) {
                return stderr;
            }
            assert!(Instant::now() < deadline, "stderr never showed {needle:?}: {}", self.snapshot());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGINT (as Ctrl-C would), through `kill(1)`.
    #[track_caller]
    pub fn interrupt(&self) {
        let status = Command::new("kill")
            .args(["-INT", &self.pid().to_string()])
            .status()
            .unwrap_or_else(|e| panic!("cannot run kill: {e}"));
        assert!(status.success(), "kill -INT failed: {status}");
    }

    /// Waits for the process to exit (at most [`LIMIT`], then kills it and
    /// fails) and for its output to be read to the end.
    #[track_caller]
    pub fn wait(mut self) -> Finished {
        let deadline = Instant::now() + LIMIT;
        let mut child = self.child.take().expect("waited for once");
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("{} did not exit within {LIMIT:?}: {}", self.what, self.snapshot());
                }
                Err(e) => panic!("cannot wait for {}: {e}", self.what),
            }
        };
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        let stdout = self.stdout.lock().unwrap().clone();
        let stderr = self.stderr.lock().unwrap().clone();
        Finished { status, stdout, stderr }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A `peerswarm listen` node, killed on drop.
#[derive(Debug)]
pub struct Listener {
    process: Running,
    /// The full addresses from the `LISTEN` lines, `/.../p2p/<peer id>`.
    pub addrs: Vec<String>,
    /// The node's peer ID, as printed.
    pub peer: String,
}

impl Listener {
    /// `peerswarm listen <args>`; waits for the first `LISTEN` line.
    #[track_caller]
    pub fn spawn(args: &[&str]) -> Self {
        Self::spawn_expecting(args, 1)
    }

    /// `peerswarm listen <args>`; waits for `count` `LISTEN` lines (one per
    /// listen address) and checks they all name the same peer.
    #[track_caller]
    pub fn spawn_expecting(args: &[&str], count: usize) -> Self {
        let mut full = vec!["listen"];
        full.extend_from_slice(args);
        let process = Running::spawn(&full);
        let mut addrs = Vec::new();
        while addrs.len() < count {
            let line = process.next_line();
            let addr = line
                .strip_prefix("LISTEN ")
                .unwrap_or_else(|| panic!("not a LISTEN line: {line:?}: {}", process.snapshot()));
            addrs.push(addr.to_owned());
        }
        let peer = peer_of(&addrs[0]).to_owned();
        for addr in &addrs {
            assert_eq!(peer_of(addr), peer, "LISTEN lines name different peers: {addrs:?}");
        }
        Self { process, addrs, peer }
    }

    /// The first listen address, with `/p2p/<peer id>`.
    pub fn addr(&self) -> &str {
        &self.addrs[0]
    }

    /// The first listen address without `/p2p/<peer id>`.
    pub fn transport_addr(&self) -> &str {
        self.addr().rsplit_once("/p2p/").expect("LISTEN addresses end in /p2p/<id>").0
    }

    /// The metrics address the node reported on stderr (`--metrics`).
    #[track_caller]
    pub fn metrics_addr(&self) -> SocketAddr {
        let stderr = self.process.wait_stderr("/metrics\n");
        let line = stderr
            .lines()
            .find_map(|l| l.strip_prefix("metrics at http://"))
            .unwrap_or_else(|| panic!("no metrics line: {}", self.process.snapshot()));
        let addr = line.strip_suffix("/metrics").expect("the line ends in /metrics");
        addr.parse().unwrap_or_else(|e| panic!("bad metrics address {addr:?}: {e}"))
    }

    /// The underlying process.
    pub fn process(&self) -> &Running {
        &self.process
    }

    /// Sends SIGINT and asserts a clean exit: status 0, the closing notice,
    /// no panic. Returns what the node printed.
    #[track_caller]
    pub fn interrupt(self) -> Finished {
        self.process.interrupt();
        let finished = self.process.wait();
        finished.success();
        assert!(finished.stderr.contains("interrupted; closing"), "no closing notice: {finished}");
        finished
    }
}

/// The peer ID at the end of `/.../p2p/<peer id>`.
#[track_caller]
pub fn peer_of(addr: &str) -> &str {
    addr.rsplit_once("/p2p/").unwrap_or_else(|| panic!("{addr} has no /p2p/ part")).1
}

/// An address nothing listens on: a port bound, then released.
pub fn refused_addr() -> String {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    let port = socket.local_addr().expect("bound").port();
    drop(socket);
    format!("/ip4/127.0.0.1/tcp/{port}")
}

/// `GET path` over a raw socket; returns the whole response (head and body).
pub fn http_get(addr: SocketAddr, path: &str) -> String {
    use std::io::Write;
    let mut socket = std::net::TcpStream::connect_timeout(&addr, LIMIT).expect("connect to the metrics port");
    socket.set_read_timeout(Some(LIMIT)).expect("set a read timeout");
    write!(socket, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
        .expect("send the request");
    let mut response = String::new();
    socket.read_to_string(&mut response).expect("read the response to EOF");
    response
}
