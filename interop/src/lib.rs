//! Test helpers that run rust-libp2p peers beside peerswarm.
