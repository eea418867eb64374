//! The peerswarm side: a [`Host`] with perf enabled, identify on connect
//! disabled (rust-libp2p's node runs no identify either) and no connection
//! limits (rust-libp2p has none by default).

use crate::proc_stat::own_cpu_ticks;
use crate::scenario::{split, Scenario, ECHO, PING};
use crate::wire;
use crate::BenchError;
use futures::StreamExt;
use peerswarm::host::{Host, HostConfig};
use peerswarm::identity::{Keypair, PeerId};
use peerswarm::multiaddr::Protocol;
use peerswarm::swarm::{ConnectionLimits, Swarm, SwarmConfig};
use peerswarm::{Endpoint, EndpointConfig, Multiaddr};
use serde_json::{json, Value};
use std::any::Any;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Concurrent dials while opening idle connections (all stacks use 32).
pub const IDLE_DIAL_CONCURRENCY: usize = 32;

fn new_host() -> Host {
    let config = SwarmConfig::default().with_connection_limits(ConnectionLimits::unlimited());
    let swarm = Swarm::builder(Keypair::generate_ed25519()).config(config).build();
    Host::new(swarm, HostConfig::default().with_perf(true).with_identify_on_connect(false))
}

/// Starts a listener on `127.0.0.1`; returns the host (keep it) and the
/// address to dial, `/p2p/<id>` included.
pub async fn listen() -> Result<(Host, String), BenchError> {
    let host = new_host();
    let addr = host.swarm().add_listen_addr(&"/ip4/127.0.0.1/tcp/0".parse()?).await?;
    let full = addr.with(Protocol::P2p(host.local_peer()));
    Ok((host, full.to_string()))
}

fn split_p2p(full: &str) -> Result<(Multiaddr, PeerId), BenchError> {
    let mut addr: Multiaddr = full.parse()?;
    match addr.pop() {
        Some(Protocol::P2p(peer)) => Ok((addr, peer)),
        _ => Err(format!("{full} has no /p2p part").into()),
    }
}

/// What must stay alive until the driver lets go (the connections of
/// [`Scenario::Idle`]).
pub type Holder = Box<dyn Any + Send>;

/// Runs `scenario` against the listener at `target`; returns the result
/// line and the [`Holder`].
pub async fn run(target: &str, scenario: &Scenario) -> Result<(Value, Holder), BenchError> {
    let (addr, peer) = split_p2p(target)?;
    if let Scenario::Idle { conns } = *scenario {
        return idle(&addr, peer, conns).await;
    }
    let host = new_host();
    let value = match *scenario {
        Scenario::Idle { .. } => unreachable!("returned above"),
        Scenario::FirstByte => {
            let started = Instant::now();
            host.connect(&peer, vec![addr]).await?;
            host.perf(&peer, 1, 1, None).await?;
            json!({ "secs": started.elapsed().as_secs_f64() })
        }
        Scenario::Setups { count } => {
            let started = Instant::now();
            for _ in 0..count {
                host.connect(&peer, vec![addr.clone()]).await?;
                host.ping(&peer).await?;
                host.swarm().close_peer(&peer).await;
            }
            json!({ "secs": started.elapsed().as_secs_f64(), "count": count })
        }
        Scenario::Perf { upload, download, streams } => {
            host.connect(&peer, vec![addr]).await?;
            let cpu_before = own_cpu_ticks().unwrap_or(0);
            let started = Instant::now();
            let runs = split(upload, streams)
                .into_iter()
                .zip(split(download, streams))
                .map(|(up, down)| host.perf(&peer, up, down, None));
            for result in futures::future::join_all(runs).await {
                result?;
            }
            let secs = started.elapsed().as_secs_f64();
            let cpu = own_cpu_ticks().unwrap_or(0).saturating_sub(cpu_before);
            json!({ "secs": secs, "bytes": upload + download, "cpu_ticks": cpu })
        }
        Scenario::StreamOpens { count } => {
            host.connect(&peer, vec![addr]).await?;
            let started = Instant::now();
            let mut byte = [0u8; 1];
            for _ in 0..count {
                let mut stream = host.new_stream(&peer, &[ECHO]).await?;
                stream.write_all(&[7]).await?;
                stream.read_exact(&mut byte).await?;
                stream.close().await?;
            }
            json!({ "secs": started.elapsed().as_secs_f64(), "count": count })
        }
        Scenario::Ping { count } => {
            host.connect(&peer, vec![addr]).await?;
            let mut pinger = host.pinger(&peer).await?;
            let mut rtts = Vec::with_capacity(count as usize);
            for _ in 0..count {
                rtts.push(pinger.ping().await?.as_secs_f64() * 1e6);
            }
            pinger.close().await;
            json!({ "rtts_us": rtts })
        }
    };
    host.close().await;
    Ok((value, Box::new(())))
}

/// Opens `conns` connections from one endpoint (one identity; a swarm
/// would reuse its connection to the peer). Each connection counts as open
/// once a ping has crossed it, so at most [`IDLE_DIAL_CONCURRENCY`]
/// connections are in the listener's hands unfinished.
async fn idle(addr: &Multiaddr, peer: PeerId, conns: u32) -> Result<(Value, Holder), BenchError> {
    let endpoint = Endpoint::new(EndpointConfig::new(Keypair::generate_ed25519()));
    let dial = |seq: u32| {
        let endpoint = &endpoint;
        async move {
            let conn = endpoint.dial(addr, Some(peer)).await?;
            let mut stream = conn.open_stream(&[PING]).await?;
            wire::ping(&mut stream, u64::from(seq)).await?;
            stream.shutdown().await?;
            Ok::<_, BenchError>(conn)
        }
    };
    let opened: Vec<_> =
        futures::stream::iter(0..conns).map(dial).buffer_unordered(IDLE_DIAL_CONCURRENCY).collect().await;
    let opened = opened.into_iter().collect::<Result<Vec<_>, _>>()?;
    Ok((json!({ "conns": opened.len() }), Box::new((endpoint, opened))))
}
