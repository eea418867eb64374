//! The rust-libp2p side (crates.io `libp2p` 0.57): TCP + Noise + yamux with
//! the library's defaults. The listener serves perf, echo and ping through
//! its own behaviour (module `serve`); the client opens streams with
//! `libp2p-stream` and dials through a small command loop.

mod serve;

use crate::proc_stat::own_cpu_ticks;
use crate::scenario::{split, Scenario, ECHO, PERF, PING};
use crate::wire;
use crate::BenchError;
use futures::StreamExt;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, NetworkBehaviour, SwarmEvent};
use libp2p::{identity, noise, tcp, yamux, Multiaddr, PeerId, StreamProtocol, Swarm};
use libp2p_stream::Control;
use serde_json::{json, Value};
use std::any::Any;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio_util::compat::FuturesAsyncReadCompatExt;

/// Concurrent dials while opening idle connections (as for peerswarm).
const IDLE_DIAL_CONCURRENCY: usize = crate::peerswarm_node::IDLE_DIAL_CONCURRENCY;

#[derive(NetworkBehaviour)]
struct Behaviour {
    serve: Toggle<serve::Behaviour>,
    stream: Toggle<libp2p_stream::Behaviour>,
}

/// A swarm that serves (listener) or opens streams (client), never both,
/// so the listener carries nothing a bare server would not.
fn build(listener: bool) -> Result<Swarm<Behaviour>, BenchError> {
    let behaviour = Behaviour {
        serve: listener.then(serve::Behaviour::default).into(),
        stream: (!listener).then(libp2p_stream::Behaviour::new).into(),
    };
    Ok(libp2p::SwarmBuilder::with_existing_identity(identity::Keypair::generate_ed25519())
        .with_tokio()
        .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux::Config::default)?
        .with_behaviour(|_| behaviour)?
        // Connections end when the benchmark says so.
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
        .build())
}

/// Starts a listener on `127.0.0.1`, polled by a spawned task; returns the
/// address to dial, `/p2p/<id>` included.
pub async fn listen() -> Result<String, BenchError> {
    let mut swarm = build(true)?;
    swarm.listen_on("/ip4/127.0.0.1/tcp/0".parse()?)?;
    let addr = loop {
        if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
            break address;
        }
    };
    let full = addr.with(Protocol::P2p(*swarm.local_peer_id()));
    tokio::spawn(async move {
        loop {
            swarm.select_next_some().await;
        }
    });
    Ok(full.to_string())
}

enum Command {
    Dial { addr: Multiaddr, peer: PeerId, reply: oneshot::Sender<Result<(), String>> },
    Disconnect { peer: PeerId, reply: oneshot::Sender<()> },
}

/// The client: stream control plus a command channel to the swarm task.
#[derive(Clone)]
struct Client {
    control: Control,
    commands: mpsc::Sender<Command>,
}

impl Client {
    fn spawn() -> Result<Client, BenchError> {
        let mut swarm = build(false)?;
        let control = swarm.behaviour_mut().stream.as_mut().map(|s| s.new_control());
        let control = control.ok_or("client swarm without libp2p-stream")?;
        let (commands, rx) = mpsc::channel(64);
        tokio::spawn(drive(swarm, rx));
        Ok(Client { control, commands })
    }

    /// Opens a new connection to `peer` (even if one exists) and waits
    /// until it is established.
    async fn dial(&self, addr: &Multiaddr, peer: PeerId) -> Result<(), BenchError> {
        let (reply, rx) = oneshot::channel();
        self.commands.send(Command::Dial { addr: addr.clone(), peer, reply }).await?;
        Ok(rx.await??)
    }

    /// Closes every connection to `peer` and waits until they are gone.
    async fn disconnect(&self, peer: PeerId) -> Result<(), BenchError> {
        let (reply, rx) = oneshot::channel();
        self.commands.send(Command::Disconnect { peer, reply }).await?;
        Ok(rx.await?)
    }

    async fn open(
        &self,
        peer: PeerId,
        protocol: &'static str,
    ) -> Result<tokio_util::compat::Compat<libp2p::Stream>, BenchError> {
        let stream = self.control.clone().open_stream(peer, StreamProtocol::new(protocol)).await?;
        Ok(stream.compat())
    }
}

/// Polls the swarm and runs commands until the client is dropped.
async fn drive(mut swarm: Swarm<Behaviour>, mut commands: mpsc::Receiver<Command>) {
    let mut dials: HashMap<ConnectionId, oneshot::Sender<Result<(), String>>> = HashMap::new();
    let mut disconnects: HashMap<PeerId, Vec<oneshot::Sender<()>>> = HashMap::new();
    loop {
        tokio::select! {
            command = commands.recv() => match command {
                None => return,
                Some(Command::Dial { addr, peer, reply }) => {
                    let opts = DialOpts::peer_id(peer)
                        .addresses(vec![addr])
                        .condition(PeerCondition::Always)
                        .build();
                    let id = opts.connection_id();
                    match swarm.dial(opts) {
                        Ok(()) => {
                            dials.insert(id, reply);
                        }
                        Err(error) => {
                            let _ = reply.send(Err(error.to_string()));
                        }
                    }
                }
                Some(Command::Disconnect { peer, reply }) => {
                    if swarm.disconnect_peer_id(peer).is_ok() {
                        disconnects.entry(peer).or_default().push(reply);
                    } else {
                        let _ = reply.send(());
                    }
                }
            },
            event = swarm.select_next_some() => match event {
                SwarmEvent::ConnectionEstablished { connection_id, .. } => {
                    if let Some(reply) = dials.remove(&connection_id) {
                        let _ = reply.send(Ok(()));
                    }
                }
                SwarmEvent::OutgoingConnectionError { connection_id, error, .. } => {
                    if let Some(reply) = dials.remove(&connection_id) {
                        let _ = reply.send(Err(error.to_string()));
                    }
                }
                SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } => {
                    for reply in disconnects.remove(&peer_id).unwrap_or_default() {
                        let _ = reply.send(());
                    }
                }
                _ => {}
            },
        }
    }
}

fn split_p2p(full: &str) -> Result<(Multiaddr, PeerId), BenchError> {
    let mut addr: Multiaddr = full.parse()?;
    match addr.pop() {
        Some(Protocol::P2p(peer)) => Ok((addr, peer)),
        _ => Err(format!("{full} has no /p2p part").into()),
    }
}

/// Runs `scenario` against the listener at `target`; returns the result
/// line and whatever must stay alive until the driver lets go.
pub async fn run(target: &str, scenario: &Scenario) -> Result<(Value, Box<dyn Any + Send>), BenchError> {
    let (addr, peer) = split_p2p(target)?;
    let client = Client::spawn()?;
    let value = match *scenario {
        Scenario::Idle { conns } => {
            // As for peerswarm: a connection counts once a ping crossed
            // (here: some connection to the listener).
            let dial = |seq: u32| {
                let (client, addr) = (&client, &addr);
                async move {
                    client.dial(addr, peer).await?;
                    let mut stream = client.open(peer, PING).await?;
                    wire::ping(&mut stream, u64::from(seq)).await?;
                    tokio::io::AsyncWriteExt::shutdown(&mut stream).await?;
                    Ok::<_, BenchError>(())
                }
            };
            let opened: Vec<_> = futures::stream::iter(0..conns)
                .map(dial)
                .buffer_unordered(IDLE_DIAL_CONCURRENCY)
                .collect()
                .await;
            opened.into_iter().collect::<Result<Vec<_>, _>>()?;
            return Ok((json!({ "conns": conns }), Box::new(client)));
        }
        Scenario::FirstByte => {
            let started = Instant::now();
            client.dial(&addr, peer).await?;
            wire::perf(client.open(peer, PERF).await?, 1, 1).await?;
            json!({ "secs": started.elapsed().as_secs_f64() })
        }
        Scenario::Setups { count } => {
            let started = Instant::now();
            for seq in 0..count {
                client.dial(&addr, peer).await?;
                let mut stream = client.open(peer, PING).await?;
                wire::ping(&mut stream, u64::from(seq)).await?;
                tokio::io::AsyncWriteExt::shutdown(&mut stream).await?;
                client.disconnect(peer).await?;
            }
            json!({ "secs": started.elapsed().as_secs_f64(), "count": count })
        }
        Scenario::Perf { upload, download, streams } => {
            client.dial(&addr, peer).await?;
            let cpu_before = own_cpu_ticks().unwrap_or(0);
            let started = Instant::now();
            let runs = split(upload, streams).into_iter().zip(split(download, streams)).map(|(up, down)| {
                let client = client.clone();
                async move { wire::perf(client.open(peer, PERF).await?, up, down).await }
            });
            for result in futures::future::join_all(runs).await {
                result?;
            }
            let secs = started.elapsed().as_secs_f64();
            let cpu = own_cpu_ticks().unwrap_or(0).saturating_sub(cpu_before);
            json!({ "secs": secs, "bytes": upload + download, "cpu_ticks": cpu })
        }
        Scenario::StreamOpens { count } => {
            client.dial(&addr, peer).await?;
            let started = Instant::now();
            for _ in 0..count {
                wire::echo_one_byte(client.open(peer, ECHO).await?).await?;
            }
            json!({ "secs": started.elapsed().as_secs_f64(), "count": count })
        }
        Scenario::Ping { count } => {
            client.dial(&addr, peer).await?;
            let mut stream = client.open(peer, PING).await?;
            let mut rtts = Vec::with_capacity(count as usize);
            for seq in 0..count {
                let started = Instant::now();
                wire::ping(&mut stream, u64::from(seq)).await?;
                rtts.push(started.elapsed().as_secs_f64() * 1e6);
            }
            json!({ "rtts_us": rtts })
        }
    };
    Ok((value, Box::new(())))
}
