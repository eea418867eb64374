//! Handshake tests: both sides of our state machine against each other, and
//! against a raw `snow` peer that writes whatever payload a test wants.

use super::*;
use crate::identity::{ed25519_from_seed, generate, KeyType, Keypair, PeerId};
use proptest::prelude::*;

fn muxers(list: &[&str]) -> Vec<String> {
    list.iter().map(|m| m.to_string()).collect()
}

/// Ferries frames between the two sides until both finish or one fails.
fn run(
    mut initiator: Handshake,
    mut responder: Handshake,
) -> Result<(Established, Established), HandshakeError> {
    for _ in 0..4 {
        if let Some(frame) = initiator.poll_transmit() {
            assert_eq!(responder.handle_input(&frame)?, frame.len());
        }
        if let Some(frame) = responder.poll_transmit() {
            assert_eq!(initiator.handle_input(&frame)?, frame.len());
        }
    }
    assert!(initiator.is_finished() && responder.is_finished());
    Ok((initiator.into_established().unwrap(), responder.into_established().unwrap()))
}

fn handshake(
    a: &Keypair,
    b: &Keypair,
    a_muxers: &[&str],
    b_muxers: &[&str],
) -> Result<(Established, Established), HandshakeError> {
    run(
        Handshake::initiator(a, Some(b.public().to_peer_id()), &muxers(a_muxers))?,
        Handshake::responder(b, &muxers(b_muxers))?,
    )
}

fn check_channel(a: &mut Established, b: &mut Established) {
    for (tx, rx) in [(&mut a.send, &mut b.recv), (&mut b.send, &mut a.recv)] {
        for msg in [&b"first"[..], b"", &[0x5a; MAX_PLAINTEXT_LEN]] {
            let mut frame = Vec::new();
            tx.encrypt_frame(msg, &mut frame).unwrap();
            let mut plain = Vec::new();
            rx.decrypt_frame(&frame[2..], &mut plain).unwrap();
            assert_eq!(plain, msg);
        }
    }
}

#[test]
fn frame_sizes_of_an_ed25519_handshake() {
    let (a, b) = (ed25519_from_seed([1; 32]), ed25519_from_seed([2; 32]));
    let mut initiator = Handshake::initiator(&a, None, &[]).unwrap();
    let mut responder = Handshake::responder(&b, &[]).unwrap();
    let msg1 = initiator.poll_transmit().unwrap();
    // `-> e`: the 32-byte ephemeral key, no payload.
    assert_eq!(&msg1[..2], [0x00, 0x20]);
    assert_eq!(msg1.len(), 2 + 32);
    responder.handle_input(&msg1).unwrap();
    let msg2 = responder.poll_transmit().unwrap();
    // e (32) ‖ enc(s) (32 + 16) ‖ enc(payload) (36 + 2 + 64 + 2 + 16): key
    // protobuf 36 bytes, Ed25519 signature 64 bytes.
    let payload_len = 2 + 36 + 2 + 64;
    assert_eq!(msg2.len(), 2 + 32 + 48 + payload_len + 16);
    assert_eq!(decode_frame_header(&msg2), Some(msg2.len() - 2));
    initiator.handle_input(&msg2).unwrap();
    let msg3 = initiator.poll_transmit().unwrap();
    assert_eq!(msg3.len(), 2 + 48 + payload_len + 16);
}

#[test]
fn both_sides_authenticate_and_share_keys() {
    let (a, b) = (ed25519_from_seed([1; 32]), ed25519_from_seed([2; 32]));
    let (mut ia, mut ib) = handshake(&a, &b, &[], &[]).unwrap();
    assert_eq!(ia.remote_peer_id, b.public().to_peer_id());
    assert_eq!(ia.remote_public_key, b.public());
    assert_eq!(ib.remote_peer_id, a.public().to_peer_id());
    assert_eq!((ia.muxer.as_deref(), ib.muxer.as_deref()), (None, None));
    check_channel(&mut ia, &mut ib);
}

#[test]
fn every_identity_key_type() {
    let mut keys = vec![ed25519_from_seed([3; 32]), Keypair::generate_secp256k1(), Keypair::generate_ecdsa()];
    match generate(KeyType::RSA) {
        Ok(rsa) => keys.push(rsa),
        Err(err) => eprintln!("skipping RSA: {err}"),
    }
    for a in &keys {
        for b in &keys {
            let (mut ia, mut ib) = handshake(a, b, &["/yamux/1.0.0"], &["/yamux/1.0.0"])
                .unwrap_or_else(|e| panic!("{:?} -> {:?}: {e}", a.key_type(), b.key_type()));
            assert_eq!(ia.remote_public_key, b.public());
            assert_eq!(ib.remote_public_key, a.public());
            check_channel(&mut ia, &mut ib);
        }
    }
}

#[test]
fn inlined_muxer_negotiation() {
    let (a, b) = (ed25519_from_seed([1; 32]), ed25519_from_seed([2; 32]));
    let agreed = |x: &[&str], y: &[&str]| {
        let (ia, ib) = handshake(&a, &b, x, y).unwrap();
        assert_eq!(ia.muxer, ib.muxer, "both sides agree");
        ia.muxer
    };
    let (yamux, mplex) = ("/yamux/1.0.0", "/mplex/6.7.0");
    assert_eq!(agreed(&[yamux], &[yamux]).as_deref(), Some(yamux));
    // The initiator's preference wins.
    assert_eq!(agreed(&[yamux, mplex], &[mplex, yamux]).as_deref(), Some(yamux));
    assert_eq!(agreed(&[mplex, yamux], &[yamux, mplex]).as_deref(), Some(mplex));
    assert_eq!(agreed(&["/other", yamux], &[mplex, yamux]).as_deref(), Some(yamux));
    // A silent side (rust-libp2p) means multistream-select afterwards.
    assert_eq!(agreed(&[yamux], &[]), None);
    assert_eq!(agreed(&[], &[yamux]), None);
    assert_eq!(agreed(&[], &[]), None);
}

#[test]
fn no_common_muxer_fails_the_initiator_after_message_2() {
    let (a, b) = (ed25519_from_seed([1; 32]), ed25519_from_seed([2; 32]));
    let err = handshake(&a, &b, &["/yamux/1.0.0"], &["/mplex/6.7.0"]).unwrap_err();
    assert_eq!(
        err,
        HandshakeError::NoCommonMuxer {
            initiator: muxers(&["/yamux/1.0.0"]),
            responder: muxers(&["/mplex/6.7.0"])
        }
    );
    assert!(err.to_string().starts_with("no common stream muxer"));
    // The responder's side of the same check.
    assert_eq!(negotiate_muxer(&muxers(&["/yamux/1.0.0"]), &muxers(&["/mplex/6.7.0"])), Err(err));
}

#[test]
fn expected_peer_mismatch_names_both_ids() {
    let (a, b) = (ed25519_from_seed([1; 32]), ed25519_from_seed([2; 32]));
    let other = ed25519_from_seed([9; 32]).public().to_peer_id();
    let err =
        run(Handshake::initiator(&a, Some(other), &[]).unwrap(), Handshake::responder(&b, &[]).unwrap())
            .unwrap_err();
    assert_eq!(
        err,
        HandshakeError::PeerIdMismatch {
            expected: Box::new(other),
            actual: Box::new(b.public().to_peer_id())
        }
    );
    assert_eq!(err.to_string(), format!("expected peer {other}, remote is {}", b.public().to_peer_id()));
}

/// A responder built from raw `snow`, sending `payload(static_key)` in
/// message 2.
struct RawResponder {
    noise: snow::HandshakeState,
    static_public: Vec<u8>,
}

impl RawResponder {
    fn new() -> Self {
        let keys = snow::Builder::new(PROTOCOL_NAME.parse().unwrap()).generate_keypair().unwrap();
        Self::with_static_key(&keys.private)
    }

    /// A responder with the given static private key (a peer that keeps its
    /// static key across connections).
    fn with_static_key(private: &[u8]) -> Self {
        let builder = snow::Builder::new(PROTOCOL_NAME.parse().unwrap());
        let noise = builder.local_private_key(private).unwrap().build_responder().unwrap();
        let static_public = x25519_public(private);
        Self { noise, static_public }
    }

    /// Reads message 1 and returns message 2 (framed) carrying `payload`.
    fn respond(&mut self, msg1: &[u8], payload: &HandshakePayload) -> Vec<u8> {
        self.noise.read_message(&msg1[2..], &mut [0; 100]).unwrap();
        let mut frame = vec![0; 2 + MAX_FRAME_LEN];
        let n = self.noise.write_message(&payload.encode(), &mut frame[2..]).unwrap();
        frame[..2].copy_from_slice(&encode_frame_header(n).unwrap());
        frame.truncate(2 + n);
        frame
    }

    fn signed_payload(&self, identity: &Keypair) -> HandshakePayload {
        HandshakePayload {
            identity_key: identity.public().encode_protobuf(),
            identity_sig: identity.sign(&static_key_message(&self.static_public)).unwrap(),
            extensions: None,
        }
    }
}

fn initiator_against_raw(
    payload: impl FnOnce(&RawResponder) -> HandshakePayload,
) -> Result<(), HandshakeError> {
    let mut initiator = Handshake::initiator(&ed25519_from_seed([1; 32]), None, &[]).unwrap();
    let mut raw = RawResponder::new();
    let payload = payload(&raw);
    let msg2 = raw.respond(&initiator.poll_transmit().unwrap(), &payload);
    initiator.handle_input(&msg2).map(|_| ())
}

#[test]
fn raw_snow_peer_with_a_good_payload_is_accepted() {
    let b = ed25519_from_seed([2; 32]);
    assert_eq!(initiator_against_raw(|raw| raw.signed_payload(&b)), Ok(()));
}

#[test]
fn wrong_signature_is_rejected() {
    let b = ed25519_from_seed([2; 32]);
    let peer_id = Box::new(b.public().to_peer_id());
    // Signed over some other static key (a replayed payload).
    let err = initiator_against_raw(|_| HandshakePayload {
        identity_key: b.public().encode_protobuf(),
        identity_sig: b.sign(&static_key_message(&[0x42; 32])).unwrap(),
        extensions: None,
    });
    assert_eq!(err, Err(HandshakeError::BadSignature { peer_id: peer_id.clone() }));
    // A corrupted signature.
    let err = initiator_against_raw(|raw| {
        let mut p = raw.signed_payload(&b);
        p.identity_sig[10] ^= 1;
        p
    });
    assert_eq!(err, Err(HandshakeError::BadSignature { peer_id: peer_id.clone() }));
    // Signed by a different key than the one presented.
    let err = initiator_against_raw(|raw| HandshakePayload {
        identity_sig: raw.signed_payload(&ed25519_from_seed([3; 32])).identity_sig,
        ..raw.signed_payload(&b)
    });
    assert_eq!(err, Err(HandshakeError::BadSignature { peer_id: peer_id.clone() }));
}

#[test]
fn bad_payloads_are_typed_errors() {
    let b = ed25519_from_seed([2; 32]);
    let err = initiator_against_raw(|_| HandshakePayload::default());
    assert_eq!(err, Err(HandshakeError::MissingIdentityKey));
    let err = initiator_against_raw(|raw| HandshakePayload {
        identity_key: vec![0x08, 0x04, 0x12, 0x01, 0x00],
        ..raw.signed_payload(&b)
    });
    assert_eq!(err, Err(HandshakeError::UnsupportedKey { key_type: 4 }));
    let err = initiator_against_raw(|raw| HandshakePayload {
        identity_key: vec![0x08, 0x01, 0x12, 0x01, 0x00],
        ..raw.signed_payload(&b)
    });
    assert_eq!(err, Err(HandshakeError::InvalidKey));

    // A payload that is not a protobuf: written raw through snow.
    let mut initiator = Handshake::initiator(&ed25519_from_seed([1; 32]), None, &[]).unwrap();
    let mut raw = RawResponder::new();
    raw.noise.read_message(&initiator.poll_transmit().unwrap()[2..], &mut [0; 100]).unwrap();
    let mut frame = vec![0; 2 + 200];
    let n = raw.noise.write_message(&[0x0a, 0x7f, 0x00], &mut frame[2..]).unwrap();
    frame[..2].copy_from_slice(&encode_frame_header(n).unwrap());
    frame.truncate(2 + n);
    assert!(matches!(initiator.handle_input(&frame), Err(HandshakeError::MalformedPayload(_))));
}

/// Our ciphers produce exactly the frames snow's own `TransportState`
/// accepts and produces (snow is tested against the Noise vectors).
#[test]
fn transport_frames_match_snow() {
    let b = ed25519_from_seed([2; 32]);
    let mut initiator = Handshake::initiator(&ed25519_from_seed([1; 32]), None, &[]).unwrap();
    let mut raw = RawResponder::new();
    let payload = raw.signed_payload(&b);
    let msg2 = raw.respond(&initiator.poll_transmit().unwrap(), &payload);
    initiator.handle_input(&msg2).unwrap();
    let msg3 = initiator.poll_transmit().unwrap();
    raw.noise.read_message(&msg3[2..], &mut vec![0; MAX_FRAME_LEN]).unwrap();
    let mut snow = raw.noise.into_transport_mode().unwrap();
    let mut ours = initiator.into_established().unwrap();

    for msg in [&b"one"[..], b"", &[7; 1000], &[9; MAX_PLAINTEXT_LEN]] {
        let mut frame = Vec::new();
        ours.send.encrypt_frame(msg, &mut frame).unwrap();
        let mut plain = vec![0; MAX_FRAME_LEN];
        let n = snow.read_message(&frame[2..], &mut plain).unwrap();
        assert_eq!(&plain[..n], msg);

        let mut message = vec![0; MAX_FRAME_LEN];
        let n = snow.write_message(msg, &mut message).unwrap();
        assert_eq!(ours.recv.open_in_place(&mut message[..n]).unwrap(), msg);
    }
}

#[test]
fn garbage_instead_of_message_1() {
    let b = ed25519_from_seed([2; 32]);
    // Too short for an ephemeral key.
    let mut responder = Handshake::responder(&b, &[]).unwrap();
    assert_eq!(responder.handle_input(&[0x00, 0x03, 1, 2, 3]), Err(HandshakeError::MalformedMessage));
    assert!(!responder.wants_input() && !responder.is_finished());
    assert_eq!(responder.handle_input(&[0x00, 0x20]), Ok(0), "dead after an error");
    // An HTTP request: its first two bytes announce an 18 245-byte frame,
    // so the handshake just waits for more (the driver's timeout ends it).
    let mut responder = Handshake::responder(&b, &[]).unwrap();
    assert_eq!(responder.handle_input(b"GET / HTTP/1.1\r\n\r\n"), Ok(0));
}

#[test]
fn garbage_instead_of_message_2_or_3() {
    let (a, b) = (ed25519_from_seed([1; 32]), ed25519_from_seed([2; 32]));
    let mut initiator = Handshake::initiator(&a, None, &[]).unwrap();
    let _ = initiator.poll_transmit();
    let mut garbage = vec![0x00, 200];
    garbage.extend([0x11; 200]);
    assert_eq!(initiator.handle_input(&garbage), Err(HandshakeError::Decrypt));

    let mut initiator = Handshake::initiator(&a, None, &[]).unwrap();
    let mut responder = Handshake::responder(&b, &[]).unwrap();
    responder.handle_input(&initiator.poll_transmit().unwrap()).unwrap();
    let _ = responder.poll_transmit();
    assert_eq!(responder.handle_input(&garbage), Err(HandshakeError::Decrypt));
}

#[test]
fn partial_input_and_pipelined_transport_frames() {
    let (a, b) = (ed25519_from_seed([1; 32]), ed25519_from_seed([2; 32]));
    let mut initiator = Handshake::initiator(&a, None, &[]).unwrap();
    let mut responder = Handshake::responder(&b, &[]).unwrap();
    let msg1 = initiator.poll_transmit().unwrap();
    assert_eq!(responder.handle_input(&msg1[..1]), Ok(0));
    assert_eq!(responder.handle_input(&msg1[..33]), Ok(0));
    assert_eq!(responder.handle_input(&msg1), Ok(34));
    // Message 2 is queued: no input is taken until it is sent.
    assert!(!responder.wants_input());
    assert_eq!(responder.handle_input(&msg1), Ok(0));
    let msg2 = responder.poll_transmit().unwrap();
    initiator.handle_input(&msg2).unwrap();
    let mut flight = initiator.poll_transmit().unwrap();
    let msg3_len = flight.len();
    let mut dialer = initiator.into_established().unwrap();
    dialer.send.encrypt_frame(b"early data", &mut flight).unwrap();
    assert_eq!(responder.handle_input(&flight), Ok(msg3_len));
    assert!(responder.is_finished());
    assert_eq!(responder.handle_input(&flight[msg3_len..]), Ok(0), "transport bytes are left alone");
    let mut listener = responder.into_established().unwrap();
    let mut plain = Vec::new();
    listener.recv.decrypt_frame(&flight[msg3_len + 2..], &mut plain).unwrap();
    assert_eq!(plain, b"early data");
}

#[test]
fn not_finished_gives_nothing() {
    let hs = Handshake::responder(&ed25519_from_seed([2; 32]), &[]).unwrap();
    assert!(hs.into_established().is_none());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn arbitrary_frames_never_panic_the_handshake(
        stage in 0u8..3,
        frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..4),
    ) {
        let (a, b) = (ed25519_from_seed([1; 32]), ed25519_from_seed([2; 32]));
        let mut initiator = Handshake::initiator(&a, Some(PeerId::random()), &[]).unwrap();
        let mut responder = Handshake::responder(&b, &muxers(&["/yamux/1.0.0"])).unwrap();
        let msg1 = initiator.poll_transmit().unwrap();
        let target = match stage {
            0 => &mut responder,
            1 => &mut initiator,
            _ => {
                responder.handle_input(&msg1).unwrap();
                let _ = responder.poll_transmit();
                &mut responder
            }
        };
        for body in frames {
            let mut frame = encode_frame_header(body.len()).unwrap().to_vec();
            frame.extend(body);
            match target.handle_input(&frame) {
                Ok(n) => prop_assert!(n == 0 || n == frame.len()),
                Err(_) => break,
            }
            let _ = target.poll_transmit();
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_handshake(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut responder = Handshake::responder(&ed25519_from_seed([2; 32]), &[]).unwrap();
        if let Ok(n) = responder.handle_input(&bytes) {
            prop_assert!(n <= bytes.len());
        }
    }
}

/// Sealing in place against snow's `TransportState::write_message` (which
/// copies the plaintext into the output first).
/// `cargo test --release -p peerswarm-proto cipher_throughput -- --ignored --nocapture`
#[test]
#[ignore = "measurement, run in release mode"]
fn cipher_throughput() {
    const FRAMES: usize = 8 * 1024; // 512 MiB
    let mib = (FRAMES * MAX_PLAINTEXT_LEN) as f64 / (1 << 20) as f64;
    let rate = |started: std::time::Instant| mib / started.elapsed().as_secs_f64();
    let (a, b) = (ed25519_from_seed([1; 32]), ed25519_from_seed([2; 32]));
    let (mut x, _) = handshake(&a, &b, &[], &[]).unwrap();

    let mut frames = vec![vec![0x5a; 2 + MAX_FRAME_LEN]; 16];
    let started = std::time::Instant::now();
    for i in 0..FRAMES {
        x.send.seal_frame(&mut frames[i % 16]).unwrap();
    }
    let seal = rate(started);

    let mut raw = RawResponder::new();
    let mut initiator = Handshake::initiator(&a, None, &[]).unwrap();
    let payload = raw.signed_payload(&b);
    let msg2 = raw.respond(&initiator.poll_transmit().unwrap(), &payload);
    initiator.handle_input(&msg2).unwrap();
    raw.noise.read_message(&initiator.poll_transmit().unwrap()[2..], &mut vec![0; MAX_FRAME_LEN]).unwrap();
    let mut snow = raw.noise.into_transport_mode().unwrap();
    let plaintext = vec![0x5a; MAX_PLAINTEXT_LEN];
    let mut messages = vec![vec![0; MAX_FRAME_LEN]; 16];
    let started = std::time::Instant::now();
    for i in 0..FRAMES {
        snow.write_message(&plaintext, &mut messages[i % 16]).unwrap();
    }
    let snow_seal = rate(started);
    println!("seal in place: {seal:.0} MiB/s; snow write_message: {snow_seal:.0} MiB/s");
}

/// One [`NoiseKey`] (one static key, signed once) serves many handshakes,
/// as initiator and as responder; each still has fresh ephemeral keys.
#[test]
fn one_noise_key_for_many_handshakes() {
    let (a, b) = (ed25519_from_seed([1; 32]), ed25519_from_seed([2; 32]));
    let key = NoiseKey::new(&a).unwrap();
    let mut first_messages = Vec::new();
    for _ in 0..3 {
        let b_key = NoiseKey::new(&b).unwrap();
        let initiator = Handshake::initiator_with_key(&key, Some(b.public().to_peer_id()), &[]).unwrap();
        let responder = Handshake::responder_with_key(&b_key, &[]).unwrap();
        let (mut x, mut y) = run(initiator, responder).unwrap();
        assert_eq!(y.remote_peer_id, a.public().to_peer_id());
        check_channel(&mut x, &mut y);
        let responder = Handshake::responder_with_key(&key, &muxers(&["/yamux/1.0.0"])).unwrap();
        let initiator =
            Handshake::initiator(&b, Some(a.public().to_peer_id()), &muxers(&["/yamux/1.0.0"])).unwrap();
        let (mut x, mut y) = run(initiator, responder).unwrap();
        assert_eq!((x.remote_peer_id, y.muxer.as_deref()), (a.public().to_peer_id(), Some("/yamux/1.0.0")));
        check_channel(&mut x, &mut y);
        let mut hs = Handshake::initiator_with_key(&key, None, &[]).unwrap();
        first_messages.push(hs.poll_transmit().unwrap());
    }
    // Fresh ephemeral keys every time.
    first_messages.dedup();
    assert_eq!(first_messages.len(), 3);
}

fn x25519_public(private: &[u8]) -> Vec<u8> {
    use snow::resolvers::{CryptoResolver, DefaultResolver};
    let mut dh = DefaultResolver.resolve_dh(&snow::params::DHChoice::Curve25519).unwrap();
    dh.set(private);
    dh.pubkey().to_vec()
}

/// A [`NoiseKey`] remembers the remote identities it verified, but only
/// byte-for-byte: a reconnecting peer with the same static key, identity
/// key and signature is accepted without a second check, and anything else
/// over the same static key is verified in full.
#[test]
fn verified_identities_are_remembered_exactly() {
    let (b, c) = (ed25519_from_seed([2; 32]), ed25519_from_seed([3; 32]));
    let key = NoiseKey::new(&ed25519_from_seed([1; 32])).unwrap();
    let remote_static = [0x24; 32];
    let run = |payload: &dyn Fn(&RawResponder) -> HandshakePayload| {
        let mut initiator = Handshake::initiator_with_key(&key, None, &[]).unwrap();
        let mut raw = RawResponder::with_static_key(&remote_static);
        let payload = payload(&raw);
        let msg2 = raw.respond(&initiator.poll_transmit().unwrap(), &payload);
        initiator.handle_input(&msg2)?;
        initiator.poll_transmit().unwrap();
        Ok(initiator.into_established().unwrap().remote_peer_id)
    };
    let b_id = b.public().to_peer_id();
    for _ in 0..2 {
        assert_eq!(run(&|raw| raw.signed_payload(&b)), Ok(b_id));
    }
    let corrupted = |raw: &RawResponder| {
        let mut p = raw.signed_payload(&b);
        p.identity_sig[10] ^= 1;
        p
    };
    assert_eq!(run(&corrupted), Err(HandshakeError::BadSignature { peer_id: Box::new(b_id) }));
    // Another identity's signature over the same static key.
    let c_sig = |raw: &RawResponder| HandshakePayload {
        identity_sig: raw.signed_payload(&c).identity_sig,
        ..raw.signed_payload(&b)
    };
    assert_eq!(run(&c_sig), Err(HandshakeError::BadSignature { peer_id: Box::new(b_id) }));
    // Another identity that really signed this static key is checked, and
    // accepted as itself.
    assert_eq!(run(&|raw| raw.signed_payload(&c)), Ok(c.public().to_peer_id()));
    assert_eq!(run(&|raw| raw.signed_payload(&b)), Ok(b_id));
}
