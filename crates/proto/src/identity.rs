//! Keys and peer IDs (in progress).
pub use libp2p_identity::{Keypair, PeerId, PublicKey};
