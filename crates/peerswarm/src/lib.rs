//! peerswarm: a libp2p networking stack with Go-style handles.
//!
//! Dial a peer, open a stream, accept streams: every type is a cheap,
//! clonable handle with async methods, and a spawned driver does the polling.
//! Nothing needs to be polled by the user. peerswarm speaks the libp2p wire
//! protocols byte for byte (multistream-select, Noise, yamux, identify,
//! ping, perf), so it talks to go-libp2p, rust-libp2p and js-libp2p nodes.
//!
//! # Layers
//!
//! From the top (see `docs/ARCHITECTURE.md` in the repository):
//!
//! * [`host::Host`]: protocol routing (multistream-select per stream) and the
//!   built-in protocols: identify, ping, echo, perf.
//! * [`swarm::Swarm`]: the node's connections to peers: listening, dialing
//!   by peer ID (one dial per peer, ranked addresses, backoff, limits,
//!   timeouts), notifications, gating, bandwidth metering.
//! * [`Endpoint`], [`Listener`], [`Connection`], [`Stream`]: dial and accept
//!   upgraded connections; open and accept streams.
//! * [`upgrade`]: multistream-select, then Noise (or, for tests, plaintext),
//!   then [`yamux`]; [`transport`]: TCP. Optionally a private network
//!   ([`PreSharedKey`], libp2p pnet) under all of them.
//!
//! The protocol state machines live, sans-IO, in the `peerswarm-proto` crate.
//!
//! # Example: "Hello Friend!"
//!
//! ```
//! use peerswarm::host::{Host, HostConfig};
//! use peerswarm::identity::Keypair;
//! use peerswarm::swarm::Swarm;
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A node that greets whoever opens /hello/1.0.0.
//! let server = Host::new(Swarm::new(Keypair::generate_ed25519()), HostConfig::default());
//! let addr = server.swarm().add_listen_addr(&"/ip4/127.0.0.1/tcp/0".parse()?).await?;
//! server.set_stream_handler("/hello/1.0.0", |mut stream| async move {
//!     let _ = stream.write_all(b"Hello Friend!").await;
//!     let _ = stream.close().await;
//! });
//!
//! // A second node connects to it by peer ID and address, and asks.
//! let client = Host::new(Swarm::new(Keypair::generate_ed25519()), HostConfig::default());
//! client.connect(&server.local_peer(), vec![addr]).await?;
//! let mut stream = client.new_stream(&server.local_peer(), &["/hello/1.0.0"]).await?;
//! let mut greeting = String::new();
//! stream.read_to_string(&mut greeting).await?;
//! assert_eq!(greeting, "Hello Friend!");
//!
//! client.close().await;
//! server.close().await;
//! # Ok(()) }
//! ```

mod connection;
mod endpoint;
pub mod host;
pub mod multistream;
pub mod peerstore;
pub mod security;
mod stream;
pub mod swarm;
pub mod transport;
pub mod upgrade;
pub mod yamux;

pub use connection::{Connection, ConnectionError, ConnectionId, Direction, StreamError};
pub use endpoint::{Endpoint, EndpointConfig, Listener};
pub use multiaddr::{self, Multiaddr};
pub use peerswarm_proto::identity;
pub use peerswarm_proto::pnet::{PreSharedKey, PskEncoding, PskFingerprint, PskParseError};
pub use stream::{Stream, StreamStat};
pub use transport::TransportError;
