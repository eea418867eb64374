//! peerswarm: a libp2p swarm with Go-style handles.
//!
//! Layers, bottom up (see `docs/ARCHITECTURE.md`):
//!
//! * [`transport`]: raw byte streams (TCP).
//! * [`upgrade`]: multistream-select, then Noise (or, for tests, plaintext),
//!   then yamux.
//! * [`Endpoint`], [`Listener`], [`Connection`], [`Stream`]: dial and accept
//!   upgraded connections; open and accept streams that speak a protocol.
//!
//! ```ignore
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use peerswarm::identity::Keypair;
//! use peerswarm::{Endpoint, EndpointConfig};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! let server = Endpoint::new(EndpointConfig::new(Keypair::generate_ed25519()));
//! let mut listener = server.listen(&"/ip4/127.0.0.1/tcp/0".parse()?).await?;
//! let addr = listener.local_addr().clone();
//! tokio::spawn(async move {
//!     let conn = listener.accept().await.expect("listener open");
//!     let mut stream = conn.accept_stream(&["/hello/1.0.0"]).await?;
//!     stream.write_all(b"Hello Friend!").await?;
//!     stream.close_write().await
//! #   ; Ok::<_, std::io::Error>(())
//! });
//!
//! let client = Endpoint::new(EndpointConfig::new(Keypair::generate_ed25519()));
//! let conn = client.dial(&addr, Some(server.local_peer_id())).await?;
//! let mut stream = conn.open_stream(&["/hello/1.0.0"]).await?;
//! stream.close_write().await?;
//! let mut greeting = String::new();
//! stream.read_to_string(&mut greeting).await?;
//! assert_eq!(greeting, "Hello Friend!");
//! # Ok(()) }
//! ```

// Wired in once the wire-stack modules land:
// mod connection;
// mod endpoint;
pub mod multistream;
pub mod peerstore;
pub mod security;
pub mod swarm;
// mod stream;
pub mod transport;
// pub mod upgrade;
pub mod yamux;

// pub use connection::{Connection, ConnectionError, ConnectionId, Direction, StreamError};
// pub use endpoint::{Endpoint, EndpointConfig, Listener};
pub use multiaddr::{self, Multiaddr};
pub use peerswarm_proto::identity;
// pub use stream::Stream;
pub use transport::TransportError;
