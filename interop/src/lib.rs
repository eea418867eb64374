//! Test helpers that run rust-libp2p peers beside peerswarm.
//!
//! * [`RustNode`]: a rust-libp2p 0.57 swarm (TCP, Noise, yamux; ping,
//!   libp2p-stream, and optional identify, `/echo/1.0.0` and `/perf/1.0.0`
//!   services) on a background tokio task, with a handle to dial, open and
//!   accept streams and watch events.
//! * [`RustYamux`]: rust-yamux 0.14 (the muxer inside rust-libp2p) over a
//!   bare socket, to test peerswarm's yamux layer on its own.
//! * [`JsListener`] and [`js_dial`]: a js-libp2p 3 node in Node.js
//!   (`js/node.mjs`), as a child process.
//! * [`peerswarm_bin`]: the `peerswarm` binary, for tests of the CLI.
//! * [`exercise`]: stream exercises (echo, ping dialer and listener, send
//!   while reading) over tokio `AsyncRead + AsyncWrite`, so the same code
//!   drives a peerswarm `Stream` and a rust-libp2p [`RustStream`].
//!
//! peerswarm and rust-libp2p share `libp2p-identity` 0.3 and `multiaddr`
//! 0.19, so `PeerId` and `Multiaddr` values pass between the two directly.
//!
//! The tests live in `tests/`; see `README.md`.

mod bins;
mod echo_service;
pub mod exercise;
mod js_node;
mod perf_service;
mod rust_node;
mod rust_yamux;
mod stream_service;

pub use bins::{js_node_dir, peerswarm_bin};
pub use echo_service::ECHO_PROTOCOL;
pub use js_node::{collect_stderr, js_dial, JsDial, JsListener};
pub use perf_service::{perf_client, perf_server, PERF_PROTOCOL};
pub use rust_node::{NodeEvent, RustNode, RustNodeConfig, RustStream, SetupError, IDENTIFY_PROTOCOL_VERSION};
pub use rust_yamux::{Mode as YamuxMode, RustYamux, RustYamuxStream};

/// The `/ipfs/ping/1.0.0` protocol ID.
pub const PING_PROTOCOL: &str = "/ipfs/ping/1.0.0";

/// Awaits `future`, panicking with `what` if it takes longer than `limit`,
/// so a hang fails the test instead of blocking CI.
#[track_caller]
pub fn within<F: std::future::Future>(
    limit: std::time::Duration,
    what: &'static str,
    future: F,
) -> impl std::future::Future<Output = F::Output> {
    let caller = std::panic::Location::caller();
    async move {
        match tokio::time::timeout(limit, future).await {
            Ok(output) => output,
            Err(_) => panic!("{what}: timed out after {limit:?} (at {caller})"),
        }
    }
}
