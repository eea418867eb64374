//! Yamux (`/yamux/1.0.0`) over tokio: [`Connection`] and [`Stream`] handles
//! driving the sans-IO [`peerswarm_proto::yamux::Session`].
//!
//! # Architecture
//!
//! quinn's model: one `Arc<Mutex<Shared>>` holds the session plus the
//! wakers. A stream's `poll_write` locks it and hands the bytes to the
//! session (which encodes them straight into its transmit buffer, bounded by
//! the send window and [`Config::set_send_buffer_size`]); `poll_read` copies
//! out of the session's receive queue, which returns window credit. The I/O
//! side (the byte stream, a read buffer, a write batch of up to 512 KiB)
//! sits behind a second lock and is moved by *rounds*: read, feed the
//! session, write what it queued, flush.
//!
//! Rounds run in two places. The spawned driver task runs them when the
//! I/O, a timer or a handle wakes it. A stream's task runs them inline when
//! its write left at least 160 KiB queued, it found nothing to read, or it
//! returned window credit, and the I/O lock is free (writes below that go
//! to the driver, which sends a reply and its FIN in one write, and while it
//! wakes a bulk writer queues about three frames for one `writev`): the bytes
//! then move without a hand-off to another task and back, the hand-off
//! that cost most of the CPU beyond the cipher in a bulk transfer. Inline
//! rounds poll the I/O with the driver's waker, so readiness always reaches
//! the driver, whichever task polled last; a task that finds the I/O busy
//! leaves the work to the holder. The driver, finding it busy, leaves a
//! flag that the holder checks after releasing the lock: the holder then
//! takes the driver's turn itself (up to two turns, then it wakes the
//! driver), since a woken driver would mostly find a busy writer's I/O
//! locked again. Timers and the shutdown stay with the driver: an inline
//! round wakes it when a deadline moved or the session closed.
//!
//! Streams made readable or writable by a round are collected and woken
//! only after the I/O and shared locks are released (and the driver hands
//! them out every few rounds), so a woken reader never blocks on a lock the
//! waker still holds. A read takes up to four received chunks under the
//! shared lock and copies them into the caller's buffer after unlocking.
//!
//! Over Noise, the driver takes decrypted frames as owned buffers and the
//! session splits payloads off them, so received data is copied once, into
//! the reader's buffer; outgoing frames are sealed in place in the write
//! batch and sent with one vectored write, so sent data is copied once, out
//! of the writer's buffer. Used-up Noise read buffers go to a small
//! process-wide cache (16 × 256 KiB) and are reused once every frame cut
//! from them is gone, instead of being faulted in afresh.
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

pub(crate) use connection::{plain_io, ConnIo};
pub use connection::{Connection, ConnectionError};
pub use peerswarm_proto::yamux::{BufferBudget, Config, ConfigError, GoAwayCode, ProtocolError, Role};

/// The node-wide cap on received-but-unread stream bytes that an
/// [`Endpoint`](crate::Endpoint) (and so a swarm) installs unless its yamux
/// config brings its own [`BufferBudget`]: 256 MiB. With the default
/// connection budget of 64 MiB, four connections whose readers all stall can
/// reach it; the fifth one's data resets its streams instead of taking memory.
pub const DEFAULT_NODE_BUFFER_BUDGET: u64 = 256 * 1024 * 1024;
pub use stream::Stream;
