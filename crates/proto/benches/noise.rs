//! Noise micro-benchmarks: transport frames (seal and open, next to ring's
//! bare AEAD, the floor) and the XX handshake.
//!
//! The transport figures show what the framing adds to the cipher: a frame
//! is sealed or opened in the caller's buffer, so the difference from the
//! bare AEAD is the length header, the nonce and the checks. Run with
//! `cargo bench -p peerswarm-proto --bench noise`.

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use peerswarm_proto::identity::Keypair;
use peerswarm_proto::noise::{
    Established, Handshake, NoiseKey, RecvCipher, SendCipher, FRAME_HEADER_LEN, MAX_PLAINTEXT_LEN, TAG_LEN,
};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};

/// Plaintext sizes: a full frame (bulk data), a 16 KiB write, a small
/// request and a yamux window update (12 bytes).
const SIZES: [usize; 4] = [MAX_PLAINTEXT_LEN, 16 * 1024, 1024, 12];

const MUXERS: [&str; 1] = ["/yamux/1.0.0"];

fn muxers() -> Vec<String> {
    MUXERS.iter().map(|m| m.to_string()).collect()
}

/// Runs one XX handshake in memory between two static keys.
fn handshake(
    dialer_key: &NoiseKey,
    listener_key: &NoiseKey,
    listener: &Keypair,
) -> (Established, Established) {
    let muxers = muxers();
    let expected = Some(listener.public().to_peer_id());
    let mut dialer = Handshake::initiator_with_key(dialer_key, expected, &muxers).expect("initiator");
    let mut listener = Handshake::responder_with_key(listener_key, &muxers).expect("responder");
    while !(dialer.is_finished() && listener.is_finished()) {
        if let Some(message) = dialer.poll_transmit() {
            listener.handle_input(&message).expect("listener accepts");
        }
        if let Some(message) = listener.poll_transmit() {
            dialer.handle_input(&message).expect("dialer accepts");
        }
    }
    (dialer.into_established().expect("dialer done"), listener.into_established().expect("listener done"))
}

fn ciphers() -> (SendCipher, RecvCipher) {
    let (alice, bob) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
    let (a, b) = (NoiseKey::new(&alice).expect("key"), NoiseKey::new(&bob).expect("key"));
    let (dialer, listener) = handshake(&a, &b, &bob);
    (dialer.send, listener.recv)
}

/// A frame laid out for `seal_frame`: header, plaintext, room for the tag.
fn frame_buffer(len: usize) -> Vec<u8> {
    vec![0x5a; FRAME_HEADER_LEN + len + TAG_LEN]
}

fn transport(c: &mut Criterion) {
    let mut group = c.benchmark_group("noise/transport");
    for len in SIZES {
        group.throughput(Throughput::Bytes(len as u64));

        // The floor: ring's AEAD alone, same key schedule, counter nonce.
        let key = LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &[7; 32]).expect("key"));
        let mut buf = vec![0x5a; len];
        let mut counter = 0u64;
        group.bench_with_input(BenchmarkId::new("ring_seal", len), &len, |b, _| {
            b.iter(|| {
                let mut nonce = [0; 12];
                nonce[4..].copy_from_slice(&counter.to_le_bytes());
                counter += 1;
                key.seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut buf)
                    .expect("seal")
            })
        });

        let (mut send, _) = ciphers();
        let mut frame = frame_buffer(len);
        group.bench_with_input(BenchmarkId::new("seal_frame", len), &len, |b, _| {
            // Sealing over the last ciphertext is fine for timing.
            b.iter(|| send.seal_frame(&mut frame).expect("seal"))
        });

        // Opening needs frames sealed in nonce order by a matching sender:
        // seal each one in the (untimed) setup, open it in the routine.
        let (mut send, mut recv) = ciphers();
        group.bench_with_input(BenchmarkId::new("open_in_place", len), &len, |b, _| {
            b.iter_batched_ref(
                || {
                    let mut frame = frame_buffer(len);
                    send.seal_frame(&mut frame).expect("seal");
                    frame
                },
                |frame| recv.open_in_place(&mut frame[FRAME_HEADER_LEN..]).map(|p| p.len()).expect("open"),
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

fn handshakes(c: &mut Criterion) {
    let mut group = c.benchmark_group("noise/handshake");
    let (alice, bob) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
    let (a, b) = (NoiseKey::new(&alice).expect("key"), NoiseKey::new(&bob).expect("key"));
    // A node's usual case: static keys made once, a fresh ephemeral key per
    // handshake, both signatures checked (first contact).
    group.bench_function("xx_first_contact", |bench| {
        bench.iter_batched(
            // A fresh listener key each time, so its verified-identity
            // cache never remembers the dialer.
            || NoiseKey::new(&bob).expect("key"),
            |listener_key| handshake(&a, &listener_key, &bob),
            BatchSize::SmallInput,
        )
    });
    // A peer that reconnects: both sides remember the other's proof.
    let _ = handshake(&a, &b, &bob);
    group.bench_function("xx_reconnect", |bench| bench.iter(|| handshake(&a, &b, &bob)));
    group.finish();
}

criterion_group!(benches, transport, handshakes);
criterion_main!(benches);
