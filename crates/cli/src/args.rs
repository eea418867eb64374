//! Command-line arguments.

use clap::{Parser, Subcommand, ValueEnum};
use peerswarm::Multiaddr;
use std::path::PathBuf;

/// A libp2p node with Go-style handles. With no command, runs a demo of two
/// nodes talking in this process.
#[derive(Debug, Parser)]
#[command(name = "peerswarm", version, about)]
pub(crate) struct Cli {
    /// Print results as JSON, one object per line.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// Log more (also: RUST_LOG).
    #[arg(long, short, global = true)]
    pub(crate) verbose: bool,
    /// Private network: the pre-shared key file (`/key/swarm/psk/1.0.0/`,
    /// as go-ipfs's swarm.key). Only peers with the same key connect.
    /// For listen, ping, identify, echo and perf.
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) psk: Option<PathBuf>,
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create or show an identity.
    Id {
        /// Key file (libp2p protobuf encoding): shown if it exists, else created.
        #[arg(long)]
        key: Option<PathBuf>,
        /// Key type for a new identity.
        #[arg(long, value_enum, default_value_t = KeyType::Ed25519)]
        key_type: KeyType,
    },
    /// Run a node: serve ping, identify and echo (and perf with --perf).
    Listen {
        /// Address to listen on (repeatable). Default /ip4/127.0.0.1/tcp/0.
        #[arg(long)]
        listen: Vec<Multiaddr>,
        /// Key file to use as the node's identity.
        #[arg(long, conflicts_with = "seed")]
        key: Option<PathBuf>,
        /// Reproducible test identity: an Ed25519 secret of 32 bytes of value N.
        #[arg(long)]
        seed: Option<u8>,
        /// Serve /perf/1.0.0 (off by default: it amplifies work for any peer).
        #[arg(long)]
        perf: bool,
        /// Serve Prometheus metrics at http://HOST:PORT/metrics.
        #[arg(long, value_name = "HOST:PORT")]
        metrics: Option<std::net::SocketAddr>,
    },
    /// Ping a node.
    Ping {
        /// The node's address, ending in /p2p/<peer id>.
        addr: Multiaddr,
        /// How many pings.
        #[arg(long, short, default_value_t = 3)]
        count: u32,
    },
    /// Ask a node to identify itself.
    Identify {
        /// The node's address, ending in /p2p/<peer id>.
        addr: Multiaddr,
    },
    /// Send text to a node's echo service and print the reply.
    Echo {
        /// The node's address, ending in /p2p/<peer id>.
        addr: Multiaddr,
        /// The text to send.
        text: String,
        /// Give up if the whole echo has not come back after this many
        /// seconds.
        #[arg(long, default_value = "30", value_name = "SECS")]
        timeout: u64,
    },
    /// Measure throughput against a node started with `listen --perf`.
    Perf {
        /// The node's address, ending in /p2p/<peer id>.
        addr: Multiaddr,
        /// Bytes to upload per stream (suffixes: KiB, MiB, GiB, KB, MB, GB).
        #[arg(long, default_value = "0")]
        upload: Size,
        /// Bytes to download per stream.
        #[arg(long, default_value = "1GiB")]
        download: Size,
        /// Parallel streams on the one connection.
        #[arg(long, default_value_t = 1)]
        streams: u32,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum KeyType {
    Ed25519,
    Rsa,
    Secp256k1,
    Ecdsa,
}

impl From<KeyType> for peerswarm::identity::KeyType {
    fn from(k: KeyType) -> Self {
        match k {
            KeyType::Ed25519 => peerswarm::identity::KeyType::Ed25519,
            KeyType::Rsa => peerswarm::identity::KeyType::RSA,
            KeyType::Secp256k1 => peerswarm::identity::KeyType::Secp256k1,
            KeyType::Ecdsa => peerswarm::identity::KeyType::Ecdsa,
        }
    }
}

/// A byte count with an optional unit suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Size(pub(crate) u64);

impl std::str::FromStr for Size {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let split = text.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" => 1_000,
            "kib" => 1 << 10,
            "m" | "mb" => 1_000_000,
            "mib" => 1 << 20,
            "g" | "gb" => 1_000_000_000,
            "gib" => 1 << 30,
            "t" | "tb" => 1_000_000_000_000,
            "tib" => 1 << 40,
            other => return Err(format!("unknown size unit {other:?} (use B, KB, KiB, MB, MiB, GB, GiB)")),
        };
        let value: f64 = number.parse().map_err(|_| format!("invalid size {text:?}"))?;
        let bytes = value * multiplier as f64;
        if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
            return Err(format!("size {text:?} out of range"));
        }
        Ok(Size(bytes as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::Size;

    #[test]
    fn parses_sizes_with_suffixes() {
        for (text, bytes) in [
            ("0", 0),
            ("17", 17),
            ("1GiB", 1 << 30),
            ("512MB", 512_000_000),
            ("1.5KiB", 1536),
            ("2 mib", 2 << 20),
        ] {
            assert_eq!(text.parse::<Size>(), Ok(Size(bytes)), "{text}");
        }
        assert!("12XB".parse::<Size>().is_err());
        assert!("MiB".parse::<Size>().is_err());
        assert!("-1".parse::<Size>().is_err());
    }
}
