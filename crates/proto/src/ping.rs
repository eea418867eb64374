//! Ping (`/ipfs/ping/1.0.0`).
//!
//! > The dialing peer sends a 32-byte payload of random binary data on an
//! > open stream. The listening peer echoes the same 32-byte payload back.
//! > The dialing peer may repeat the process by sending another payload
//! > with random bytes on the same stream. (libp2p/specs ping/ping.md)

/// The ping protocol ID.
pub const PROTOCOL: &str = "/ipfs/ping/1.0.0";
/// The size of every ping payload.
pub const PAYLOAD_LEN: usize = 32;
