//! One benchmark process: a listener or a client of one stack. Started by
//! the `bench` driver; see `peerswarm_bench::scenario` for the contract.

use clap::{Parser, Subcommand};
use peerswarm_bench::scenario::{Impl, Scenario};
use peerswarm_bench::{libp2p_node, peerswarm_node, relay, tcp_node, BenchError};
use std::any::Any;
use std::io::Write;
use std::time::Duration;
use tokio::io::AsyncReadExt;

#[derive(Parser)]
#[command(about = "One side of a peerswarm benchmark (started by `bench`)")]
struct Cli {
    /// The stack to run (listen and client).
    #[arg(long = "impl", value_enum)]
    stack: Option<Impl>,
    #[command(subcommand)]
    role: Role,
}

#[derive(Subcommand)]
enum Role {
    /// Serve perf, echo and ping on 127.0.0.1; print the address; run until
    /// stdin closes.
    Listen,
    /// Run one scenario against ADDR and print its JSON result line.
    Client {
        /// The listener's address, as it printed it.
        addr: String,
        #[command(subcommand)]
        scenario: Scenario,
    },
    /// Relay 127.0.0.1 connections to TO (`/ip4/A/tcp/P[/p2p/ID]`) over an
    /// emulated link; print the relay's address (with TO's `/p2p` part);
    /// run until stdin closes.
    Relay {
        /// The listener to relay to.
        to: String,
        /// Round-trip time the relay adds, in milliseconds.
        #[arg(long)]
        rtt_ms: u64,
        /// Rate cap per direction, in Mbit/s.
        #[arg(long)]
        rate_mbit: f64,
    },
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    if let Err(error) = run(cli).await {
        eprintln!("bench-node: {error}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<(), BenchError> {
    let stack = || cli.stack.ok_or("--impl is required");
    let keep: Box<dyn Any + Send> = match &cli.role {
        Role::Relay { to, rtt_ms, rate_mbit } => {
            let link = relay::Link { rtt: Duration::from_millis(*rtt_ms), rate_bps: rate_mbit * 1e6 };
            let port = relay::start(tcp_node::socket_addr(to)?, link).await?;
            let p2p = to.find("/p2p/").map(|i| &to[i..]).unwrap_or("");
            print_line(&format!("/ip4/127.0.0.1/tcp/{port}{p2p}"))?;
            Box::new(())
        }
        Role::Listen => {
            let (addr, keep): (String, Box<dyn Any + Send>) = match stack()? {
                Impl::Peerswarm => {
                    let (host, addr) = peerswarm_node::listen().await?;
                    (addr, Box::new(host))
                }
                Impl::RustLibp2p => (libp2p_node::listen().await?, Box::new(())),
                Impl::Tcp => (tcp_node::listen().await?, Box::new(())),
            };
            print_line(&addr)?;
            keep
        }
        Role::Client { addr, scenario } => {
            let (value, keep) = match stack()? {
                Impl::Peerswarm => peerswarm_node::run(addr, scenario).await?,
                Impl::RustLibp2p => libp2p_node::run(addr, scenario).await?,
                Impl::Tcp => (tcp_node::run(addr, scenario).await?, Box::new(()) as Box<dyn Any + Send>),
            };
            print_line(&value.to_string())?;
            if !matches!(scenario, Scenario::Idle { .. }) {
                return Ok(());
            }
            keep
        }
    };
    // Hold connections (and serve) until the driver closes our stdin.
    let mut sink = Vec::new();
    tokio::io::stdin().read_to_end(&mut sink).await?;
    drop(keep);
    Ok(())
}

fn print_line(line: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()
}
