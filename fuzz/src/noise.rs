//! noise-libp2p: the handshake payload codec and the handshake state
//! machine, alone and against a raw `snow` peer.

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use peerswarm_proto::identity::{ed25519_from_seed, Keypair};
use peerswarm_proto::noise::{
    static_key_message, Established, Handshake, HandshakePayload, NoiseExtensions, FRAME_HEADER_LEN,
    MAX_CERTHASHES, MAX_FRAME_LEN, MAX_PLAINTEXT_LEN, MAX_STREAM_MUXERS, PROTOCOL_NAME,
};

/// `HandshakePayload::decode` on arbitrary bytes: the entry caps hold, a
/// decoded payload survives encode/decode unchanged, and verifying it
/// against some static key never panics (it decodes the identity key: RSA,
/// Ed25519, secp256k1, ECDSA or garbage).
pub fn noise_payload(data: &[u8]) {
    let Ok(payload) = HandshakePayload::decode(data) else { return };
    if let Some(ext) = &payload.extensions {
        assert!(ext.stream_muxers.len() <= MAX_STREAM_MUXERS);
        assert!(ext.webtransport_certhashes.len() <= MAX_CERTHASHES);
    }
    let again = HandshakePayload::decode(&payload.encode()).expect("our encoding decodes");
    assert_eq!(again, payload);
    let static_key = data.get(..32).unwrap_or(&[0; 32]);
    let _ = payload.verify(static_key);
}

fn local_identity() -> &'static Keypair {
    static KEY: OnceLock<Keypair> = OnceLock::new();
    KEY.get_or_init(|| ed25519_from_seed([1; 32]))
}

/// The muxers our side lists.
#[derive(Arbitrary, Debug)]
pub enum Muxers {
    /// None: no extensions sent.
    None,
    /// `/yamux/1.0.0`.
    Yamux,
    /// `/mplex/6.7.0`, `/yamux/1.0.0`.
    Both,
}

impl Muxers {
    fn list(&self) -> Vec<String> {
        match self {
            Muxers::None => vec![],
            Muxers::Yamux => vec!["/yamux/1.0.0".into()],
            Muxers::Both => vec!["/mplex/6.7.0".into(), "/yamux/1.0.0".into()],
        }
    }
}

/// The payload a raw peer sends in its authenticated message.
#[derive(Arbitrary, Debug)]
pub enum Payload {
    /// Arbitrary bytes.
    Raw(Vec<u8>),
    /// A well-formed payload signed by the Ed25519 key of seed `[seed; 32]`
    /// over the raw peer's real static key, possibly damaged.
    Signed {
        /// The identity's seed byte.
        seed: u8,
        /// Flip one bit of the signature (at this index, if in range).
        flip_sig: Option<u8>,
        /// Replace the identity key by these bytes.
        key: Option<Vec<u8>>,
        /// The muxers listed (any extensions sent if `Some`).
        muxers: Option<Vec<String>>,
        /// WebTransport certificate hashes.
        certhashes: Vec<Vec<u8>>,
        /// Appended after the encoding: more fields, or garbage.
        trailer: Vec<u8>,
    },
}

impl Payload {
    fn encode(&self, static_public: &[u8]) -> Vec<u8> {
        match self {
            Payload::Raw(bytes) => bytes.clone(),
            Payload::Signed { seed, flip_sig, key, muxers, certhashes, trailer } => {
                let identity = ed25519_from_seed([*seed; 32]);
                let mut identity_sig =
                    identity.sign(&static_key_message(static_public)).expect("ed25519 signs");
                if let Some(i) = flip_sig.map(usize::from).filter(|&i| i < identity_sig.len()) {
                    identity_sig[i] ^= 1;
                }
                let payload = HandshakePayload {
                    identity_key: key.clone().unwrap_or_else(|| identity.public().encode_protobuf()),
                    identity_sig,
                    extensions: muxers.as_ref().map(|m| NoiseExtensions {
                        webtransport_certhashes: certhashes.clone(),
                        stream_muxers: m.clone(),
                    }),
                };
                let mut out = payload.encode();
                out.extend_from_slice(trailer);
                out
            }
        }
    }
}

/// A handshake scenario.
#[derive(Arbitrary, Debug)]
pub enum HandshakeInput {
    /// Our responder fed arbitrary bytes in arbitrary chunks (any first
    /// message of at least 32 bytes is a valid `-> e`, so the third message
    /// is reached).
    Responder {
        /// Our muxers.
        muxers: Muxers,
        /// What the initiator sends.
        chunks: Vec<Vec<u8>>,
    },
    /// Our initiator fed arbitrary bytes in arbitrary chunks.
    Initiator {
        /// Our muxers.
        muxers: Muxers,
        /// Expect the peer of this seed.
        expect: Option<u8>,
        /// What the responder sends.
        chunks: Vec<Vec<u8>>,
    },
    /// Our initiator against a raw snow responder whose message 2 carries
    /// `payload`, then transport frames both ways.
    InitiatorVsRaw {
        /// Our muxers.
        muxers: Muxers,
        /// Expect the peer of this seed.
        expect: Option<u8>,
        /// The raw responder's payload.
        payload: Payload,
        /// Transport phase.
        transport: Transport,
    },
    /// Our responder against a raw snow initiator whose message 1 carries
    /// `early` (to be ignored) and message 3 `payload`.
    ResponderVsRaw {
        /// Our muxers.
        muxers: Muxers,
        /// Unencrypted payload of message 1.
        early: Vec<u8>,
        /// The raw initiator's payload.
        payload: Payload,
        /// Transport phase.
        transport: Transport,
    },
}

/// What happens after a successful handshake.
#[derive(Arbitrary, Debug)]
pub struct Transport {
    /// Plaintexts the raw peer sends (checked to arrive intact).
    pub from_raw: Vec<Vec<u8>>,
    /// Plaintexts we send (checked to arrive intact at the raw peer).
    pub to_raw: Vec<Vec<u8>>,
    /// Arbitrary Noise messages fed to our receiver at the end.
    pub garbage: Vec<Vec<u8>>,
}

/// Our handshake fed `input` in `chunks`; returns whether it failed.
/// Checks the call protocol: consumption within the input, one frame at a
/// time, nothing consumed, sent or handed over after a failure.
fn feed(hs: &mut Handshake, chunks: impl IntoIterator<Item = Vec<u8>>, sent: &mut Vec<Vec<u8>>) -> bool {
    let mut buf = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(&chunk);
        loop {
            if let Some(frame) = hs.poll_transmit() {
                assert!(frame.len() >= FRAME_HEADER_LEN && frame.len() <= FRAME_HEADER_LEN + MAX_FRAME_LEN);
                sent.push(frame);
            }
            match hs.handle_input(&buf) {
                Ok(0) => break,
                Ok(used) => {
                    assert!(used <= buf.len());
                    buf.drain(..used);
                }
                Err(_) => {
                    assert_eq!(hs.handle_input(&buf), Ok(0), "input consumed after a failure");
                    assert!(hs.poll_transmit().is_none(), "frame sent after a failure");
                    assert!(!hs.is_finished() && !hs.wants_input());
                    return true;
                }
            }
        }
    }
    if let Some(frame) = hs.poll_transmit() {
        sent.push(frame);
    }
    false
}

/// A raw snow peer with a fresh static key, and that key's public half.
fn raw_peer(initiator: bool) -> (snow::HandshakeState, Vec<u8>) {
    let builder = snow::Builder::new(PROTOCOL_NAME.parse().expect("valid noise params"));
    let keys = builder.generate_keypair().expect("x25519 keygen");
    let builder = builder.local_private_key(&keys.private).expect("32-byte key");
    let hs = if initiator { builder.build_initiator() } else { builder.build_responder() };
    (hs.expect("raw peer"), keys.public)
}

fn frame(noise_message: &[u8]) -> Vec<u8> {
    let mut out = (noise_message.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(noise_message);
    out
}

/// Writes a handshake message carrying `payload` (cut to what fits).
fn raw_write(hs: &mut snow::HandshakeState, payload: &[u8]) -> Vec<u8> {
    let mut buf = vec![0; MAX_FRAME_LEN];
    let payload = &payload[..payload.len().min(MAX_FRAME_LEN - 200)];
    let n = hs.write_message(payload, &mut buf).expect("raw write");
    frame(&buf[..n])
}

/// Transport frames both ways between our side and a raw snow peer.
fn transport(ours: Established, raw: snow::HandshakeState, t: Transport) {
    let Established { mut send, mut recv, .. } = ours;
    let mut raw = raw.into_transport_mode().expect("raw handshake finished");
    let mut buf = vec![0; MAX_FRAME_LEN];
    for plaintext in &t.from_raw {
        let plaintext = &plaintext[..plaintext.len().min(MAX_PLAINTEXT_LEN)];
        let n = raw.write_message(plaintext, &mut buf).expect("raw encrypt");
        let mut out = Vec::new();
        recv.decrypt_frame(&buf[..n], &mut out).expect("raw frame decrypts");
        assert_eq!(out, plaintext);
    }
    for plaintext in &t.to_raw {
        let mut out = Vec::new();
        if send.encrypt_frame(plaintext, &mut out).is_err() {
            assert!(plaintext.len() > MAX_PLAINTEXT_LEN);
            continue;
        }
        let n = raw.read_message(&out[FRAME_HEADER_LEN..], &mut buf).expect("our frame decrypts");
        assert_eq!(&buf[..n], &plaintext[..]);
    }
    for message in &t.garbage {
        let mut out = vec![7];
        if recv.decrypt_frame(message, &mut out).is_err() {
            assert_eq!(out, [7], "output changed on error");
        }
    }
}

/// The handshake under the scenarios of [`HandshakeInput`]: never panics,
/// keeps its call protocol, and a handshake that completes against a raw
/// peer yields ciphers that interoperate with it.
pub fn noise_handshake(input: HandshakeInput) {
    let me = local_identity();
    let mut sent = Vec::new();
    match input {
        HandshakeInput::Responder { muxers, chunks } => {
            let mut hs = Handshake::responder(me, &muxers.list()).expect("responder");
            feed(&mut hs, chunks, &mut sent);
        }
        HandshakeInput::Initiator { muxers, expect, chunks } => {
            let expect = expect.map(|s| ed25519_from_seed([s; 32]).public().to_peer_id());
            let mut hs = Handshake::initiator(me, expect, &muxers.list()).expect("initiator");
            feed(&mut hs, chunks, &mut sent);
        }
        HandshakeInput::InitiatorVsRaw { muxers, expect, payload, transport: t } => {
            let expect = expect.map(|s| ed25519_from_seed([s; 32]).public().to_peer_id());
            let mut hs = Handshake::initiator(me, expect, &muxers.list()).expect("initiator");
            let (mut raw, raw_static) = raw_peer(false);
            let msg1 = hs.poll_transmit().expect("message 1 queued at once");
            raw.read_message(&msg1[FRAME_HEADER_LEN..], &mut vec![0; MAX_FRAME_LEN])
                .expect("valid message 1");
            let msg2 = raw_write(&mut raw, &payload.encode(&raw_static));
            if feed(&mut hs, [msg2], &mut sent) {
                return;
            }
            let msg3 = sent.pop().expect("message 3 after a good message 2");
            let mut payload3 = vec![0; MAX_FRAME_LEN];
            let n = raw.read_message(&msg3[FRAME_HEADER_LEN..], &mut payload3).expect("our message 3");
            let ours = HandshakePayload::decode(&payload3[..n]).expect("our payload");
            ours.verify(raw.get_remote_static().expect("static key")).expect("our signature");
            assert!(hs.is_finished());
            transport(hs.into_established().expect("finished"), raw, t);
        }
        HandshakeInput::ResponderVsRaw { muxers, early, payload, transport: t } => {
            let mut hs = Handshake::responder(me, &muxers.list()).expect("responder");
            let (mut raw, raw_static) = raw_peer(true);
            let msg1 = raw_write(&mut raw, &early);
            if feed(&mut hs, [msg1], &mut sent) {
                return;
            }
            let msg2 = sent.pop().expect("message 2 after message 1");
            let mut payload2 = vec![0; MAX_FRAME_LEN];
            let n = raw.read_message(&msg2[FRAME_HEADER_LEN..], &mut payload2).expect("our message 2");
            HandshakePayload::decode(&payload2[..n]).expect("our payload");
            let msg3 = raw_write(&mut raw, &payload.encode(&raw_static));
            if feed(&mut hs, [msg3], &mut sent) {
                return;
            }
            assert!(hs.is_finished());
            transport(hs.into_established().expect("finished"), raw, t);
        }
    }
}
