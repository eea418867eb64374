//! The checks behind peerswarm's fuzz targets.
//!
//! Each `fuzz_targets/<name>.rs` is a one-line `fuzz_target!` calling the
//! function of the same name here; `tests/never_panics.rs` runs the same
//! functions under proptest on the stable toolchain, so the checks also run
//! without libFuzzer. Every check feeds hostile input to a decoder or state
//! machine of `peerswarm-proto` and asserts what must hold whatever the
//! input: no panic (style point 5), round trips of whatever decoded, and
//! the bounds the state machines document.

mod codecs;
mod multistream;
mod noise;
mod yamux;

pub use codecs::{dns_message, identify, identity, multiaddr, plaintext_exchange, pnet_key};
pub use multistream::{multistream_message, multistream_negotiation, NegotiationInput};
pub use noise::{noise_handshake, noise_payload, HandshakeInput};
pub use yamux::{yamux_session, YamuxInput};
