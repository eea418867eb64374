//! peerswarm's benchmark harness.
//!
//! Two binaries share this library:
//!
//! * `bench-node` runs one stack (`peerswarm`, `rust-libp2p`, or raw `tcp`
//!   as the physical reference) in one role: a listener serving perf, echo
//!   and ping, or a client running one scenario against a listener and
//!   printing its result as one JSON line. Each side is its own process, so
//!   the driver can read both processes' CPU time and memory from `/proc`.
//! * `bench` (the driver) spawns listeners and clients, interleaves rounds
//!   (peerswarm, rust-libp2p, peerswarm, ...), computes medians and ratios,
//!   writes `bench/results/latest.json`, the table in `BENCHMARKS.md` and
//!   the chart `docs/bench-ratios.svg`.
//!
//! Every stack reads and writes in 64 KiB blocks ([`CHUNK`]).
//!
//! Modules: [`proc_stat`] (CPU and RSS from `/proc`), [`stats`] (medians,
//! percentiles), [`scenario`] (the client/listener contract between the
//! two binaries), [`peerswarm_node`], [`libp2p_node`], [`tcp_node`] (the
//! three stacks), [`wire`] (perf, echo and ping over any byte
//! stream), [`crypto`] (ChaCha20-Poly1305 reference), [`relay`] (the delaying,
//! rate-capped loopback relay), [`report`] (table and chart).

pub mod crypto;
pub mod libp2p_node;
pub mod peerswarm_node;
pub mod proc_stat;
pub mod relay;
pub mod report;
pub mod scenario;
pub mod stats;
pub mod tcp_node;
pub mod wire;

/// Read and write size of every stack in every scenario: 64 KiB.
pub const CHUNK: usize = 64 * 1024;

/// Error type of the harness (setup failures, protocol mismatches).
pub type BenchError = Box<dyn std::error::Error + Send + Sync>;
