//! Yamux session micro-benchmarks: the muxer's own cost per byte and per
//! stream, without I/O or encryption.
//!
//! - `send`: a 64 KiB write encoded into the transmit queue and taken out,
//!   the way the driver batches it (one copy, out of the writer's buffer),
//!   plus the window update that pays for it;
//! - `receive`: a 64 KiB data frame fed in, split off the input without
//!   copying, handed to the reader as chunks, and the credit sent back;
//! - `stream`: a whole short-lived stream between two sessions (open, one
//!   byte each way, both FINs, released), the muxer's share of a request;
//! - `header`: one frame header encoded and decoded.
//!
//! Run with `cargo bench -p peerswarm-proto --bench yamux`.

use std::hint::black_box;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use peerswarm_proto::yamux::{Config, Event, Flags, Header, Role, Session, HEADER_LEN};

const WRITE: usize = 64 * 1024;

fn config() -> Config {
    let mut config = Config::default();
    // No RTT pings: they would add frames the benchmark does not model.
    config.set_rtt_probe(false);
    config
}

/// Everything `session` wants to send, appended to `out`.
fn drain(session: &mut Session, out: &mut Vec<u8>) {
    loop {
        let before = out.len();
        session.poll_transmit(out);
        if out.len() == before {
            return;
        }
    }
}

fn input(bytes: Vec<u8>) -> BytesMut {
    // A Vec's allocation becomes the input without a copy (an empty Vec
    // becomes a static, shared `Bytes`).
    Bytes::from(bytes).try_into_mut().unwrap_or_default()
}

fn send(c: &mut Criterion) {
    let mut group = c.benchmark_group("yamux");
    group.throughput(Throughput::Bytes(WRITE as u64));
    let now = Instant::now();
    let mut client = Session::new(Role::Client, config(), now);
    let id = client.open_stream().expect("open");
    let data = vec![0x5a; WRITE];
    let mut out = Vec::with_capacity(WRITE + 64);
    group.bench_function("send", |b| {
        b.iter(|| {
            let n = client.write(id, black_box(&data)).expect("write");
            assert_eq!(n, WRITE);
            out.clear();
            drain(&mut client, &mut out);
            black_box(&out);
            // The peer returns the credit, as its reader would.
            let mut credit = input(Header::window_update(id, Flags::NONE, n as u32).encode().to_vec());
            client.handle_input(&mut credit, now);
        })
    });
    group.finish();
}

fn receive(c: &mut Criterion) {
    let mut group = c.benchmark_group("yamux");
    group.throughput(Throughput::Bytes(WRITE as u64));
    let now = Instant::now();
    let mut server = Session::new(Role::Server, config(), now);
    // Open stream 1 on the server with a SYN.
    let mut syn = input(Header::window_update(1, Flags::SYN, 0).encode().to_vec());
    server.handle_input(&mut syn, now);
    assert!(matches!(server.poll_event(), Some(Event::InboundStream(1))));
    let mut frame = Header::data(1, Flags::NONE, WRITE as u32).encode().to_vec();
    frame.resize(HEADER_LEN + WRITE, 0x5a);
    let mut credit = Vec::new();
    group.bench_function("receive", |b| {
        b.iter_batched(
            // A decrypted Noise frame is an owned buffer: make one per run.
            || input(frame.clone()),
            |mut wire| {
                server.handle_input(&mut wire, now);
                let mut read = 0;
                while let Some(chunk) = server.read_chunk(1, WRITE, now).expect("read") {
                    if chunk.is_empty() {
                        break;
                    }
                    read += chunk.len();
                    black_box(chunk);
                }
                assert_eq!(read, WRITE);
                credit.clear();
                drain(&mut server, &mut credit);
                while server.poll_event().is_some() {}
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn stream(c: &mut Criterion) {
    let mut group = c.benchmark_group("yamux");
    group.throughput(Throughput::Elements(1));
    let now = Instant::now();
    let mut client = Session::new(Role::Client, config(), now);
    let mut server = Session::new(Role::Server, config(), now);
    let mut wire = Vec::new();
    let mut buf = [0u8; 16];
    group.bench_function("stream", |b| {
        b.iter(|| {
            let id = client.open_stream().expect("open");
            client.write(id, b"?").expect("write");
            client.close_write(id).expect("fin");
            wire.clear();
            drain(&mut client, &mut wire);
            server.handle_input(&mut input(std::mem::take(&mut wire)), now);
            let mut accepted = None;
            while let Some(event) = server.poll_event() {
                if let Event::InboundStream(id) = event {
                    accepted = Some(id);
                }
            }
            let sid = accepted.expect("inbound stream");
            assert_eq!(server.read(sid, &mut buf, now).expect("read"), Some(1));
            server.write(sid, b"!").expect("write");
            server.close_write(sid).expect("fin");
            server.release(sid);
            drain(&mut server, &mut wire);
            client.handle_input(&mut input(std::mem::take(&mut wire)), now);
            while client.poll_event().is_some() {}
            assert_eq!(client.read(id, &mut buf, now).expect("read"), Some(1));
            client.release(id);
            // The client's release sends nothing more: both FINs were seen.
            drain(&mut client, &mut wire);
            server.handle_input(&mut input(std::mem::take(&mut wire)), now);
        })
    });
    assert_eq!(client.num_streams(), 0, "streams are forgotten");
    group.finish();
}

fn header(c: &mut Criterion) {
    let mut group = c.benchmark_group("yamux");
    group.throughput(Throughput::Elements(1));
    let header = Header::data(7, Flags::SYN, 1234);
    group.bench_function("header", |b| {
        b.iter(|| Header::decode(&black_box(header).encode()).expect("decode"))
    });
    group.finish();
}

criterion_group!(benches, send, receive, stream, header);
criterion_main!(benches);
