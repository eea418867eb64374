//! Yamux (`/yamux/1.0.0`): the sans-IO session state machine.
//!
//! Spec: libp2p `yamux/README.md` (Recommendation r0, 2023-02-17), a copy of
//! hashicorp's `spec.md`. The lines this module implements:
//!
//! * Framing — > "Each frame contains a header like: Version (8 bits), Type
//!   (8 bits), Flags (16 bits), StreamID (32 bits), Length (32 bits)."
//!   See [`Header`].
//! * Stream ids — > "The client side should use odd ID's, and the server
//!   even. [...] the 0 ID is reserved to represent the session." A SYN with
//!   id 0 or our parity is a protocol error ([`ProtocolError::InvalidStreamId`]).
//! * Opening — > "an initial data or window update frame is sent with a new
//!   StreamID. The SYN flag should be set [...] The receiver must then reply
//!   with either a data or window update frame with the StreamID along with
//!   the ACK flag to accept the stream or with the RST flag to reject the
//!   stream." and > "a connection can begin sending data once the SYN flag is
//!   sent. The corresponding ACK does not need to be received."
//!   [`Session::open_stream`] never waits; the SYN rides on the first frame.
//!   Inbound streams beyond [`Config::set_max_streams`] are refused with RST
//!   and the connection carries on.
//! * ACK backlog — > "Implementations SHOULD at most allow an ACK backlog of
//!   256 streams. [...] SHOULD NOT implicitly acknowledge streams but wait for
//!   the application to send the first DATA frame." We open at most 256
//!   unacknowledged streams ([`OpenError::AckBacklogFull`]) and put our ACK on
//!   the first frame we send on an inbound stream (data, window update or FIN).
//! * Closing — > "either side sends a data or window update frame along with
//!   the FIN flag. This does a half-close [...] if an error occurs, the RST
//!   flag can be used to hard close a stream immediately."
//! * Flow control — > "Yamux initially starts each stream with a 256KB window
//!   size. There is no window size for the session. [...] Both sides should
//!   track the number of bytes sent in Data frames only". Data beyond the
//!   window is a protocol error ([`ProtocolError::WindowExceeded`]), as is a
//!   window pushed past `u32::MAX` ([`ProtocolError::WindowOverflow`]). Any
//!   frame size within the window is accepted. Windows auto-tune (see
//!   [`Session`]).
//! * Ping — > "SYN [...] Also sent with a ping to indicate outbound", "ACK
//!   [...] Also sent with a ping to indicate response", > "Contains an opaque
//!   value, echoed back".
//! * Go Away — > "When a session is being terminated, the Go Away message
//!   should be sent. [...] 0x0 Normal termination, 0x1 Protocol error, 0x2
//!   Internal error". See [`GoAwayCode`].
//!
//! # Handling of odd input (the spec says only "handle gracefully")
//!
//! * Data / window update for an unknown (never opened, or already reset and
//!   released) stream: ignored, payload skipped. Such frames are normal right
//!   after a local reset, so answering with RST would only add noise.
//! * Data after the peer's FIN: the stream is reset (RST sent), the
//!   connection survives.
//! * Data or window update on stream id 0, unknown flag bits, frames on a
//!   stream the peer reset: ignored.
//! * SYN on a stream that still exists: protocol error. A reused id whose
//!   stream was already released cannot be told apart from a new one and is
//!   accepted (go-yamux may legitimately send SYNs slightly out of order).
//!
//! # Memory
//!
//! An idle session holds no buffers: stream queues, transmit buffers, event
//! queues and the stream map are released when they drain.

mod budget;
mod config;
mod frame;
mod session;

#[cfg(test)]
mod tests;

pub use budget::BufferBudget;
pub use config::{Config, ConfigError, Role};
pub use frame::{Flags, FrameError, FrameType, GoAwayCode, Header, HEADER_LEN, VERSION};
pub use session::{Error, Event, OpenError, ProtocolError, Session, StreamError};

/// The protocol id for multistream-select.
pub const PROTOCOL_ID: &str = "/yamux/1.0.0";

/// The receive window every stream starts with, in both directions:
/// > "Yamux initially starts each stream with a 256KB window size."
pub const INITIAL_WINDOW: u32 = 256 * 1024;

/// At most this many of our streams may be unacknowledged:
/// > "Implementations SHOULD at most allow an ACK backlog of 256 streams."
pub const ACK_BACKLOG: usize = 256;
