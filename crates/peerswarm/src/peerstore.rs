//! The peerstore (in progress).
