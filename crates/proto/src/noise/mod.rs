//! noise-libp2p (`/noise`, libp2p/specs `noise/README.md`): the XX
//! handshake with the libp2p payload, inlined muxer negotiation, and the
//! framed transport encryption, all without I/O.
//!
//! # The handshake
//!
//! > the Noise protocol name MUST be: `Noise_XX_25519_ChaChaPoly_SHA256`.
//!
//! ```text
//! XX:
//!   -> e
//!   <- e, ee, s, es
//!   -> s, se
//! ```
//!
//! The prologue is empty. Each side has an X25519 static key (one per node,
//! [`NoiseKey`], or a fresh one per handshake) and proves it belongs to its
//! libp2p identity by a signature in the payload ([`HandshakePayload`]):
//!
//! > The `identity_sig` field is produced using the libp2p identity private
//! > key [...]. The data to be signed is the UTF-8 string
//! > `noise-libp2p-static-key:`, followed by the Noise static public key
//! > [...]. If the signature is invalid, the connection MUST be terminated
//! > immediately.
//!
//! > the initiator must not send a payload in their first message. Instead,
//! > the initiator will send its payload in message 3 (closing message),
//! > whereas the responder will send theirs in message 2 (their only
//! > message).
//!
//! > The `remotePeer` PeerId argument MUST be validated against the libp2p
//! > public identity sent by the remote peer during the handshake.
//!
//! The [`Handshake`] state machine does all of that, then agrees on a
//! stream muxer ([`negotiate_muxer`], `connections/inlined-muxer-negotiation.md`):
//!
//! > The second message carries early data in the form of a list of
//! > multiplexers supported by the responder. The initiator sends its
//! > supported multiplexer list in the third message [...]. The multiplexer
//! > to use is determined by picking the first item from the initiator's list
//! > that both parties support.
//!
//! go-libp2p lists its muxers; rust-libp2p sends no `stream_muxers`, in
//! which case the muxer is `None` and multistream-select negotiates it.
//!
//! # Framing and transport
//!
//! > All data is segmented into messages with the following structure:
//! > `noise_message_len` (2 bytes) ‖ `noise_message` (variable length).
//! > The `noise_message_len` field stores the length in bytes of the
//! > `noise_message` field, encoded as a 16-bit big-endian unsigned integer.
//! > [...] a maximum length of 65535 bytes.
//!
//! > the contents of the `noise_message` field will be Noise transport
//! > message, which is an AEAD ciphertext consisting of an encrypted payload
//! > plus 16 bytes of authentication data
//!
//! so a frame carries at most [`MAX_PLAINTEXT_LEN`] = 65 519 plaintext
//! bytes. [`SendCipher::seal_frame`] and [`RecvCipher::open_in_place`]
//! work in the caller's buffer, with no allocation per frame.
//!
//! > In the unlikely event that peers exchange more than `2^64 - 1`
//! > messages, they MUST terminate the connection to avoid reusing nonces
//!
//! so both ciphers fail with [`CipherError::NonceExhausted`] instead of
//! wrapping.
//!
//! # Example
//!
//! ```
//! use peerswarm_proto::identity::Keypair;
//! use peerswarm_proto::noise::Handshake;
//!
//! let (alice, bob) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
//! let yamux = vec!["/yamux/1.0.0".to_string()];
//! let mut dialer = Handshake::initiator(&alice, Some(bob.public().to_peer_id()), &yamux)?;
//! let mut listener = Handshake::responder(&bob, &yamux)?;
//! // Ferry frames until both are done (a real driver reads from a socket).
//! while !(dialer.is_finished() && listener.is_finished()) {
//!     if let Some(frame) = dialer.poll_transmit() {
//!         assert_eq!(listener.handle_input(&frame)?, frame.len());
//!     }
//!     if let Some(frame) = listener.poll_transmit() {
//!         assert_eq!(dialer.handle_input(&frame)?, frame.len());
//!     }
//! }
//! let mut dialer = dialer.into_established().unwrap();
//! let mut listener = listener.into_established().unwrap();
//! assert_eq!(dialer.muxer.as_deref(), Some("/yamux/1.0.0"));
//! assert_eq!(listener.remote_peer_id, alice.public().to_peer_id());
//!
//! let mut frame = Vec::new();
//! dialer.send.encrypt_frame(b"hello", &mut frame)?;
//! let mut plaintext = Vec::new();
//! listener.recv.decrypt_frame(&frame[2..], &mut plaintext)?;
//! assert_eq!(plaintext, b"hello");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod cipher;
mod handshake;
mod payload;
#[cfg(test)]
mod tests;
mod x25519;

pub use cipher::{decode_frame_header, encode_frame_header, CipherError, RecvCipher, SendCipher};
pub use handshake::{negotiate_muxer, Established, Handshake, HandshakeError, NoiseKey, Role};
pub use payload::{
    static_key_message, HandshakePayload, IdentityCheckError, NoiseExtensions, PayloadError, MAX_CERTHASHES,
    MAX_STREAM_MUXERS, STATIC_KEY_SIGNATURE_PREFIX,
};

/// Protocol ID negotiated with multistream-select.
pub const PROTOCOL: &str = "/noise";

/// The Noise protocol name; the only suite noise-libp2p allows.
pub const PROTOCOL_NAME: &str = "Noise_XX_25519_ChaChaPoly_SHA256";

/// Length of the frame header: a big-endian `u16`.
pub const FRAME_HEADER_LEN: usize = 2;

/// The largest Noise message a frame can carry, in bytes.
pub const MAX_FRAME_LEN: usize = u16::MAX as usize;

/// Length of the ChaCha20-Poly1305 authentication tag.
pub const TAG_LEN: usize = 16;

/// The most plaintext one transport frame carries: 65 535 − 16.
pub const MAX_PLAINTEXT_LEN: usize = MAX_FRAME_LEN - TAG_LEN;
