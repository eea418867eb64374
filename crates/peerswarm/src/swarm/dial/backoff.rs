//! Dial backoff per (peer, address) (reference §2.9).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use multiaddr::Multiaddr;
use peerswarm_proto::identity::PeerId;

use super::ConfigError;

/// Backoff knobs, per swarm (go has package-level variables; here each swarm
/// has its own).
///
/// The n-th consecutive failure of an address backs it off for
/// `base + coef × (n−1)²`, capped at `max`: with the defaults 5, 6, 9, 14, 21,
/// 30, 41, … s, reaching 5 min at the 19th failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackoffConfig {
    base: Duration,
    coef: Duration,
    max: Duration,
    max_peers: usize,
    max_addrs_per_peer: usize,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            base: Duration::from_secs(5),
            coef: Duration::from_secs(1),
            max: Duration::from_secs(5 * 60),
            max_peers: 10_000,
            max_addrs_per_peer: 128,
        }
    }
}

impl BackoffConfig {
    /// Backoff after the first failure. Default 5 s. Longer keeps a failing
    /// address quiet longer; zero disables the first-failure backoff.
    pub fn set_base(&mut self, base: Duration) -> &mut Self {
        self.base = base;
        self
    }

    /// Quadratic coefficient: the n-th failure adds `coef × (n−1)²`.
    /// Default 1 s.
    pub fn set_coef(&mut self, coef: Duration) -> &mut Self {
        self.coef = coef;
        self
    }

    /// Upper bound of one backoff period; also the cleanup grace period.
    /// Default 5 min.
    pub fn set_max(&mut self, max: Duration) -> &mut Self {
        self.max = max;
        self
    }

    /// How many peers are tracked at once. Default 10 000 (about 100 bytes
    /// per address entry). When full, adding a new peer first drops expired
    /// peers, then evicts the peer whose backoff ends soonest: eviction only
    /// makes us dial earlier, never refuse a dial. Zero is invalid.
    pub fn set_max_peers(&mut self, max_peers: usize) -> Result<&mut Self, ConfigError> {
        if max_peers == 0 {
            return Err(ConfigError::Zero("max_peers"));
        }
        self.max_peers = max_peers;
        Ok(self)
    }

    /// How many addresses of one peer are tracked. Default 128 (go caps a
    /// peer's resolved addresses at 100). When full, the entry whose backoff
    /// ends soonest is evicted. Zero is invalid.
    pub fn set_max_addrs_per_peer(&mut self, max: usize) -> Result<&mut Self, ConfigError> {
        if max == 0 {
            return Err(ConfigError::Zero("max_addrs_per_peer"));
        }
        self.max_addrs_per_peer = max;
        Ok(self)
    }

    /// Backoff period for an entry that already failed `tries` times.
    fn period(&self, tries: u32) -> Duration {
        let tries = tries.min(1 << 16);
        let quad = self.coef.saturating_mul(tries.saturating_mul(tries));
        self.base.saturating_add(quad).min(self.max)
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    tries: u32,
    until: Instant,
}

/// Which (peer, address) pairs recently failed and must not be dialed yet.
///
/// Sans-IO: every call takes `now`. Nothing runs in the background; call
/// [`cleanup`](Self::cleanup) periodically (go does every 5 min) to forget
/// peers whose backoff expired long ago.
///
/// Quirk §8.8 (kept): any connection to a peer, inbound included, clears all
/// its entries ([`clear_peer`](Self::clear_peer)); the worker adds none for
/// cancelled dials or once it has connected.
#[derive(Debug, Clone, Default)]
pub struct DialBackoff {
    config: BackoffConfig,
    entries: HashMap<PeerId, HashMap<Multiaddr, Entry>>,
}

impl DialBackoff {
    /// An empty backoff table.
    pub fn new(config: BackoffConfig) -> Self {
        DialBackoff { config, entries: HashMap::new() }
    }

    /// Whether `addr` of `peer` is backed off at `now` (`now < until`).
    pub fn is_backed_off(&self, peer: &PeerId, addr: &Multiaddr, now: Instant) -> bool {
        self.entries.get(peer).and_then(|m| m.get(addr)).is_some_and(|e| now < e.until)
    }

    /// When `addr`'s backoff ends, if it has an entry.
    pub fn backed_off_until(&self, peer: &PeerId, addr: &Multiaddr) -> Option<Instant> {
        self.entries.get(peer).and_then(|m| m.get(addr)).map(|e| e.until)
    }

    /// Records a failed dial of `addr`: the first failure backs it off for
    /// `base`; each further one for `base + coef × tries²` (capped at `max`)
    /// where `tries` counts earlier failures, even expired ones.
    pub fn add(&mut self, peer: PeerId, addr: Multiaddr, now: Instant) {
        if !self.entries.contains_key(&peer) && self.entries.len() >= self.config.max_peers {
            self.cleanup(now);
            if self.entries.len() >= self.config.max_peers {
                self.evict_one_peer();
            }
        }
        let config = &self.config;
        let addrs = self.entries.entry(peer).or_default();
        match addrs.get_mut(&addr) {
            Some(e) => {
                e.until = now + config.period(e.tries);
                e.tries = e.tries.saturating_add(1);
            }
            None => {
                if addrs.len() >= config.max_addrs_per_peer {
                    if let Some(victim) = addrs.iter().min_by_key(|(_, e)| e.until).map(|(a, _)| a.clone()) {
                        addrs.remove(&victim);
                    }
                }
                addrs.insert(addr, Entry { tries: 1, until: now + config.base });
            }
        }
    }

    /// Forgets every entry of `peer` (call on any new connection to it).
    pub fn clear_peer(&mut self, peer: &PeerId) {
        self.entries.remove(peer);
    }

    /// Drops each peer none of whose entries is still within one further
    /// backoff period past its end (go `cleanup`): failures are remembered
    /// a while after the backoff ends, so a quick new failure escalates.
    pub fn cleanup(&mut self, now: Instant) {
        let config = &self.config;
        self.entries.retain(|_, addrs| addrs.values().any(|e| now < e.until + config.period(e.tries)));
    }

    /// Number of peers with entries.
    pub fn peer_count(&self) -> usize {
        self.entries.len()
    }

    fn evict_one_peer(&mut self) {
        let victim = self
            .entries
            .iter()
            .min_by_key(|(_, addrs)| addrs.values().map(|e| e.until).max())
            .map(|(p, _)| *p);
        if let Some(victim) = victim {
            self.entries.remove(&victim);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ma(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    #[test]
    fn quadratic_sequence_capped_at_max() {
        let mut b = DialBackoff::default();
        let p = PeerId::random();
        let a = ma("/ip4/1.2.3.4/tcp/1");
        let t0 = Instant::now();
        let mut now = t0;
        let mut waits = Vec::new();
        for _ in 0..20 {
            b.add(p, a.clone(), now);
            let until = b.backed_off_until(&p, &a).unwrap();
            waits.push((until - now).as_secs());
            now = until;
        }
        assert_eq!(&waits[..7], &[5, 6, 9, 14, 21, 30, 41]);
        // n-th failure waits 5 + (n-1)^2: 18th = 294 s, 19th and later 300 s.
        assert_eq!(waits[17], 294);
        assert_eq!(waits[18], 300);
        assert_eq!(waits[19], 300);
    }

    // go: dial_test.go TestDialBackoff / TestDialBackoffClears (the backoff
    // table's part): per address, until `until`, cleared by any connection.
    #[test]
    fn per_address_and_cleared_by_connection() {
        let mut b = DialBackoff::default();
        let p = PeerId::random();
        let bad = ma("/ip4/1.2.3.4/tcp/1");
        let good = ma("/ip4/1.2.3.4/tcp/2");
        let t0 = Instant::now();
        assert!(!b.is_backed_off(&p, &bad, t0));
        b.add(p, bad.clone(), t0);
        assert!(b.is_backed_off(&p, &bad, t0));
        assert!(b.is_backed_off(&p, &bad, t0 + Duration::from_millis(4999)));
        assert!(!b.is_backed_off(&p, &bad, t0 + Duration::from_secs(5)));
        assert!(!b.is_backed_off(&p, &good, t0));
        assert!(!b.is_backed_off(&PeerId::random(), &bad, t0));
        b.clear_peer(&p);
        assert!(!b.is_backed_off(&p, &bad, t0));
        // the try count was forgotten: next failure is a first failure again
        b.add(p, bad.clone(), t0);
        assert_eq!(b.backed_off_until(&p, &bad), Some(t0 + Duration::from_secs(5)));
    }

    #[test]
    fn cleanup_keeps_entries_one_period_past_expiry() {
        let mut b = DialBackoff::default();
        let p = PeerId::random();
        let a = ma("/ip4/1.2.3.4/tcp/1");
        let t0 = Instant::now();
        b.add(p, a.clone(), t0); // until t0+5, tries 1; period(1) = 6 s
        b.cleanup(t0 + Duration::from_secs(10));
        assert_eq!(b.peer_count(), 1);
        b.cleanup(t0 + Duration::from_secs(11));
        assert_eq!(b.peer_count(), 0);
    }

    #[test]
    fn configurable_and_bounded() {
        let mut config = BackoffConfig::default();
        config
            .set_base(Duration::from_secs(1))
            .set_coef(Duration::from_secs(2))
            .set_max(Duration::from_secs(7));
        config.set_max_peers(2).unwrap().set_max_addrs_per_peer(2).unwrap();
        assert!(config.clone().set_max_peers(0).is_err());
        let mut b = DialBackoff::new(config);
        let t0 = Instant::now();
        let p = PeerId::random();
        let a = ma("/ip4/1.2.3.4/tcp/1");
        b.add(p, a.clone(), t0);
        assert_eq!(b.backed_off_until(&p, &a), Some(t0 + Duration::from_secs(1)));
        b.add(p, a.clone(), t0);
        assert_eq!(b.backed_off_until(&p, &a), Some(t0 + Duration::from_secs(3)));
        b.add(p, a.clone(), t0);
        assert_eq!(b.backed_off_until(&p, &a), Some(t0 + Duration::from_secs(7)));

        // per-peer cap: the entry ending soonest goes
        b.add(p, ma("/ip4/1.2.3.4/tcp/2"), t0);
        b.add(p, ma("/ip4/1.2.3.4/tcp/3"), t0);
        assert!(b.is_backed_off(&p, &a, t0));
        assert!(!b.is_backed_off(&p, &ma("/ip4/1.2.3.4/tcp/2"), t0));
        assert!(b.is_backed_off(&p, &ma("/ip4/1.2.3.4/tcp/3"), t0));

        // peer cap: the peer whose backoff ends soonest goes
        let q = PeerId::random();
        let r = PeerId::random();
        b.add(q, a.clone(), t0);
        b.add(r, a.clone(), t0);
        assert_eq!(b.peer_count(), 2);
        assert!(b.is_backed_off(&p, &a, t0));
        assert!(!b.is_backed_off(&q, &a, t0));
        assert!(b.is_backed_off(&r, &a, t0));
    }
}
