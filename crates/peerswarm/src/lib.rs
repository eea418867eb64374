//! peerswarm: a libp2p swarm with Go-style handles.
