//! The contract between the driver and `bench-node`.
//!
//! A listener prints one line, the address to dial (`/ip4/127.0.0.1/tcp/P`,
//! with `/p2p/<id>` for the libp2p stacks), then serves until its stdin
//! closes. A client runs one [`Scenario`] against that address and prints
//! one JSON line (see each variant); [`Scenario::Idle`] prints its line once
//! the connections are up and holds them until stdin closes.

use clap::{Subcommand, ValueEnum};
use std::fmt;

/// The stack a `bench-node` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum)]
pub enum Impl {
    /// This repository's stack: TCP + Noise + yamux.
    Peerswarm,
    /// crates.io `libp2p` 0.57: TCP + Noise + yamux.
    #[value(name = "rust-libp2p")]
    RustLibp2p,
    /// Plain TCP with perf's framing, no security or muxing (the physical
    /// reference). Supports [`Scenario::Perf`] and [`Scenario::FirstByte`]
    /// only.
    Tcp,
}

impl Impl {
    /// The command-line and report name.
    pub fn name(self) -> &'static str {
        match self {
            Impl::Peerswarm => "peerswarm",
            Impl::RustLibp2p => "rust-libp2p",
            Impl::Tcp => "tcp",
        }
    }
}

impl fmt::Display for Impl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One client run.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum Scenario {
    /// Perf on one connection: `streams` parallel streams, each uploading
    /// `upload / streams` and downloading `download / streams` bytes.
    /// Prints `{"secs", "bytes", "cpu_ticks"}`: wall time from the first
    /// stream open to the last stream's end, bytes moved both ways, and the
    /// client's CPU ticks over that time.
    Perf {
        /// Bytes to upload, in total.
        #[arg(long, default_value_t = 0)]
        upload: u64,
        /// Bytes to download, in total.
        #[arg(long, default_value_t = 0)]
        download: u64,
        /// Parallel streams on the one connection (for `tcp`: connections).
        #[arg(long, default_value_t = 1)]
        streams: u32,
    },
    /// `count` sequential connection setups: dial, handshake, one ping,
    /// close. Prints `{"secs", "count"}`.
    Setups {
        /// Connections to set up.
        #[arg(long)]
        count: u32,
    },
    /// `count` sequential streams on one connection: open, negotiate
    /// `/echo/1.0.0`, echo one byte, close. Prints `{"secs", "count"}`.
    StreamOpens {
        /// Streams to open.
        #[arg(long)]
        count: u32,
    },
    /// `count` pings on one ping stream. Prints `{"rtts_us": [..]}`.
    Ping {
        /// Pings to send.
        #[arg(long)]
        count: u32,
    },
    /// Opens `conns` connections and holds them. Prints `{"conns"}` once
    /// they are all up, then waits for stdin to close.
    Idle {
        /// Connections to open.
        #[arg(long)]
        conns: u32,
    },
    /// Connection establishment plus a 1-byte perf round trip (upload 1,
    /// download 1), as in the test-plans latency test. Prints `{"secs"}`.
    FirstByte,
}

impl Scenario {
    /// The command-line arguments that parse back into `self`.
    pub fn args(&self) -> Vec<String> {
        match self {
            Scenario::Perf { upload, download, streams } => vec![
                "perf".into(),
                format!("--upload={upload}"),
                format!("--download={download}"),
                format!("--streams={streams}"),
            ],
            Scenario::Setups { count } => vec!["setups".into(), format!("--count={count}")],
            Scenario::StreamOpens { count } => vec!["stream-opens".into(), format!("--count={count}")],
            Scenario::Ping { count } => vec!["ping".into(), format!("--count={count}")],
            Scenario::Idle { conns } => vec!["idle".into(), format!("--conns={conns}")],
            Scenario::FirstByte => vec!["first-byte".into()],
        }
    }
}

/// The perf protocol ID (`/perf/1.0.0`).
pub const PERF: &str = "/perf/1.0.0";
/// The echo protocol ID used for stream opens.
pub const ECHO: &str = "/echo/1.0.0";
/// The ping protocol ID.
pub const PING: &str = "/ipfs/ping/1.0.0";
/// Ping payload length.
pub const PING_LEN: usize = 32;

/// Splits `total` into `parts` shares that add up to `total`.
pub fn split(total: u64, parts: u32) -> Vec<u64> {
    let parts = u64::from(parts.max(1));
    (0..parts).map(|i| total / parts + u64::from(i < total % parts)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        scenario: Scenario,
    }

    #[test]
    fn args_parse_back() {
        for s in [
            Scenario::Perf { upload: 5, download: 7, streams: 4 },
            Scenario::Setups { count: 3 },
            Scenario::StreamOpens { count: 2 },
            Scenario::Ping { count: 9 },
            Scenario::Idle { conns: 10 },
            Scenario::FirstByte,
        ] {
            let argv = std::iter::once("x".to_string()).chain(s.args());
            assert_eq!(Cli::parse_from(argv).scenario, s);
        }
    }

    #[test]
    fn split_adds_up() {
        assert_eq!(split(10, 4), vec![3, 3, 2, 2]);
        assert_eq!(split(0, 1), vec![0]);
    }
}
