//! peerswarm: a libp2p swarm with Go-style handles.

pub mod multistream;
pub mod security;
pub mod yamux;

pub use peerswarm_proto::identity;
