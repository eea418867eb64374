//! Bandwidth metering: bytes in and out, totals and rates, overall, per peer
//! and per protocol.
//!
//! Counting is a relaxed atomic add per read or write call on a stream.
//! Rates are exponentially weighted moving averages, updated lazily when
//! read (no background ticker), with samples at least [`SAMPLE_INTERVAL`]
//! apart.

use peerswarm_proto::identity::PeerId;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The shortest interval between two rate samples.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);
/// The weight of the newest sample in the moving average.
const ALPHA: f64 = 0.5;
/// At most this many peers and protocols are metered individually; beyond
/// it, traffic is counted in the totals only (memory stays bounded whatever
/// the peer churn).
pub const MAX_TRACKED: usize = 16 * 1024;

/// A snapshot of one meter pair.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BandwidthStats {
    /// Bytes received since the meter was created.
    pub total_in: u64,
    /// Bytes sent since the meter was created.
    pub total_out: u64,
    /// Receive rate, bytes per second.
    pub rate_in: f64,
    /// Send rate, bytes per second.
    pub rate_out: f64,
}

#[derive(Debug)]
struct Rate {
    at: Instant,
    total: u64,
    rate: f64,
}

/// One direction's counter and rate.
#[derive(Debug)]
struct Meter {
    total: AtomicU64,
    rate: Mutex<Rate>,
}

impl Meter {
    fn new(now: Instant) -> Self {
        Self { total: AtomicU64::new(0), rate: Mutex::new(Rate { at: now, total: 0, rate: 0.0 }) }
    }

    fn sample(&self, now: Instant) -> (u64, f64) {
        let total = self.total.load(Ordering::Relaxed);
        let mut rate = self.rate.lock().unwrap_or_else(|e| e.into_inner());
        let elapsed = now.saturating_duration_since(rate.at);
        if elapsed >= SAMPLE_INTERVAL {
            let instant = (total - rate.total) as f64 / elapsed.as_secs_f64();
            rate.rate = if rate.total == 0 && rate.rate == 0.0 {
                instant
            } else {
                ALPHA * instant + (1.0 - ALPHA) * rate.rate
            };
            rate.at = now;
            rate.total = total;
        }
        (total, rate.rate)
    }
}

/// Counters for both directions.
#[derive(Debug)]
pub(crate) struct MeterPair {
    inbound: Meter,
    outbound: Meter,
}

impl MeterPair {
    fn new(now: Instant) -> Self {
        Self { inbound: Meter::new(now), outbound: Meter::new(now) }
    }

    fn stats(&self, now: Instant) -> BandwidthStats {
        let (total_in, rate_in) = self.inbound.sample(now);
        let (total_out, rate_out) = self.outbound.sample(now);
        BandwidthStats { total_in, total_out, rate_in, rate_out }
    }
}

/// The bandwidth reporter of a swarm. Cheap to clone (an `Arc`).
#[derive(Debug, Clone)]
pub struct BandwidthCounter {
    inner: Arc<CounterInner>,
}

#[derive(Debug)]
struct CounterInner {
    total: MeterPair,
    peers: Mutex<HashMap<PeerId, Arc<MeterPair>>>,
    protocols: Mutex<HashMap<Arc<str>, Arc<MeterPair>>>,
}

impl Default for BandwidthCounter {
    fn default() -> Self {
        Self::new()
    }
}

impl BandwidthCounter {
    /// A counter with everything at zero.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(CounterInner {
                total: MeterPair::new(Instant::now()),
                peers: Mutex::default(),
                protocols: Mutex::default(),
            }),
        }
    }

    /// Totals and rates over every stream.
    pub fn totals(&self) -> BandwidthStats {
        self.inner.total.stats(Instant::now())
    }

    /// Totals and rates of one peer (zero if never seen).
    pub fn for_peer(&self, peer: &PeerId) -> BandwidthStats {
        let meter = self.inner.peers.lock().unwrap_or_else(|e| e.into_inner()).get(peer).cloned();
        meter.map(|m| m.stats(Instant::now())).unwrap_or_default()
    }

    /// Totals and rates of one protocol (zero if never seen).
    pub fn for_protocol(&self, protocol: &str) -> BandwidthStats {
        let meter = self.inner.protocols.lock().unwrap_or_else(|e| e.into_inner()).get(protocol).cloned();
        meter.map(|m| m.stats(Instant::now())).unwrap_or_default()
    }

    /// Every metered peer.
    pub fn by_peer(&self) -> HashMap<PeerId, BandwidthStats> {
        let now = Instant::now();
        let peers = self.inner.peers.lock().unwrap_or_else(|e| e.into_inner());
        peers.iter().map(|(p, m)| (*p, m.stats(now))).collect()
    }

    /// Every metered protocol.
    pub fn by_protocol(&self) -> HashMap<String, BandwidthStats> {
        let now = Instant::now();
        let protocols = self.inner.protocols.lock().unwrap_or_else(|e| e.into_inner());
        protocols.iter().map(|(p, m)| (p.to_string(), m.stats(now))).collect()
    }

    /// Forgets peers and protocols with no traffic since `since`.
    pub fn trim_idle(&self, since: Instant) {
        let idle = |m: &Arc<MeterPair>| {
            let at = |meter: &Meter| meter.rate.lock().unwrap_or_else(|e| e.into_inner()).at;
            let now = Instant::now();
            let stats = m.stats(now);
            stats.rate_in == 0.0
                && stats.rate_out == 0.0
                && at(&m.inbound) < since
                && Arc::strong_count(m) == 1
        };
        self.inner.peers.lock().unwrap_or_else(|e| e.into_inner()).retain(|_, m| !idle(m));
        self.inner.protocols.lock().unwrap_or_else(|e| e.into_inner()).retain(|_, m| !idle(m));
    }

    /// The meters a stream to `peer` speaking `protocol` reports to.
    pub(crate) fn stream_meters(&self, peer: &PeerId, protocol: Option<&str>) -> StreamMeters {
        let now = Instant::now();
        let peer_meter = {
            let mut peers = self.inner.peers.lock().unwrap_or_else(|e| e.into_inner());
            let len = peers.len();
            match peers.get(peer) {
                Some(m) => Some(m.clone()),
                None if len < MAX_TRACKED => {
                    Some(peers.entry(*peer).or_insert_with(|| Arc::new(MeterPair::new(now))).clone())
                }
                None => None,
            }
        };
        let protocol_meter = protocol.and_then(|p| self.protocol_meter(p, now));
        StreamMeters { counter: self.clone(), peer: peer_meter, protocol: protocol_meter }
    }

    fn protocol_meter(&self, protocol: &str, now: Instant) -> Option<Arc<MeterPair>> {
        let mut protocols = self.inner.protocols.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = protocols.get(protocol) {
            return Some(m.clone());
        }
        (protocols.len() < MAX_TRACKED).then(|| {
            protocols.entry(protocol.into()).or_insert_with(|| Arc::new(MeterPair::new(now))).clone()
        })
    }
}

/// The meters one stream adds its bytes to.
#[derive(Debug, Clone)]
pub(crate) struct StreamMeters {
    counter: BandwidthCounter,
    peer: Option<Arc<MeterPair>>,
    protocol: Option<Arc<MeterPair>>,
}

impl StreamMeters {
    pub(crate) fn record_in(&self, bytes: usize) {
        let bytes = bytes as u64;
        self.counter.inner.total.inbound.total.fetch_add(bytes, Ordering::Relaxed);
        for m in self.peer.iter().chain(self.protocol.iter()) {
            m.inbound.total.fetch_add(bytes, Ordering::Relaxed);
        }
    }

    pub(crate) fn record_out(&self, bytes: usize) {
        let bytes = bytes as u64;
        self.counter.inner.total.outbound.total.fetch_add(bytes, Ordering::Relaxed);
        for m in self.peer.iter().chain(self.protocol.iter()) {
            m.outbound.total.fetch_add(bytes, Ordering::Relaxed);
        }
    }

    /// Moves the stream's protocol accounting to `protocol`.
    pub(crate) fn set_protocol(&mut self, protocol: &str) {
        self.protocol = self.counter.protocol_meter(protocol, Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_totals_per_peer_and_per_protocol() {
        let counter = BandwidthCounter::new();
        let peer = PeerId::random();
        let mut meters = counter.stream_meters(&peer, Some("/a"));
        meters.record_in(100);
        meters.record_out(40);
        meters.set_protocol("/b");
        meters.record_out(2);
        assert_eq!(counter.totals().total_in, 100);
        assert_eq!(counter.totals().total_out, 42);
        assert_eq!(counter.for_peer(&peer).total_out, 42);
        assert_eq!(counter.for_protocol("/a").total_out, 40);
        assert_eq!(counter.for_protocol("/b").total_out, 2);
        assert_eq!(counter.for_protocol("/c"), BandwidthStats::default());
    }

    #[test]
    fn rate_is_bytes_per_second_between_samples() {
        let start = Instant::now();
        let meter = Meter::new(start);
        meter.total.fetch_add(2_000, Ordering::Relaxed);
        let (total, rate) = meter.sample(start + Duration::from_secs(2));
        assert_eq!(total, 2_000);
        assert_eq!(rate, 1_000.0);
        // Within the sample interval the rate is not recomputed.
        meter.total.fetch_add(10_000, Ordering::Relaxed);
        assert_eq!(meter.sample(start + Duration::from_millis(2_500)).1, 1_000.0);
        // The next sample is averaged with the previous rate.
        let (_, rate) = meter.sample(start + Duration::from_secs(4));
        assert_eq!(rate, 0.5 * 5_000.0 + 0.5 * 1_000.0);
    }
}
