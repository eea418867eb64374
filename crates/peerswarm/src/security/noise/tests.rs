use super::*;
use peerswarm_proto::identity::{ed25519_from_seed, generate, KeyType};
use peerswarm_proto::noise::{
    decode_frame_header, encode_frame_header, CipherError, Established, MAX_PLAINTEXT_LEN,
};
use std::time::Duration;
use tokio::io::{duplex, AsyncReadExt, DuplexStream};

const YAMUX: &str = "/yamux/1.0.0";
const MPLEX: &str = "/mplex/6.7.0";

fn list(muxers: &[&str]) -> Vec<String> {
    muxers.iter().map(|m| m.to_string()).collect()
}

fn keys() -> (Keypair, Keypair) {
    (ed25519_from_seed([1; 32]), ed25519_from_seed([2; 32]))
}

type Upgraded = (NoiseStream<DuplexStream>, SecureInfo);

async fn connect(
    a: &Keypair,
    b: &Keypair,
    a_muxers: &[&str],
    b_muxers: &[&str],
) -> (Result<Upgraded, NoiseError>, Result<Upgraded, NoiseError>) {
    let (x, y) = duplex(256 * 1024);
    let (a_muxers, b_muxers) = (list(a_muxers), list(b_muxers));
    tokio::join!(
        upgrade_outbound(x, a, Some(b.public().to_peer_id()), &a_muxers),
        upgrade_inbound(y, b, &b_muxers)
    )
}

/// Runs one side of the handshake with the sans-IO machine directly on a
/// raw duplex end, so a test can then write arbitrary frames.
async fn raw_peer(mut io: DuplexStream, mut hs: Handshake) -> (DuplexStream, Established) {
    loop {
        while let Some(frame) = hs.poll_transmit() {
            io.write_all(&frame).await.unwrap();
        }
        if hs.is_finished() {
            return (io, hs.into_established().unwrap());
        }
        let mut frame = vec![0; 2];
        io.read_exact(&mut frame).await.unwrap();
        let len = usize::from(u16::from_be_bytes([frame[0], frame[1]]));
        frame.resize(2 + len, 0);
        io.read_exact(&mut frame[2..]).await.unwrap();
        assert_eq!(hs.handle_input(&frame).unwrap(), frame.len());
    }
}

/// Our responder against a raw initiator.
async fn ours_vs_raw() -> (NoiseStream<DuplexStream>, DuplexStream, Established) {
    let (a, b) = keys();
    let (x, y) = duplex(256 * 1024);
    let (raw, ours) = tokio::join!(
        raw_peer(x, Handshake::initiator(&a, Some(b.public().to_peer_id()), &[]).unwrap()),
        upgrade_inbound(y, &b, &[])
    );
    let (raw_io, established) = raw;
    (ours.unwrap().0, raw_io, established)
}

fn cipher_error(err: &io::Error) -> Option<&CipherError> {
    err.get_ref()?.downcast_ref::<CipherError>()
}

#[tokio::test]
async fn handshake_and_echo() {
    let (a, b) = keys();
    let (ra, rb) = connect(&a, &b, &[], &[]).await;
    let ((mut sa, ia), (mut sb, ib)) = (ra.unwrap(), rb.unwrap());
    assert_eq!(ia.remote_peer_id, b.public().to_peer_id());
    assert_eq!(ia.remote_public_key, b.public());
    assert_eq!(ib.remote_peer_id, a.public().to_peer_id());
    assert_eq!((ia.muxer, ib.muxer), (None, None));

    sa.write_all(b"ping").await.unwrap();
    sa.flush().await.unwrap();
    let mut buf = [0; 4];
    sb.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping");
    sb.write_all(b"pong").await.unwrap();
    sb.shutdown().await.unwrap();
    let mut rest = Vec::new();
    sa.read_to_end(&mut rest).await.unwrap();
    assert_eq!(rest, b"pong", "shutdown flushes, then the reader sees a clean eof");
    assert!(format!("{sa:?}").starts_with("NoiseStream"));
}

/// Forwards `from` to `to`, each chunk `delay` late.
async fn delayed_pipe(
    mut from: tokio::io::ReadHalf<DuplexStream>,
    mut to: tokio::io::WriteHalf<DuplexStream>,
    delay: Duration,
) {
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(n @ 1..) = from.read(&mut buf).await {
        tokio::time::sleep(delay).await;
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[tokio::test]
async fn handshake_measures_a_round_trip() {
    let (a, b) = keys();
    // a <-> link <-> b, each way 20 ms late: the answer to a flight takes at
    // least 40 ms.
    let one_way = Duration::from_millis(20);
    let (x, x_link) = duplex(64 * 1024);
    let (y_link, y) = duplex(64 * 1024);
    let ((xr, xw), (yr, yw)) = (tokio::io::split(x_link), tokio::io::split(y_link));
    tokio::spawn(delayed_pipe(xr, yw, one_way));
    tokio::spawn(delayed_pipe(yr, xw, one_way));
    let started = std::time::Instant::now();
    let (ra, rb) = tokio::join!(
        upgrade_outbound(x, &a, Some(b.public().to_peer_id()), &[]),
        upgrade_inbound(y, &b, &[])
    );
    let elapsed = started.elapsed();
    for (side, info) in [("initiator", ra.unwrap().1), ("responder", rb.unwrap().1)] {
        let rtt = info.handshake_rtt.unwrap_or_else(|| panic!("{side}: no round trip measured"));
        assert!(rtt >= 2 * one_way && rtt <= elapsed, "{side}: {rtt:?} (handshake took {elapsed:?})");
    }
}

#[tokio::test]
async fn muxer_negotiation_over_the_wire() {
    let (a, b) = keys();
    for (ours, theirs, expected) in [
        (&[YAMUX][..], &[YAMUX][..], Some(YAMUX)),
        (&[YAMUX, MPLEX], &[MPLEX, YAMUX], Some(YAMUX)),
        (&[MPLEX, YAMUX], &[YAMUX, MPLEX], Some(MPLEX)),
        (&[YAMUX], &[], None),
        (&[], &[YAMUX], None),
        (&[], &[], None),
    ] {
        let (ra, rb) = connect(&a, &b, ours, theirs).await;
        assert_eq!(ra.unwrap().1.muxer.as_deref(), expected, "{ours:?} / {theirs:?}");
        assert_eq!(rb.unwrap().1.muxer.as_deref(), expected, "{ours:?} / {theirs:?}");
    }
}

#[tokio::test]
async fn no_common_muxer_is_an_error() {
    let (a, b) = keys();
    let (ra, rb) = connect(&a, &b, &[YAMUX], &[MPLEX]).await;
    match ra {
        Err(NoiseError::Handshake(HandshakeError::NoCommonMuxer { initiator, responder })) => {
            assert_eq!((initiator, responder), (list(&[YAMUX]), list(&[MPLEX])));
        }
        other => panic!("expected NoCommonMuxer, got {other:?}"),
    }
    // The initiator hung up instead of sending message 3.
    assert!(matches!(rb, Err(NoiseError::Io(ref e)) if e.kind() == io::ErrorKind::UnexpectedEof), "{rb:?}");
}

#[tokio::test]
async fn expected_peer_mismatch_names_both() {
    let (a, b) = keys();
    let other = ed25519_from_seed([9; 32]).public().to_peer_id();
    let (x, y) = duplex(4096);
    let (ra, _) = tokio::join!(upgrade_outbound(x, &a, Some(other), &[]), upgrade_inbound(y, &b, &[]));
    let err = ra.unwrap_err();
    match &err {
        NoiseError::Handshake(HandshakeError::PeerIdMismatch { expected, actual }) => {
            assert_eq!(**expected, other);
            assert_eq!(**actual, b.public().to_peer_id());
        }
        other => panic!("expected a mismatch, got {other:?}"),
    }
    assert_eq!(err.to_string(), format!("expected peer {other}, remote is {}", b.public().to_peer_id()));
}

#[tokio::test]
async fn other_identity_key_types() {
    let mut keys = vec![Keypair::generate_secp256k1(), Keypair::generate_ecdsa()];
    match generate(KeyType::RSA) {
        Ok(rsa) => keys.push(rsa),
        Err(err) => eprintln!("skipping RSA: {err}"),
    }
    let ed = ed25519_from_seed([1; 32]);
    for key in &keys {
        for (a, b) in [(key, &ed), (&ed, key)] {
            let (ra, rb) = connect(a, b, &[YAMUX], &[YAMUX]).await;
            let ((mut sa, ia), (mut sb, ib)) = (ra.unwrap(), rb.unwrap());
            assert_eq!(ia.remote_public_key, b.public());
            assert_eq!(ib.remote_public_key, a.public());
            sa.write_all(b"x").await.unwrap();
            sa.flush().await.unwrap();
            assert_eq!(sb.read_u8().await.unwrap(), b'x');
        }
    }
}

#[tokio::test]
async fn flipped_tag_byte_is_a_typed_decrypt_error() {
    let (mut ours, mut raw, mut est) = ours_vs_raw().await;
    let mut frames = Vec::new();
    est.send.encrypt_frame(b"good", &mut frames).unwrap();
    let bad_start = frames.len();
    est.send.encrypt_frame(b"evil", &mut frames).unwrap();
    *frames.last_mut().unwrap() ^= 0x80;
    assert!(frames.len() > bad_start);
    raw.write_all(&frames).await.unwrap();

    let mut buf = [0; 4];
    ours.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"good");
    let err = ours.read(&mut buf).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    assert_eq!(cipher_error(&err), Some(&CipherError::Decrypt));
    let again = ours.read(&mut buf).await.unwrap_err();
    assert_eq!(cipher_error(&again), Some(&CipherError::Decrypt), "the read side stays dead");
}

#[tokio::test]
async fn truncated_short_and_garbage_transport_frames() {
    // EOF inside a frame.
    let (mut ours, mut raw, _) = ours_vs_raw().await;
    raw.write_all(&[0x00, 100]).await.unwrap();
    raw.write_all(&[0; 10]).await.unwrap();
    drop(raw);
    let err = ours.read(&mut [0; 16]).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);

    // A frame shorter than the tag.
    let (mut ours, mut raw, _) = ours_vs_raw().await;
    raw.write_all(&[0x00, 0x03, 1, 2, 3]).await.unwrap();
    let err = ours.read(&mut [0; 16]).await.unwrap_err();
    assert_eq!(cipher_error(&err), Some(&CipherError::FrameTooShort { len: 3 }));

    // A maximal frame of garbage.
    let (mut ours, mut raw, _) = ours_vs_raw().await;
    let mut frame = encode_frame_header(65535).unwrap().to_vec();
    frame.resize(2 + 65535, 0x77);
    raw.write_all(&frame).await.unwrap();
    let err = ours.read(&mut [0; 16]).await.unwrap_err();
    assert_eq!(cipher_error(&err), Some(&CipherError::Decrypt));
}

#[tokio::test]
async fn garbage_instead_of_message_1() {
    let b = ed25519_from_seed([2; 32]);
    // Too short to hold an ephemeral key.
    let (mut x, y) = duplex(4096);
    x.write_all(&[0x00, 0x03, b'a', b'b', b'c']).await.unwrap();
    let err = upgrade_inbound(y, &b, &[]).await.unwrap_err();
    assert!(matches!(err, NoiseError::Handshake(HandshakeError::MalformedMessage)), "{err:?}");

    // Plain text, then hang up: waits for the announced 18 245 bytes, then
    // sees EOF.
    let (mut x, y) = duplex(4096);
    x.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    drop(x);
    let err = upgrade_inbound(y, &b, &[]).await.unwrap_err();
    assert!(matches!(err, NoiseError::Io(ref e) if e.kind() == io::ErrorKind::UnexpectedEof), "{err:?}");

    // A 32-byte "key" of garbage is a valid X25519 point, so the responder
    // answers; the garbage initiator cannot complete message 3.
    let (mut x, y) = duplex(4096);
    let mut msg1 = vec![0x00, 0x20];
    msg1.extend([0xab; 32]);
    x.write_all(&msg1).await.unwrap();
    let mut msg3 = vec![0x00, 0x60];
    msg3.extend([0xcd; 0x60]);
    x.write_all(&msg3).await.unwrap();
    let err = upgrade_inbound(y, &b, &[]).await.unwrap_err();
    assert!(matches!(err, NoiseError::Handshake(HandshakeError::Decrypt)), "{err:?}");
}

#[tokio::test]
async fn bytes_pipelined_behind_message_3_are_kept() {
    let (a, b) = keys();
    let (x, y) = duplex(256 * 1024);
    let raw_initiator = async {
        let (mut io, mut est) = raw_peer(x, Handshake::initiator(&a, None, &[]).unwrap()).await;
        // raw_peer already wrote message 3; these frames may arrive in the
        // same read as it.
        let mut frames = Vec::new();
        est.send.encrypt_frame(b"early ", &mut frames).unwrap();
        est.send.encrypt_frame(b"data", &mut frames).unwrap();
        io.write_all(&frames).await.unwrap();
        io
    };
    let (_io, ours) = tokio::join!(raw_initiator, upgrade_inbound(y, &b, &[]));
    let (mut ours, _) = ours.unwrap();
    let mut buf = [0; 10];
    ours.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"early data");
}

#[tokio::test]
async fn over_lazy_multistream() {
    use crate::multistream::{dialer_select, listener_select};
    let (a, b) = keys();
    let (x, y) = duplex(4096);
    let dialer = async {
        let (_, io) = dialer_select(x, ["/noise"], true).await.unwrap();
        let (mut s, info) =
            upgrade_outbound(io, &a, Some(b.public().to_peer_id()), &list(&[YAMUX])).await.unwrap();
        s.write_all(b"hi").await.unwrap();
        s.flush().await.unwrap();
        info
    };
    let listener = async {
        let (_, io) = listener_select(y, |p| p == "/noise").await.unwrap();
        let (mut s, info) = upgrade_inbound(io, &b, &list(&[YAMUX])).await.unwrap();
        let mut buf = [0; 2];
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hi");
        info
    };
    let (ia, ib) = tokio::join!(dialer, listener);
    assert_eq!(ia.remote_peer_id, b.public().to_peer_id());
    assert_eq!(ib.remote_peer_id, a.public().to_peer_id());
    assert_eq!(ia.muxer.as_deref(), Some(YAMUX));
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 11) as u8).collect()
}

#[tokio::test]
async fn bulk_8_mib_both_ways() {
    const LEN: usize = 8 << 20;
    let (a, b) = keys();
    let (ra, rb) = connect(&a, &b, &[], &[]).await;
    let ((sa, _), (sb, _)) = (ra.unwrap(), rb.unwrap());
    let (data_a, data_b) = (pattern(LEN, 1), pattern(LEN, 2));

    async fn pump(s: NoiseStream<DuplexStream>, out: &[u8], chunk: usize) -> Vec<u8> {
        let (mut rd, mut wr) = tokio::io::split(s);
        let write = async {
            for piece in out.chunks(chunk) {
                wr.write_all(piece).await.unwrap();
            }
            wr.shutdown().await.unwrap();
        };
        let read = async {
            let mut got = Vec::with_capacity(out.len());
            rd.read_to_end(&mut got).await.unwrap();
            got
        };
        tokio::join!(write, read).1
    }
    // Odd chunk sizes on one side, large writes on the other.
    let (got_by_a, got_by_b) = tokio::join!(pump(sa, &data_a, 1000), pump(sb, &data_b, 300_000));
    assert!(got_by_b == data_a, "a -> b corrupted");
    assert!(got_by_a == data_b, "b -> a corrupted");
}

#[tokio::test]
async fn bulk_writes_fill_maximal_frames() {
    let (mut ours, mut raw, mut est) = ours_vs_raw().await;
    const LEN: usize = 1 << 20;
    let data = pattern(LEN, 3);
    let writer = async {
        for piece in data.chunks(4096) {
            ours.write_all(piece).await.unwrap();
        }
        ours.flush().await.unwrap();
        ours
    };
    let reader = async {
        let mut lens = Vec::new();
        let mut plain = Vec::new();
        while plain.len() < LEN {
            let mut frame = vec![0; 2];
            raw.read_exact(&mut frame).await.unwrap();
            let len = usize::from(u16::from_be_bytes([frame[0], frame[1]]));
            frame.resize(len, 0);
            raw.read_exact(&mut frame).await.unwrap();
            lens.push(len);
            est.recv.decrypt_frame(&frame, &mut plain).unwrap();
        }
        (lens, plain)
    };
    let (_ours, (lens, plain)) = tokio::join!(writer, reader);
    assert!(plain == data);
    let full = LEN / MAX_PLAINTEXT_LEN;
    assert_eq!(lens.len(), full + 1);
    assert!(lens[..full].iter().all(|&l| l == 65535), "{lens:?}");
    assert_eq!(lens[full], LEN - full * MAX_PLAINTEXT_LEN + 16, "flush sends the partial frame");
}

#[tokio::test(start_paused = true)]
async fn slow_socket_applies_back_pressure() {
    let (a, b) = keys();
    // A tiny pipe that nobody on the other side reads after the handshake.
    let (x, y) = duplex(1024);
    let (ra, rb) = tokio::join!(upgrade_outbound(x, &a, None, &[]), upgrade_inbound(y, &b, &[]));
    let ((mut sa, _), _keep_open) = (ra.unwrap(), rb.unwrap());
    let big = vec![0u8; 4 << 20];
    let mut written = 0;
    let res = tokio::time::timeout(std::time::Duration::from_secs(1), async {
        loop {
            written += sa.write(&big[written..]).await.unwrap();
        }
    })
    .await;
    assert!(res.is_err(), "writes must block");
    // Accepted = the pipe's 1 KiB + one frame being written + nothing more.
    assert!(written <= 1024 + MAX_PLAINTEXT_LEN, "accepted {written} bytes");
}

/// `cargo test --release -p peerswarm --lib security::noise::tests::throughput -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement, run in release mode"]
async fn throughput() {
    const LEN: usize = 1 << 30;
    let (a, b) = keys();
    let (ra, rb) = connect(&a, &b, &[], &[]).await;
    let ((mut sa, _), (mut sb, _)) = (ra.unwrap(), rb.unwrap());
    let chunk = vec![0x5au8; 256 * 1024];
    let started = std::time::Instant::now();
    let writer = tokio::spawn(async move {
        for _ in 0..LEN / chunk.len() {
            sa.write_all(&chunk).await.unwrap();
        }
        sa.shutdown().await.unwrap();
    });
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0;
    loop {
        let n = sb.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        total += n;
    }
    writer.await.unwrap();
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(total, LEN);
    println!("noise over duplex: {:.0} MiB/s", LEN as f64 / secs / (1 << 20) as f64);
}

/// Idle connections hold no read or write buffer: small exchanges allocate
/// briefly, then release; a bulk transfer keeps its buffers while it lasts.
#[tokio::test]
async fn idle_connections_hold_no_buffers() {
    let (a, b) = keys();
    let (ra, rb) = connect(&a, &b, &[], &[]).await;
    let (mut x, mut y) = (ra.unwrap().0, rb.unwrap().0);
    assert_eq!((x.buffer_capacity(), y.buffer_capacity()), (0, 0), "after the handshake");
    for round in 0..3u8 {
        x.write_all(&[round; 32]).await.unwrap();
        x.flush().await.unwrap();
        let mut ping = [0u8; 32];
        y.read_exact(&mut ping).await.unwrap();
        y.write_all(&ping).await.unwrap();
        y.flush().await.unwrap();
        x.read_exact(&mut ping).await.unwrap();
        assert_eq!(ping, [round; 32]);
    }
    // The next reads find nothing and go back to waiting on the probe.
    let mut one = [0u8; 1];
    assert!(tokio::time::timeout(std::time::Duration::from_millis(20), x.read(&mut one)).await.is_err());
    assert!(tokio::time::timeout(std::time::Duration::from_millis(20), y.read(&mut one)).await.is_err());
    assert_eq!((x.buffer_capacity(), y.buffer_capacity()), (0, 0), "after small exchanges");
}

/// Frames that arrive in pieces smaller than the read probe (a 1000-byte
/// pipe) are put back together: the small buffer a light read keeps grows
/// to the full one when a frame turns out longer.
#[tokio::test]
async fn frames_arriving_in_small_pieces() {
    let (a, b) = keys();
    let (x, y) = duplex(1000);
    let (ra, rb) = tokio::join!(upgrade_outbound(x, &a, None, &[]), upgrade_inbound(y, &b, &[]));
    let ((mut sa, _), (mut sb, _)) = (ra.unwrap(), rb.unwrap());
    for len in [1, 900, 3000, 5000, MAX_PLAINTEXT_LEN + 10, 200_000] {
        let data = pattern(len, len as u8);
        let mut got = vec![0u8; len];
        tokio::join!(
            async {
                sa.write_all(&data).await.unwrap();
                sa.flush().await.unwrap();
            },
            async { sb.read_exact(&mut got).await.unwrap() },
        );
        assert_eq!(got, data, "{len} bytes");
    }
}

/// The endpoint's cached static key serves many handshakes, both ways.
#[tokio::test]
async fn one_cached_static_key_for_many_handshakes() {
    let (a, b) = keys();
    let (cache_a, cache_b) = (NoiseKeyCache::default(), NoiseKeyCache::default());
    for _ in 0..3 {
        let (x, y) = duplex(4096);
        let (ra, rb) = tokio::join!(
            upgrade_outbound_cached(x, &cache_a, &a, Some(b.public().to_peer_id()), &[]),
            upgrade_inbound_cached(y, &cache_b, &b, &[])
        );
        let ((mut sa, ia), (mut sb, ib)) = (ra.unwrap(), rb.unwrap());
        assert_eq!(
            (ia.remote_peer_id, ib.remote_peer_id),
            (b.public().to_peer_id(), a.public().to_peer_id())
        );
        sa.write_all(b"hi").await.unwrap();
        sa.flush().await.unwrap();
        let mut got = [0u8; 2];
        sb.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hi");
    }
    assert_eq!(cache_a.get(&a).unwrap().public(), cache_a.get(&a).unwrap().public());
}

/// Every plaintext byte, through the owned-frame path, until EOF.
async fn read_owned_to_end(ours: &mut NoiseStream<DuplexStream>) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let chunk = std::future::poll_fn(|cx| ours.poll_read_owned(cx)).await?;
        if chunk.is_empty() {
            return Ok(out);
        }
        out.extend_from_slice(&chunk);
    }
}

#[tokio::test]
async fn owned_frames_carry_bytes_pipelined_behind_message_3_and_bulk_data() {
    let (a, b) = keys();
    let (x, y) = duplex(256 * 1024);
    let data = pattern(3 << 20, 7);
    let raw_initiator = async {
        let (mut io, mut est) = raw_peer(x, Handshake::initiator(&a, None, &[]).unwrap()).await;
        // Written along with message 3 (the rest follows below).
        let mut early = Vec::new();
        est.send.encrypt_frame(b"early ", &mut early).unwrap();
        est.send.encrypt_frame(b"", &mut early).unwrap();
        io.write_all(&early).await.unwrap();
        (io, est)
    };
    let ((mut io, mut est), ours) = tokio::join!(raw_initiator, upgrade_inbound(y, &b, &[]));
    let (mut ours, _) = ours.unwrap();
    let writer = async {
        let mut frames = Vec::new();
        for chunk in data.chunks(MAX_PLAINTEXT_LEN - 1000) {
            est.send.encrypt_frame(chunk, &mut frames).unwrap();
        }
        // Odd write sizes, so frames arrive split across reads.
        for piece in frames.chunks(40_000) {
            io.write_all(piece).await.unwrap();
        }
        drop(io);
    };
    let reader = async {
        let mut got = Vec::new();
        let mut most_held = 0;
        loop {
            let chunk = std::future::poll_fn(|cx| ours.poll_read_owned(cx)).await.unwrap();
            if chunk.is_empty() {
                break;
            }
            got.extend_from_slice(&chunk);
            most_held = most_held.max(ours.buffer_capacity());
        }
        // One read buffer at a time; used-up ones go to the bounded cache.
        assert!(most_held <= stream::BULK_LEN, "held {most_held}");
        got
    };
    let ((), got) = tokio::join!(writer, reader);
    assert_eq!(&got[..6], b"early ");
    assert!(got[6..] == data[..], "bulk data intact");
    // The copying path is closed once the owned one is used.
    assert!(ours.read(&mut [0; 4]).await.is_err());
}

#[tokio::test]
async fn owned_frames_report_tampering_and_truncation() {
    let (mut ours, mut raw, mut est) = ours_vs_raw().await;
    let mut frames = Vec::new();
    est.send.encrypt_frame(b"good", &mut frames).unwrap();
    est.send.encrypt_frame(b"evil", &mut frames).unwrap();
    *frames.last_mut().unwrap() ^= 0x01;
    raw.write_all(&frames).await.unwrap();
    let first = std::future::poll_fn(|cx| ours.poll_read_owned(cx)).await.unwrap();
    assert_eq!(&first[..], b"good");
    let err = std::future::poll_fn(|cx| ours.poll_read_owned(cx)).await.unwrap_err();
    assert_eq!(cipher_error(&err), Some(&CipherError::Decrypt));
    let again = std::future::poll_fn(|cx| ours.poll_read_owned(cx)).await.unwrap_err();
    assert_eq!(cipher_error(&again), Some(&CipherError::Decrypt), "the read side stays dead");

    let (mut ours, mut raw, _) = ours_vs_raw().await;
    raw.write_all(&[0x00, 100]).await.unwrap();
    raw.write_all(&[0; 10]).await.unwrap();
    drop(raw);
    let err = read_owned_to_end(&mut ours).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);

    let (mut ours, mut raw, _) = ours_vs_raw().await;
    raw.write_all(&[0x00, 0x03, 1, 2, 3]).await.unwrap();
    let err = read_owned_to_end(&mut ours).await.unwrap_err();
    assert_eq!(cipher_error(&err), Some(&CipherError::FrameTooShort { len: 3 }));
}

#[tokio::test]
async fn frames_sealed_in_place_reach_the_peer_through_a_slow_pipe() {
    use tokio::io::AsyncWriteExt;
    let (a, b) = keys();
    // A 5 000-byte pipe: every batch goes out in many partial writes.
    let (x, y) = duplex(5_000);
    let data = pattern(1 << 20, 3);
    let (raw, ours) = tokio::join!(
        raw_peer(x, Handshake::initiator(&a, Some(b.public().to_peer_id()), &[]).unwrap()),
        upgrade_inbound(y, &b, &[])
    );
    let (mut raw_io, mut est) = raw;
    let (mut ours, _) = ours.unwrap();
    let writer = async {
        // A copied write first: it must reach the wire before the in-place frames.
        ours.write_all(b"copied ").await.unwrap();
        let mut buf = data.clone();
        let mut at = 0;
        while at < buf.len() {
            let n = std::future::poll_fn(|cx| ours.poll_write_in_place(cx, &mut buf[at..])).await.unwrap();
            assert!(n > 0 && n <= stream::MAX_BATCH_FRAMES * MAX_PLAINTEXT_LEN);
            at += n;
        }
        ours.shutdown().await.unwrap();
    };
    let reader = async {
        let mut wire = Vec::new();
        raw_io.read_to_end(&mut wire).await.unwrap();
        let mut plain = Vec::new();
        let mut rest = &wire[..];
        while !rest.is_empty() {
            let len = decode_frame_header(rest).unwrap();
            est.recv.decrypt_frame(&rest[2..2 + len], &mut plain).unwrap();
            rest = &rest[2 + len..];
        }
        plain
    };
    let ((), plain) = tokio::join!(writer, reader);
    assert_eq!(&plain[..7], b"copied ");
    assert!(plain[7..] == data[..], "every byte, in order");
}

#[tokio::test]
async fn idle_connections_hold_no_buffers_on_the_owned_path() {
    let (a, b) = keys();
    let (ra, rb) = connect(&a, &b, &[], &[]).await;
    let (mut x, mut y) = (ra.unwrap().0, rb.unwrap().0);
    for round in 0..3u8 {
        x.write_all(&[round; 32]).await.unwrap();
        x.flush().await.unwrap();
        let ping = std::future::poll_fn(|cx| y.poll_read_owned(cx)).await.unwrap();
        assert_eq!(&ping[..], &[round; 32]);
    }
    assert_eq!(y.buffer_capacity(), 0, "after small exchanges");
    // A burst uses the big buffer, and a quiet spell after light traffic
    // gives it back.
    let burst = async {
        x.write_all(&pattern(1 << 20, 1)).await.unwrap();
        x.flush().await.unwrap();
    };
    let drain = async {
        let mut got = 0;
        while got < 1 << 20 {
            got += std::future::poll_fn(|cx| y.poll_read_owned(cx)).await.unwrap().len();
        }
    };
    tokio::join!(burst, drain);
    x.write_all(b"quiet").await.unwrap();
    x.flush().await.unwrap();
    let last = std::future::poll_fn(|cx| y.poll_read_owned(cx)).await.unwrap();
    assert_eq!(&last[..], b"quiet");
    assert_eq!(y.buffer_capacity(), 0, "after the burst");
}

#[test]
fn read_buffer_cache_reuses_only_buffers_no_frame_holds() {
    let cache = stream::BulkCache::new();
    let mut buf = cache.take(stream::BULK_LEN);
    let base = buf.as_ptr();
    buf.extend_from_slice(&[7; 1000]);
    let frame = buf.split_to(600).freeze();
    cache.recycle(buf);
    // A frame split off the buffer is still alive: its bytes must not be
    // overwritten, so the allocation is not handed out again.
    let other = cache.take(stream::BULK_LEN);
    assert_ne!(other.as_ptr(), base);
    assert_eq!(cache.len(), 1);
    drop(frame);
    let again = cache.take(stream::BULK_LEN);
    assert_eq!(again.as_ptr(), base, "the allocation is reused once its frames are gone");
    assert!(again.is_empty() && again.capacity() >= stream::BULK_LEN);
    assert_eq!(cache.len(), 0);
}

#[test]
fn read_buffer_cache_is_bounded() {
    let cache = stream::BulkCache::new();
    for _ in 0..stream::BULK_CACHE_LEN + 5 {
        cache.recycle(bytes::BytesMut::with_capacity(stream::BULK_LEN));
    }
    assert_eq!(cache.len(), stream::BULK_CACHE_LEN);
}
