//! [`RustNode`]: a rust-libp2p peer (TCP, Noise, yamux; ping, libp2p-stream,
//! and optional identify, echo and perf services) driven by a background
//! tokio task.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::time::Duration;

use futures::StreamExt;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::{ConnectionId, DialError, NetworkBehaviour, SwarmEvent};
use libp2p::Transport as _;
use libp2p::{
    identify, identity, noise, ping, plaintext, tcp, yamux, Multiaddr, PeerId, StreamProtocol, Swarm,
};
use libp2p_stream::{Control, IncomingStreams, OpenStreamError};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::compat::{Compat, FuturesAsyncReadCompatExt};

use crate::{echo_service, perf_service, stream_service};

/// A rust-libp2p stream adapted to tokio's `AsyncRead`/`AsyncWrite`.
pub type RustStream = Compat<libp2p::Stream>;

/// Error type of the harness's own setup steps (not of the code under test).
pub type SetupError = Box<dyn std::error::Error + Send + Sync>;

/// What a [`RustNode`] runs.
#[derive(Debug, Clone, Default)]
pub struct RustNodeConfig {
    /// `Some(interval)` runs the ping behaviour, pinging every connection
    /// right after it is established and then every `interval`. `None`
    /// (the default) leaves ping out entirely, so the node neither opens nor
    /// accepts `/ipfs/ping/1.0.0` streams.
    pub ping_interval: Option<Duration>,
    /// Whether to answer `/echo/1.0.0` streams (default `false`).
    pub echo: bool,
    /// Secure connections with `/plaintext/2.0.0` instead of Noise: peer
    /// IDs are exchanged but nothing is authenticated or encrypted. For
    /// telling Noise bugs from bugs above it. Default `false`.
    pub insecure_plaintext: bool,
    /// Whether to run the identify behaviour (default `false`): answer
    /// `/ipfs/id/1.0.0` requests (agent `rust-libp2p/<version>`, protocol
    /// version [`IDENTIFY_PROTOCOL_VERSION`]), identify every connected
    /// peer and report it as [`NodeEvent::Identified`].
    pub identify: bool,
    /// Whether to serve `/perf/1.0.0` (default `false`).
    pub perf: bool,
    /// Join the private network of this pre-shared key (`libp2p-pnet`
    /// under Noise; not with `insecure_plaintext`). Default `None`.
    pub psk: Option<libp2p_pnet::PreSharedKey>,
}

/// The protocol version a [`RustNode`] announces through identify.
pub const IDENTIFY_PROTOCOL_VERSION: &str = "ipfs/0.1.0";

impl RustNodeConfig {
    /// Runs the ping behaviour with the given interval.
    pub fn with_ping(mut self, interval: Duration) -> Self {
        self.ping_interval = Some(interval);
        self
    }

    /// Answers `/echo/1.0.0` streams.
    pub fn with_echo(mut self) -> Self {
        self.echo = true;
        self
    }

    /// Runs the identify behaviour.
    pub fn with_identify(mut self) -> Self {
        self.identify = true;
        self
    }

    /// Serves `/perf/1.0.0`.
    pub fn with_perf(mut self) -> Self {
        self.perf = true;
        self
    }

    /// Uses `/plaintext/2.0.0` instead of Noise.
    pub fn with_insecure_plaintext(mut self) -> Self {
        self.insecure_plaintext = true;
        self
    }

    /// Joins the private network of `psk`.
    pub fn with_private_network(mut self, psk: libp2p_pnet::PreSharedKey) -> Self {
        self.psk = Some(psk);
        self
    }
}

/// Something the swarm reported; see [`RustNode::events`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum NodeEvent {
    /// A connection (inbound or outbound) finished its upgrade.
    ConnectionEstablished {
        /// The remote's verified peer ID.
        peer: PeerId,
        /// The remote's address.
        remote_addr: Multiaddr,
    },
    /// A connection closed; `cause` is `None` for a clean close.
    ConnectionClosed {
        /// The remote.
        peer: PeerId,
        /// Why, if it was an error.
        cause: Option<String>,
    },
    /// An inbound connection failed during its upgrade.
    IncomingConnectionError {
        /// The swarm's description of the failure.
        error: String,
    },
    /// An outbound ping finished.
    Ping {
        /// The pinged peer.
        peer: PeerId,
        /// The round-trip time, or the failure's description.
        result: Result<Duration, String>,
    },
    /// The identify behaviour received a peer's identify message.
    Identified {
        /// The identified peer.
        peer: PeerId,
        /// What it announced.
        info: Box<identify::Info>,
    },
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    ping: Toggle<ping::Behaviour>,
    stream: libp2p_stream::Behaviour,
    echo: Toggle<stream_service::Behaviour>,
    identify: Toggle<identify::Behaviour>,
    perf: Toggle<stream_service::Behaviour>,
}

enum Command {
    Dial { opts: DialOpts, reply: oneshot::Sender<Result<PeerId, DialError>> },
}

/// A rust-libp2p peer listening on `127.0.0.1`, driven by a background task
/// that stops when the node is dropped.
pub struct RustNode {
    peer_id: PeerId,
    listen_addr: Multiaddr,
    control: Control,
    commands: mpsc::Sender<Command>,
    events: broadcast::Sender<NodeEvent>,
    driver: JoinHandle<()>,
}

impl fmt::Debug for RustNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RustNode")
            .field("peer_id", &self.peer_id)
            .field("listen_addr", &self.listen_addr)
            .finish_non_exhaustive()
    }
}

impl RustNode {
    /// Builds the swarm (fresh ed25519 key, TCP + [pnet +] Noise (or
    /// plaintext) + yamux with rust-libp2p's defaults), listens on
    /// `/ip4/127.0.0.1/tcp/0` and returns once the listen address is known.
    pub async fn spawn(config: RustNodeConfig) -> Result<Self, SetupError> {
        let key = identity::Keypair::generate_ed25519();
        let behaviour = Behaviour {
            ping: config
                .ping_interval
                .map(|interval| ping::Behaviour::new(ping::Config::new().with_interval(interval)))
                .into(),
            stream: libp2p_stream::Behaviour::new(),
            echo: config.echo.then(echo_service::behaviour).into(),
            identify: config
                .identify
                .then(|| {
                    identify::Behaviour::new(identify::Config::new(
                        IDENTIFY_PROTOCOL_VERSION.to_owned(),
                        key.public(),
                    ))
                })
                .into(),
            perf: config.perf.then(perf_service::behaviour).into(),
        };
        // Keep idle connections: tests decide when a connection ends.
        let idle = Duration::from_secs(300);
        let tcp = tcp::Config::default().nodelay(true);
        let builder = libp2p::SwarmBuilder::with_existing_identity(key).with_tokio();
        let mut swarm = if let Some(psk) = config.psk {
            // rust-libp2p's documented pnet stack: the pnet handshake on the
            // raw socket, then the usual upgrades.
            let pnet = libp2p_pnet::PnetConfig::new(psk);
            builder
                .with_other_transport(|key| {
                    let noise = noise::Config::new(key).map_err(SetupError::from)?;
                    Ok(tcp::tokio::Transport::new(tcp)
                        .and_then(move |socket, _| pnet.handshake(socket))
                        .upgrade(libp2p::core::upgrade::Version::V1Lazy)
                        .authenticate(noise)
                        .multiplex(yamux::Config::default()))
                })?
                .with_behaviour(|_| behaviour)?
                .with_swarm_config(|c| c.with_idle_connection_timeout(idle))
                .build()
        } else if config.insecure_plaintext {
            let plaintext = |key: &identity::Keypair| Ok::<_, Infallible>(plaintext::Config::new(key));
            builder
                .with_tcp(tcp, plaintext, yamux::Config::default)?
                .with_behaviour(|_| behaviour)?
                .with_swarm_config(|c| c.with_idle_connection_timeout(idle))
                .build()
        } else {
            builder
                .with_tcp(tcp, noise::Config::new, yamux::Config::default)?
                .with_behaviour(|_| behaviour)?
                .with_swarm_config(|c| c.with_idle_connection_timeout(idle))
                .build()
        };

        swarm.listen_on("/ip4/127.0.0.1/tcp/0".parse()?)?;
        let listen_addr = loop {
            if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
                break address;
            }
        };

        let peer_id = *swarm.local_peer_id();
        let control = swarm.behaviour().stream.new_control();
        let (commands, command_rx) = mpsc::channel(16);
        let (events, _) = broadcast::channel(1024);
        let driver = tokio::spawn(drive(swarm, command_rx, events.clone()));
        Ok(Self { peer_id, listen_addr, control, commands, events, driver })
    }

    /// The node's peer ID.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The node's listen address (with the real port); no `/p2p` suffix.
    pub fn listen_addr(&self) -> &Multiaddr {
        &self.listen_addr
    }

    /// A libp2p-stream control for opening and accepting streams.
    pub fn control(&self) -> Control {
        self.control.clone()
    }

    /// Events from now on. Subscribe before the action whose events you
    /// want; the channel keeps the latest 1024.
    pub fn events(&self) -> broadcast::Receiver<NodeEvent> {
        self.events.subscribe()
    }

    /// Dials `addr` (checking the remote is `expected`, if given) and waits
    /// until the connection is established or failed.
    pub async fn dial(&self, addr: Multiaddr, expected: Option<PeerId>) -> Result<PeerId, DialError> {
        let opts = match expected {
            Some(peer) => DialOpts::peer_id(peer).addresses(vec![addr]).build(),
            None => DialOpts::unknown_peer_id().address(addr).build(),
        };
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::Dial { opts, reply })
            .await
            .expect("the driver runs until the node is dropped");
        rx.await.expect("the driver answers every dial")
    }

    /// Opens a stream to `peer` (which should already be connected) and
    /// negotiates `protocol` on it.
    pub async fn open_stream(
        &self,
        peer: PeerId,
        protocol: &'static str,
    ) -> Result<RustStream, OpenStreamError> {
        let stream = self.control().open_stream(peer, StreamProtocol::new(protocol)).await?;
        Ok(stream.compat())
    }

    /// Starts accepting inbound streams for `protocol`.
    ///
    /// libp2p-stream buffers a single stream and resets the ones that arrive
    /// while that slot is taken, so use this for one stream at a time; the
    /// echo service ([`RustNodeConfig::with_echo`]) has no such limit.
    pub fn accept(&self, protocol: &'static str) -> IncomingStreams {
        self.control().accept(StreamProtocol::new(protocol)).expect("each test registers a protocol once")
    }
}

impl Drop for RustNode {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// The background task: polls the swarm, runs commands, publishes events.
async fn drive(
    mut swarm: Swarm<Behaviour>,
    mut commands: mpsc::Receiver<Command>,
    events: broadcast::Sender<NodeEvent>,
) {
    let mut pending_dials: HashMap<ConnectionId, oneshot::Sender<Result<PeerId, DialError>>> = HashMap::new();
    loop {
        tokio::select! {
            command = commands.recv() => match command {
                None => return,
                Some(Command::Dial { opts, reply }) => {
                    let id = opts.connection_id();
                    match swarm.dial(opts) {
                        Ok(()) => {
                            pending_dials.insert(id, reply);
                        }
                        Err(error) => {
                            let _ = reply.send(Err(error));
                        }
                    }
                }
            },
            event = swarm.select_next_some() => {
                let published = match event {
                    SwarmEvent::ConnectionEstablished { peer_id, connection_id, endpoint, .. } => {
                        if let Some(reply) = pending_dials.remove(&connection_id) {
                            let _ = reply.send(Ok(peer_id));
                        }
                        Some(NodeEvent::ConnectionEstablished {
                            peer: peer_id,
                            remote_addr: endpoint.get_remote_address().clone(),
                        })
                    }
                    SwarmEvent::OutgoingConnectionError { connection_id, error, .. } => {
                        tracing::debug!(%error, "rust-libp2p dial failed");
                        if let Some(reply) = pending_dials.remove(&connection_id) {
                            let _ = reply.send(Err(error));
                        }
                        None
                    }
                    SwarmEvent::ConnectionClosed { peer_id, cause, .. } => Some(NodeEvent::ConnectionClosed {
                        peer: peer_id,
                        cause: cause.map(|c| c.to_string()),
                    }),
                    SwarmEvent::IncomingConnectionError { error, .. } => {
                        tracing::debug!(%error, "rust-libp2p inbound connection failed");
                        Some(NodeEvent::IncomingConnectionError { error: error.to_string() })
                    }
                    SwarmEvent::Behaviour(BehaviourEvent::Ping(ping::Event { peer, result, .. })) => {
                        Some(NodeEvent::Ping { peer, result: result.map_err(|e| e.to_string()) })
                    }
                    SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                        peer_id,
                        info,
                        ..
                    })) => Some(NodeEvent::Identified { peer: peer_id, info: Box::new(info) }),
                    _ => None,
                };
                if let Some(event) = published {
                    // No subscribers is fine.
                    let _ = events.send(event);
                }
            }
        }
    }
}
