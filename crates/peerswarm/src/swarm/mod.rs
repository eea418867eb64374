//! The swarm: a node's connections to peers, and the streams over them.

pub mod dial;
