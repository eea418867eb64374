//! Yamux (`/yamux/1.0.0`) over tokio: [`Connection`] and [`Stream`] handles
//! driving the sans-IO [`peerswarm_proto::yamux::Session`].
//!
//! # Architecture
//!
//! quinn's model: one `Arc<Mutex<Shared>>` holds the session plus the
//! wakers. A stream's `poll_write` locks it, hands the bytes to the session
//! (which encodes them straight into its transmit buffer, bounded by the
//! send window and [`Config::set_send_buffer_size`]) and wakes the driver;
//! `poll_read` copies out of the session's receive queue, which returns
//! window credit. The driver task reads up to 64 KiB at a time from the I/O,
//! feeds the session, and writes everything the session has queued in one
//! batch (up to 512 KiB) followed by one `flush` — with a Noise transport
//! below, that is a few ~64 KiB encrypted frames per batch. There are no
//! per-frame channel hops.
//!
//! Memory is bounded everywhere: the receive side by the stream windows,
//! [`Config::set_connection_window_budget`] per connection and a
//! [`BufferBudget`] per node, the send side by the send
//! buffer (writers block when the peer stops reading), unaccepted streams by
//! [`Config::set_max_streams`], unprocessed input by 256 KiB. Idle
//! connections drop their buffers.
//!
//! ```no_run
//! # async fn demo(tcp: tokio::net::TcpStream) -> Result<(), Box<dyn std::error::Error>> {
//! use peerswarm::yamux::{Config, Connection, Role};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! let conn = Connection::new(tcp, Role::Client, Config::default());
//! let mut stream = conn.open_stream().await?;
//! stream.write_all(b"hello").await?;
//! stream.close_write().await?;
//! let mut reply = Vec::new();
//! stream.read_to_end(&mut reply).await?;
//! conn.close().await;
//! # Ok(()) }
//! ```
//!
//! # Cancel safety
//!
//! [`Connection::open_stream`], [`Connection::accept_stream`] and
//! [`Connection::closed`] are cancel safe. Stream reads and writes follow
//! the usual tokio `AsyncRead`/`AsyncWrite` contracts.
//!
//! # Drop
//!
//! Dropping every [`Connection`] handle closes the connection; dropping a
//! [`Stream`] releases it (FIN if the peer already finished, RST otherwise;
//! see [`Stream`]).

mod connection;
mod stream;

#[cfg(test)]
mod tests;

pub use connection::{Connection, ConnectionError};
pub use peerswarm_proto::yamux::{BufferBudget, Config, ConfigError, GoAwayCode, ProtocolError, Role};

/// The node-wide cap on received-but-unread stream bytes that an
/// [`Endpoint`](crate::Endpoint) (and so a swarm) installs unless its yamux
/// config brings its own [`BufferBudget`]: 256 MiB. With the default
/// connection budget of 64 MiB, four connections whose readers all stall can
/// reach it; the fifth one's data resets its streams instead of taking memory.
pub const DEFAULT_NODE_BUFFER_BUDGET: u64 = 256 * 1024 * 1024;
pub use stream::Stream;
