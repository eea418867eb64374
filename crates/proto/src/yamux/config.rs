//! Session configuration.

use std::time::Duration;

use super::budget::BufferBudget;
use super::frame::HEADER_LEN;
use super::INITIAL_WINDOW;

/// Which end of the underlying connection we are.
///
/// > The client side should use odd ID's, and the server even.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// The connection initiator (dialer): opens odd stream ids.
    Client,
    /// The connection responder (listener): opens even stream ids.
    Server,
}

/// A configuration value out of range.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `name` was given a value outside its documented range.
    #[error("invalid yamux config value for {name}: {reason}")]
    InvalidValue {
        /// The setter's knob.
        name: &'static str,
        /// What the accepted range is.
        reason: &'static str,
    },
}

fn invalid(name: &'static str, reason: &'static str) -> ConfigError {
    ConfigError::InvalidValue { name, reason }
}

/// Yamux session configuration: a plain [`Default`] struct with validating
/// setters.
///
/// # Memory
///
/// A peer may always fill every stream's window, but a session never holds
/// more than `connection_window_budget` bytes received and unread: a data
/// frame that would take it past that resets its stream
/// ([`StreamError::BufferLimit`](super::StreamError::BufferLimit)), as does
/// one that does not fit the node-wide [`BufferBudget`] when one is set.
/// Auto-tuning only ever grows windows within the budget, so a stream whose
/// reader keeps up is never reset. The send side holds at most
/// `send_buffer_size` (twice, counting the driver's write buffer).
#[derive(Clone, Debug)]
pub struct Config {
    pub(crate) max_inbound_streams: usize,
    pub(crate) initial_window: u32,
    pub(crate) max_stream_window: u32,
    pub(crate) connection_window_budget: u64,
    pub(crate) split_send_size: usize,
    pub(crate) send_buffer_size: usize,
    pub(crate) keepalive: Option<(Duration, Duration)>,
    pub(crate) rtt_probe: bool,
    pub(crate) buffer_budget: Option<BufferBudget>,
    pub(crate) stream_idle_timeout: Option<Duration>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            max_inbound_streams: 256,
            initial_window: INITIAL_WINDOW,
            max_stream_window: 64 * 1024 * 1024,
            connection_window_budget: 64 * 1024 * 1024,
            split_send_size: 64 * 1024,
            send_buffer_size: 256 * 1024,
            keepalive: Some((Duration::from_secs(30), Duration::from_secs(10))),
            rtt_probe: true,
            buffer_budget: None,
            stream_idle_timeout: Some(Duration::from_secs(300)),
        }
    }
}

impl Config {
    /// Maximum number of inbound (remote-opened) streams alive at once,
    /// including those not yet accepted by the application. A SYN beyond it is
    /// refused with RST (the spec's "RST flag to reject the stream"); the
    /// connection carries on.
    ///
    /// Default 256 (the spec's "buffer at least 256 unacknowledged inbound
    /// streams"). Each stream can pin `initial_window` bytes (256 KiB) of
    /// receive memory, so the worst case is 64 MiB at the default. Range
    /// `1..=65536`.
    pub fn set_max_streams(&mut self, n: usize) -> Result<&mut Config, ConfigError> {
        if !(1..=65536).contains(&n) {
            return Err(invalid("max_streams", "must be in 1..=65536"));
        }
        self.max_inbound_streams = n;
        Ok(self)
    }

    /// The receive window each new stream starts with, in bytes.
    ///
    /// Default 256 KiB, the spec value both sides assume. A larger value is
    /// announced to the peer with a window update on SYN (outbound streams) or
    /// on the first read (inbound). Must be at least 256 KiB (the peer may
    /// always send that much) and at most `max_stream_window`.
    pub fn set_initial_window(&mut self, bytes: u32) -> Result<&mut Config, ConfigError> {
        if bytes < INITIAL_WINDOW || bytes > self.max_stream_window {
            return Err(invalid("initial_window", "must be in 256 KiB..=max_stream_window"));
        }
        self.initial_window = bytes;
        Ok(self)
    }

    /// The largest receive window auto-tuning may grow a single stream to, in
    /// bytes.
    ///
    /// Default 64 MiB: windows settle between 4/3 and 8/3 of the
    /// bandwidth-delay product, so one stream can fill a link of 1 Gbit/s at
    /// 200 ms RTT (25 MB in flight), where go-yamux's 16 MiB caps it at about
    /// half of that. A window is only credit: memory is used when the reader
    /// falls behind, and then only within `connection_window_budget`. Must be
    /// ≥ `initial_window`.
    pub fn set_max_stream_window(&mut self, bytes: u32) -> Result<&mut Config, ConfigError> {
        if bytes < self.initial_window {
            return Err(invalid("max_stream_window", "must be >= initial_window"));
        }
        self.max_stream_window = bytes;
        Ok(self)
    }

    /// Budget for one connection's receive side, in bytes: auto-tuning never
    /// grows the sum of all streams' windows past it (windows shrink back
    /// into it as streams close), and the bytes received but not yet read
    /// never exceed it — a data frame that would go past resets its stream.
    ///
    /// Default 64 MiB: one stream at the full window, or many streams at a
    /// few hundred KiB. rust-yamux defaults to 1 GiB; we prefer bounded memory
    /// per connection. Initial windows (256 KiB each) are granted even past
    /// the budget since the spec makes them unconditional, which is why the
    /// buffered-bytes check exists. Must be ≥ `initial_window`.
    pub fn set_connection_window_budget(&mut self, bytes: u64) -> Result<&mut Config, ConfigError> {
        if bytes < u64::from(self.initial_window) {
            return Err(invalid("connection_window_budget", "must be >= initial_window"));
        }
        self.connection_window_budget = bytes;
        Ok(self)
    }

    /// Largest payload of a Data frame we send, in bytes.
    ///
    /// Default 64 KiB. rust-yamux uses 16 KiB to bound head-of-line blocking
    /// between streams; at 64 KiB a frame takes ~0.5 ms at 1 Gbit/s, which
    /// keeps interleaving fair, while matching the ~64 KiB Noise frame so a
    /// frame rarely straddles two encryptions, and quartering per-frame work
    /// (headers, wake-ups, receiver chunk bookkeeping). Range
    /// `1..=16 MiB`.
    pub fn set_split_send_size(&mut self, bytes: usize) -> Result<&mut Config, ConfigError> {
        if !(1..=16 * 1024 * 1024).contains(&bytes) {
            return Err(invalid("split_send_size", "must be in 1..=16 MiB"));
        }
        self.split_send_size = bytes;
        Ok(self)
    }

    /// How many encoded bytes the session queues for transmission before
    /// writers are blocked (back-pressure towards the socket).
    ///
    /// Default 256 KiB. Larger values mean fewer, bigger socket writes and
    /// more memory per busy connection; it is released while idle. Range
    /// `13..=64 MiB` (one header plus one byte at least).
    pub fn set_send_buffer_size(&mut self, bytes: usize) -> Result<&mut Config, ConfigError> {
        if !(HEADER_LEN + 1..=64 * 1024 * 1024).contains(&bytes) {
            return Err(invalid("send_buffer_size", "must be in 13..=64 MiB"));
        }
        self.send_buffer_size = bytes;
        Ok(self)
    }

    /// Keep-alive: send a ping every `interval` and close the connection with
    /// a keep-alive timeout if nothing at all is received within `timeout`
    /// after a ping. `None` disables it.
    ///
    /// Default 30 s / 10 s, as go-yamux: a peer that vanished without a FIN
    /// (a half-open TCP connection) is noticed within 40 s even when no
    /// stream is active. Both durations must be non-zero.
    pub fn set_keepalive(
        &mut self,
        keepalive: Option<(Duration, Duration)>,
    ) -> Result<&mut Config, ConfigError> {
        if let Some((interval, timeout)) = keepalive {
            if interval.is_zero() || timeout.is_zero() {
                return Err(invalid("keepalive", "interval and timeout must be > 0"));
            }
        }
        self.keepalive = keepalive;
        Ok(self)
    }

    /// Whether to measure the round-trip time with yamux pings (one when the
    /// session starts unless [`Session::seed_rtt`](super::Session::seed_rtt)
    /// gave an estimate, then at most every 10 s while windows are being
    /// updated). Auto-tuning needs it; without it windows stay at
    /// `initial_window`. Default `true`.
    pub fn set_rtt_probe(&mut self, enabled: bool) -> &mut Config {
        self.rtt_probe = enabled;
        self
    }

    /// Shares a node-wide cap on received-but-unread bytes with the other
    /// sessions given the same [`BufferBudget`]. Default `None`: only the
    /// per-connection budget applies (`peerswarm`'s endpoints always set one).
    pub fn set_buffer_budget(&mut self, budget: Option<BufferBudget>) -> &mut Config {
        self.buffer_budget = budget;
        self
    }

    /// Resets a stream on which nothing was sent or received, and nothing
    /// read or written by the application, for `timeout`; the application
    /// sees [`StreamError::IdleTimeout`](super::StreamError::IdleTimeout).
    /// `None` disables it. Individual streams can override it with
    /// [`Session::set_stream_idle_timeout`](super::Session::set_stream_idle_timeout).
    ///
    /// Default 5 minutes: a peer cannot pin stream slots, handler tasks and
    /// window memory forever by opening streams and going quiet. Streams
    /// that the application released after its FIN, waiting for the peer's,
    /// are forgotten after at most 30 s of silence whatever this says. Must
    /// be at least one second.
    pub fn set_stream_idle_timeout(&mut self, timeout: Option<Duration>) -> Result<&mut Config, ConfigError> {
        if timeout.is_some_and(|t| t < Duration::from_secs(1)) {
            return Err(invalid("stream_idle_timeout", "must be at least 1 s"));
        }
        self.stream_idle_timeout = timeout;
        Ok(self)
    }

    /// The shared node-wide buffer budget, if any.
    pub fn buffer_budget(&self) -> Option<&BufferBudget> {
        self.buffer_budget.as_ref()
    }

    /// The idle-stream timeout, if enabled.
    pub fn stream_idle_timeout(&self) -> Option<Duration> {
        self.stream_idle_timeout
    }

    /// Maximum number of inbound streams (see [`Config::set_max_streams`]).
    pub fn max_streams(&self) -> usize {
        self.max_inbound_streams
    }

    /// Initial per-stream receive window in bytes.
    pub fn initial_window(&self) -> u32 {
        self.initial_window
    }

    /// Per-stream receive window cap in bytes.
    pub fn max_stream_window(&self) -> u32 {
        self.max_stream_window
    }

    /// Per-connection receive window budget in bytes.
    pub fn connection_window_budget(&self) -> u64 {
        self.connection_window_budget
    }

    /// Data frame payload size cap in bytes.
    pub fn split_send_size(&self) -> usize {
        self.split_send_size
    }

    /// Transmit queue cap in bytes.
    pub fn send_buffer_size(&self) -> usize {
        self.send_buffer_size
    }

    /// Keep-alive `(interval, timeout)`, if enabled.
    pub fn keepalive(&self) -> Option<(Duration, Duration)> {
        self.keepalive
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_values_are_errors() {
        let mut c = Config::default();
        assert!(c.set_max_streams(0).is_err());
        assert!(c.set_initial_window(1000).is_err());
        assert!(c.set_max_stream_window(1000).is_err());
        assert!(c.set_connection_window_budget(10).is_err());
        assert!(c.set_split_send_size(0).is_err());
        assert!(c.set_send_buffer_size(5).is_err());
        assert!(c.set_keepalive(Some((Duration::ZERO, Duration::from_secs(1)))).is_err());
        c.set_max_streams(10).unwrap().set_split_send_size(16 * 1024).unwrap();
        assert_eq!(c.max_streams(), 10);
    }
}
