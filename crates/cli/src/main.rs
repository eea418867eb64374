//! The `peerswarm` command-line node.
fn main() {}
