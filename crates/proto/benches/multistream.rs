//! multistream-select micro-benchmarks: one message encoded and decoded,
//! and whole negotiations between a dialer and a listener in memory (the
//! protocol part of every stream open).
//!
//! - `lazy`: one proposal, accepted (what a stream open costs: the dialer
//!   sends header and proposal at once);
//! - `refused_then_accepted`: two proposals, the first answered `na`.
//!
//! Run with `cargo bench -p peerswarm-proto --bench multistream`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use peerswarm_proto::multistream::{Dialer, Listener, Message, Status};

const PROTOCOL: &str = "/ipfs/id/1.0.0";
const SUPPORTED: [&str; 4] = ["/ipfs/ping/1.0.0", "/ipfs/id/1.0.0", "/ipfs/id/push/1.0.0", "/perf/1.0.0"];

fn supported(p: &str) -> bool {
    SUPPORTED.contains(&p)
}

/// Ferries messages until the dialer has its answer; returns the protocol.
fn negotiate(proposals: &[&str]) -> String {
    let mut dialer = Dialer::new(proposals, true).expect("proposals");
    let mut listener = Listener::new();
    loop {
        if let Some(bytes) = dialer.poll_transmit() {
            let used = listener.handle_input(&bytes, supported).expect("listener");
            assert_eq!(used, bytes.len());
        }
        if let Some(bytes) = listener.poll_transmit() {
            let used = dialer.handle_input(&bytes).expect("dialer");
            assert_eq!(used, bytes.len());
        }
        match dialer.status() {
            Status::Selected(p) => return p.to_owned(),
            Status::Failed => panic!("refused"),
            Status::Negotiating | Status::Optimistic(_) => {}
        }
    }
}

fn messages(c: &mut Criterion) {
    let mut group = c.benchmark_group("multistream");
    group.throughput(Throughput::Elements(1));
    let message = Message::Protocol(PROTOCOL.to_owned());
    let mut buf = Vec::with_capacity(64);
    group.bench_function("message", |b| {
        b.iter(|| {
            buf.clear();
            black_box(&message).encode(&mut buf);
            Message::decode(black_box(&buf)).expect("valid").expect("complete")
        })
    });
    group.finish();
}

fn negotiations(c: &mut Criterion) {
    let mut group = c.benchmark_group("multistream");
    group.throughput(Throughput::Elements(1));
    group.bench_function("lazy", |b| b.iter(|| negotiate(black_box(&[PROTOCOL]))));
    group.bench_function("refused_then_accepted", |b| {
        b.iter(|| negotiate(black_box(&["/ipfs/kad/1.0.0", PROTOCOL])))
    });
    group.finish();
}

criterion_group!(benches, messages, negotiations);
criterion_main!(benches);
