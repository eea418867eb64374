//! The XX handshake as a sans-IO state machine.

use super::cipher::{decode_frame_header, RecvCipher, SendCipher};
use super::payload::{
    static_key_message, HandshakePayload, IdentityCheckError, NoiseExtensions, PayloadError,
};
use super::x25519::{Resolver, StaticPair, KEY_LEN};
use super::{FRAME_HEADER_LEN, MAX_FRAME_LEN, PROTOCOL_NAME, TAG_LEN};
use crate::identity::{Keypair, PeerId, PublicKey};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};
use thiserror::Error;

/// Why a Noise handshake failed.
///
/// Everything except [`Signing`](Self::Signing) and
/// [`Internal`](Self::Internal) is the remote's fault.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// A handshake message failed to decrypt (bad tag).
    #[error("handshake message failed to decrypt")]
    Decrypt,
    /// A handshake message is too short or carries an invalid DH key.
    #[error("malformed handshake message")]
    MalformedMessage,
    /// The decrypted payload is not a valid `NoiseHandshakePayload`.
    #[error("malformed handshake payload: {0}")]
    MalformedPayload(#[from] PayloadError),
    /// The payload has no identity key.
    #[error("handshake payload has no identity key")]
    MissingIdentityKey,
    /// The identity key is of a type this node does not support.
    #[error("unsupported identity key type {key_type}")]
    UnsupportedKey {
        /// The protobuf `KeyType` value.
        key_type: u64,
    },
    /// The identity key does not decode.
    #[error("invalid identity key")]
    InvalidKey,
    /// The identity key's signature over the static key does not verify.
    #[error("static key signature from {peer_id} does not verify")]
    BadSignature {
        /// The peer that the unproven identity key would belong to.
        peer_id: Box<PeerId>,
    },
    /// The remote authenticated as a different peer than the one dialed.
    /// (The IDs are boxed to keep the error, and every `Result` carrying
    /// it, small.)
    #[error("expected peer {expected}, remote is {actual}")]
    PeerIdMismatch {
        /// The peer ID we dialed.
        expected: Box<PeerId>,
        /// The peer ID the remote proved.
        actual: Box<PeerId>,
    },
    /// Both sides listed stream muxers, but none in common.
    #[error("no common stream muxer (initiator offers {initiator:?}, responder supports {responder:?})")]
    NoCommonMuxer {
        /// The initiator's list, in its order of preference.
        initiator: Vec<String>,
        /// The responder's list.
        responder: Vec<String>,
    },
    /// Our identity key could not sign the static key (local fault).
    #[error("could not sign the static key")]
    Signing,
    /// The Noise library failed (random source or an invariant; local).
    #[error("noise internal error: {reason}")]
    Internal {
        /// What failed.
        reason: &'static str,
    },
}

impl From<IdentityCheckError> for HandshakeError {
    fn from(err: IdentityCheckError) -> Self {
        match err {
            IdentityCheckError::MissingKey => HandshakeError::MissingIdentityKey,
            IdentityCheckError::UnsupportedKey { key_type } => HandshakeError::UnsupportedKey { key_type },
            IdentityCheckError::BadSignature { peer_id } => {
                HandshakeError::BadSignature { peer_id: Box::new(peer_id) }
            }
            IdentityCheckError::InvalidKey => HandshakeError::InvalidKey,
        }
    }
}

fn from_snow(err: snow::Error) -> HandshakeError {
    match err {
        snow::Error::Decrypt => HandshakeError::Decrypt,
        snow::Error::Input | snow::Error::Dh => HandshakeError::MalformedMessage,
        snow::Error::Rng => HandshakeError::Internal { reason: "random source failed" },
        _ => HandshakeError::Internal { reason: "noise state error" },
    }
}

/// Which side of the handshake this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The dialer: sends messages 1 and 3.
    Initiator,
    /// The listener: sends message 2.
    Responder,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Responder: waiting for `-> e`.
    AwaitMsg1,
    /// Initiator: waiting for `<- e, ee, s, es`.
    AwaitMsg2,
    /// Responder: waiting for `-> s, se`.
    AwaitMsg3,
    /// Both sides authenticated; the last message may still be queued.
    Done,
    /// A message was rejected; the handshake is over.
    Failed,
}

/// What a finished handshake hands over: the transport ciphers, the
/// authenticated remote and the agreed muxer.
#[derive(Debug)]
#[non_exhaustive]
pub struct Established {
    /// Encrypts what we send.
    pub send: SendCipher,
    /// Decrypts what we receive.
    pub recv: RecvCipher,
    /// The remote's identity key, proven by its signature.
    pub remote_public_key: PublicKey,
    /// The remote's peer ID, derived from `remote_public_key`.
    pub remote_peer_id: PeerId,
    /// The muxer agreed by inlined negotiation, or `None` if either side
    /// listed none: negotiate it with multistream-select instead.
    pub muxer: Option<String>,
}

struct Remote {
    public_key: PublicKey,
    peer_id: PeerId,
    muxer: Option<String>,
}

/// This node's Noise static key: an X25519 key pair and the identity key's
/// signature over it, made once and used for many handshakes.
///
/// The static key only has to be proven by the identity signature, so one
/// per node is enough: rust-libp2p makes one per `noise::Config` (node
/// lifetime) and js-libp2p accepts a fixed one "for faster handshakes".
/// Every handshake still has fresh ephemeral keys (forward secrecy); reusing
/// the static key saves a key generation and a signature per handshake.
/// [`Handshake::initiator`] and [`Handshake::responder`] make a fresh one
/// each time instead.
///
/// It also remembers the last 256 remote identities its handshakes
/// verified (remote static key, identity key and signature, byte for
/// byte), so a peer that reconnects with the same static key costs no
/// second signature check.
///
/// Cheap to clone (clones share the key and what it remembers).
#[derive(Clone)]
pub struct NoiseKey(Arc<NoiseKeyInner>);

struct NoiseKeyInner {
    pair: Arc<StaticPair>,
    /// Our identity key, protobuf-encoded, and its signature over
    /// `"noise-libp2p-static-key:" ‖ pair.public`.
    identity_key: Vec<u8>,
    identity_sig: Vec<u8>,
    /// Remote identities this node has verified.
    verified: Mutex<VerifiedIdentities>,
}

/// How many verified remote identities a [`NoiseKey`] remembers.
const VERIFIED_CAPACITY: usize = 256;

/// Remote identities already verified, by the remote's static key: its
/// identity key and signature bytes, and the decoded key.
///
/// A peer that keeps its static key (rust-libp2p, js-libp2p with a fixed
/// key, peerswarm) sends the same identity key and signature over the same
/// static key every time it connects. Checking a signature is a pure
/// function of those bytes, so a byte-for-byte match with a pair verified
/// before needs no second check: this saves the Ed25519 verification (and
/// the key decoding) on every reconnect. Only successes are remembered;
/// anything that differs in a single byte is verified in full. Bounded:
/// the oldest entry makes room.
#[derive(Default)]
struct VerifiedIdentities {
    entries: HashMap<[u8; KEY_LEN], Verified>,
    order: VecDeque<[u8; KEY_LEN]>,
}

struct Verified {
    identity_key: Vec<u8>,
    identity_sig: Vec<u8>,
    public_key: PublicKey,
}

impl VerifiedIdentities {
    fn get(&self, remote_static: &[u8; KEY_LEN], payload: &HandshakePayload) -> Option<PublicKey> {
        let hit = self.entries.get(remote_static)?;
        (hit.identity_key == payload.identity_key && hit.identity_sig == payload.identity_sig)
            .then(|| hit.public_key.clone())
    }

    fn insert(&mut self, remote_static: [u8; KEY_LEN], payload: &HandshakePayload, public_key: &PublicKey) {
        let entry = Verified {
            identity_key: payload.identity_key.clone(),
            identity_sig: payload.identity_sig.clone(),
            public_key: public_key.clone(),
        };
        if self.entries.insert(remote_static, entry).is_some() {
            return;
        }
        self.order.push_back(remote_static);
        if self.order.len() > VERIFIED_CAPACITY {
            if let Some(oldest) = self.order.pop_front() {
                self.entries.remove(&oldest);
            }
        }
    }
}

impl NoiseKey {
    /// A fresh random X25519 key pair, signed by `identity`.
    ///
    /// # Errors
    ///
    /// [`HandshakeError::Signing`] if `identity` cannot sign,
    /// [`HandshakeError::Internal`] if the random source fails.
    pub fn new(identity: &Keypair) -> Result<Self, HandshakeError> {
        let pair = StaticPair::generate().map_err(from_snow)?;
        let identity_sig =
            identity.sign(&static_key_message(pair.public())).map_err(|_| HandshakeError::Signing)?;
        Ok(Self(Arc::new(NoiseKeyInner {
            pair: Arc::new(pair),
            identity_key: identity.public().encode_protobuf(),
            identity_sig,
            verified: Mutex::default(),
        })))
    }

    /// Checks `payload` against the remote's static key, as
    /// [`HandshakePayload::verify`] does, skipping the signature check for
    /// an identity verified before with these exact bytes.
    fn verify(
        &self,
        payload: &HandshakePayload,
        remote_static: &[u8],
    ) -> Result<PublicKey, IdentityCheckError> {
        let Ok(remote_static) = <[u8; KEY_LEN]>::try_from(remote_static) else {
            return payload.verify(remote_static);
        };
        let lock = || self.0.verified.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(public_key) = lock().get(&remote_static, payload) {
            return Ok(public_key);
        }
        let public_key = payload.verify(&remote_static)?;
        lock().insert(remote_static, payload, &public_key);
        Ok(public_key)
    }

    /// The X25519 static public key the remote will see.
    pub fn public(&self) -> &[u8; KEY_LEN] {
        self.0.pair.public()
    }
}

impl fmt::Debug for NoiseKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NoiseKey").field("public", &self.public()).finish_non_exhaustive()
    }
}

/// The parsed [`PROTOCOL_NAME`], once per process.
fn params() -> Result<snow::params::NoiseParams, HandshakeError> {
    static PARAMS: OnceLock<Option<snow::params::NoiseParams>> = OnceLock::new();
    PARAMS
        .get_or_init(|| PROTOCOL_NAME.parse().ok())
        .clone()
        .ok_or(HandshakeError::Internal { reason: "noise protocol name does not parse" })
}

/// One side of a `Noise_XX_25519_ChaChaPoly_SHA256` handshake with the
/// libp2p payload, without I/O.
///
/// # Call protocol
///
/// 1. Create it with [`initiator`](Self::initiator) or
///    [`responder`](Self::responder).
/// 2. Loop:
///    * send every frame [`poll_transmit`](Self::poll_transmit) returns;
///    * stop when [`is_finished`](Self::is_finished);
///    * otherwise pass the received bytes to
///      [`handle_input`](Self::handle_input), drop the bytes it consumed,
///      and read more from the wire when it consumed nothing.
/// 3. [`into_established`](Self::into_established). Bytes after the last
///    handshake frame (the initiator may pipeline transport frames behind
///    message 3) belong to the transport phase.
///
/// After any error the handshake is dead: close the connection.
pub struct Handshake {
    noise: Box<snow::HandshakeState>,
    key: NoiseKey,
    role: Role,
    state: State,
    /// The encoded payload we send in message 2 or 3.
    local_payload: Vec<u8>,
    local_muxers: Vec<String>,
    expected: Option<PeerId>,
    transmit: Option<Vec<u8>>,
    remote: Option<Remote>,
}

impl Handshake {
    /// The dialer's side. The remote must prove it is `expected` (if given);
    /// `muxers`, in order of preference, are offered in message 3 (none:
    /// no extension is sent). Message 1 is queued at once.
    ///
    /// This makes a fresh static key (a key generation and a signature); a
    /// node that handshakes often should make one [`NoiseKey`] and use
    /// [`initiator_with_key`](Self::initiator_with_key).
    pub fn initiator(
        identity: &Keypair,
        expected: Option<PeerId>,
        muxers: &[String],
    ) -> Result<Self, HandshakeError> {
        Self::initiator_with_key(&NoiseKey::new(identity)?, expected, muxers)
    }

    /// [`initiator`](Self::initiator) with the node's static key `key`.
    pub fn initiator_with_key(
        key: &NoiseKey,
        expected: Option<PeerId>,
        muxers: &[String],
    ) -> Result<Self, HandshakeError> {
        let mut hs = Self::new(Role::Initiator, key, expected, muxers)?;
        hs.write_message()?;
        hs.state = State::AwaitMsg2;
        Ok(hs)
    }

    /// The listener's side; `muxers` are listed in message 2 (none: no
    /// extension is sent). Makes a fresh static key, as
    /// [`initiator`](Self::initiator) does.
    pub fn responder(identity: &Keypair, muxers: &[String]) -> Result<Self, HandshakeError> {
        Self::responder_with_key(&NoiseKey::new(identity)?, muxers)
    }

    /// [`responder`](Self::responder) with the node's static key `key`.
    pub fn responder_with_key(key: &NoiseKey, muxers: &[String]) -> Result<Self, HandshakeError> {
        Self::new(Role::Responder, key, None, muxers)
    }

    fn new(
        role: Role,
        key: &NoiseKey,
        expected: Option<PeerId>,
        muxers: &[String],
    ) -> Result<Self, HandshakeError> {
        let handle = key.clone();
        let key = &*key.0;
        let resolver = Resolver::new(Some(key.pair.clone()));
        let builder = snow::Builder::with_resolver(params()?, Box::new(resolver));
        let builder = builder.local_private_key(key.pair.private()).map_err(from_snow)?;
        let noise = match role {
            Role::Initiator => builder.build_initiator(),
            Role::Responder => builder.build_responder(),
        }
        .map_err(from_snow)?;

        let payload = HandshakePayload {
            identity_key: key.identity_key.clone(),
            identity_sig: key.identity_sig.clone(),
            extensions: (!muxers.is_empty())
                .then(|| NoiseExtensions { webtransport_certhashes: vec![], stream_muxers: muxers.to_vec() }),
        };
        Ok(Self {
            noise: Box::new(noise),
            key: handle,
            role,
            state: State::AwaitMsg1,
            local_payload: payload.encode(),
            local_muxers: muxers.to_vec(),
            expected,
            transmit: None,
            remote: None,
        })
    }

    /// This side's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Whether [`handle_input`](Self::handle_input) expects a frame now.
    pub fn wants_input(&self) -> bool {
        matches!(self.state, State::AwaitMsg1 | State::AwaitMsg2 | State::AwaitMsg3)
            && self.transmit.is_none()
    }

    /// Whether the handshake succeeded and its last message was taken by
    /// [`poll_transmit`](Self::poll_transmit).
    pub fn is_finished(&self) -> bool {
        self.state == State::Done && self.transmit.is_none()
    }

    /// The next frame to send (length prefix included), if any.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmit.take()
    }

    /// Consumes at most one handshake frame from the front of `input` and
    /// returns how many bytes it used: 0 if `input` does not yet hold a
    /// whole frame, or if no frame is expected right now (a frame is queued
    /// for [`poll_transmit`](Self::poll_transmit), or the handshake is
    /// over).
    ///
    /// # Errors
    ///
    /// Any [`HandshakeError`]; the handshake is then dead.
    pub fn handle_input(&mut self, input: &[u8]) -> Result<usize, HandshakeError> {
        if !self.wants_input() {
            return Ok(0);
        }
        let Some(len) = decode_frame_header(input) else { return Ok(0) };
        let Some(message) = input.get(FRAME_HEADER_LEN..FRAME_HEADER_LEN + len) else { return Ok(0) };
        match self.handle_message(message) {
            Ok(()) => Ok(FRAME_HEADER_LEN + len),
            Err(err) => {
                self.state = State::Failed;
                self.transmit = None;
                Err(err)
            }
        }
    }

    fn handle_message(&mut self, message: &[u8]) -> Result<(), HandshakeError> {
        // The payload is never longer than the message that carries it.
        let mut payload = vec![0u8; message.len()];
        let n = self.noise.read_message(message, &mut payload).map_err(from_snow)?;
        match self.state {
            State::AwaitMsg1 => {
                // `-> e`: any payload is unencrypted and must be ignored.
                self.write_message()?;
                self.state = State::AwaitMsg3;
            }
            State::AwaitMsg2 => {
                let remote = self.authenticate(&payload[..n])?;
                self.remote = Some(remote);
                self.write_message()?;
                self.state = State::Done;
            }
            State::AwaitMsg3 => {
                let remote = self.authenticate(&payload[..n])?;
                self.remote = Some(remote);
                self.state = State::Done;
            }
            // `handle_input` checks `wants_input` first.
            State::Done | State::Failed => {
                return Err(HandshakeError::Internal { reason: "no handshake message expected" })
            }
        }
        Ok(())
    }

    /// Verifies the remote's payload against the static key it just sent,
    /// checks the expected peer and agrees on a muxer.
    fn authenticate(&self, payload: &[u8]) -> Result<Remote, HandshakeError> {
        let payload = HandshakePayload::decode(payload)?;
        let remote_static = self
            .noise
            .get_remote_static()
            .ok_or(HandshakeError::Internal { reason: "remote static key missing" })?;
        let public_key = self.key.verify(&payload, remote_static)?;
        let peer_id = public_key.to_peer_id();
        if let Some(expected) = self.expected {
            if expected != peer_id {
                return Err(HandshakeError::PeerIdMismatch {
                    expected: Box::new(expected),
                    actual: Box::new(peer_id),
                });
            }
        }
        let muxer = match self.role {
            Role::Initiator => negotiate_muxer(&self.local_muxers, payload.stream_muxers()),
            Role::Responder => negotiate_muxer(payload.stream_muxers(), &self.local_muxers),
        }?;
        Ok(Remote { public_key, peer_id, muxer })
    }

    /// Writes our next message (with our payload in messages 2 and 3) into
    /// the transmit slot.
    fn write_message(&mut self) -> Result<(), HandshakeError> {
        let payload: &[u8] = match self.state {
            State::AwaitMsg1 if self.role == Role::Initiator => &[],
            _ => &self.local_payload,
        };
        // At most `e`, an encrypted `s` and the encrypted payload.
        let max = (2 * KEY_LEN + 2 * TAG_LEN + payload.len()).min(MAX_FRAME_LEN);
        let mut frame = vec![0u8; FRAME_HEADER_LEN + max];
        let len = self.noise.write_message(payload, &mut frame[FRAME_HEADER_LEN..]).map_err(from_snow)?;
        // snow never writes more than MAX_FRAME_LEN = u16::MAX bytes.
        frame[..FRAME_HEADER_LEN].copy_from_slice(&(len as u16).to_be_bytes());
        frame.truncate(FRAME_HEADER_LEN + len);
        self.transmit = Some(frame);
        Ok(())
    }

    /// The transport ciphers and the authenticated remote, once
    /// [`is_finished`](Self::is_finished); `None` before (or after a
    /// failure).
    pub fn into_established(mut self) -> Option<Established> {
        if !self.is_finished() {
            return None;
        }
        let remote = self.remote.take()?;
        // `Split()`: the first key encrypts initiator → responder.
        let (k1, k2) = self.noise.dangerously_get_raw_split();
        let (send, recv) = match self.role {
            Role::Initiator => (SendCipher::new(k1), RecvCipher::new(k2)),
            Role::Responder => (SendCipher::new(k2), RecvCipher::new(k1)),
        };
        Some(Established {
            send,
            recv,
            remote_public_key: remote.public_key,
            remote_peer_id: remote.peer_id,
            muxer: remote.muxer,
        })
    }
}

impl fmt::Debug for Handshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handshake")
            .field("role", &self.role)
            .field("state", &self.state)
            .field("local_muxers", &self.local_muxers)
            .field("expected", &self.expected)
            .field("transmit", &self.transmit.as_ref().map(Vec::len))
            .finish_non_exhaustive()
    }
}

/// Inlined muxer negotiation:
///
/// > The multiplexer to use is determined by picking the first item from
/// > the initiator's list that both parties support. [...] If there is no
/// > overlap between the multiplexers support by client and server, the
/// > handshake MUST fail.
///
/// A side that lists nothing (no extension) opts out: `Ok(None)`, and the
/// muxer is negotiated with multistream-select after the handshake.
///
/// (The spec's worked example, where the responder's preference wins,
/// contradicts the rule it illustrates; we follow the rule, as go-libp2p
/// does.)
pub fn negotiate_muxer(initiator: &[String], responder: &[String]) -> Result<Option<String>, HandshakeError> {
    if initiator.is_empty() || responder.is_empty() {
        return Ok(None);
    }
    match initiator.iter().find(|m| responder.contains(m)) {
        Some(muxer) => Ok(Some(muxer.clone())),
        None => Err(HandshakeError::NoCommonMuxer {
            initiator: initiator.to_vec(),
            responder: responder.to_vec(),
        }),
    }
}
