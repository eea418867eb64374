//! Address ranking: which address to dial when (reference §2.6).

use std::time::Duration;

use multiaddr::{Multiaddr, Protocol};

use super::addrs::{is_private, is_relay};

/// Delay between TCP dials to public addresses, and of the first TCP dial
/// after the last QUIC dial (about one RTT, RFC 8305).
pub const PUBLIC_TCP_DELAY: Duration = Duration::from_millis(250);
/// As [`PUBLIC_TCP_DELAY`], for private addresses.
pub const PRIVATE_TCP_DELAY: Duration = Duration::from_millis(30);
/// Delay between QUIC dials to public addresses.
pub const PUBLIC_QUIC_DELAY: Duration = Duration::from_millis(250);
/// As [`PUBLIC_QUIC_DELAY`], for private addresses.
pub const PRIVATE_QUIC_DELAY: Duration = Duration::from_millis(30);
/// Extra delay of relay addresses when a public direct address exists.
pub const RELAY_DELAY: Duration = Duration::from_millis(500);
/// Delay of other transports (e.g. `/webrtc-direct`) after the last QUIC or
/// TCP dial, public addresses.
pub const PUBLIC_OTHER_DELAY: Duration = Duration::from_secs(1);
/// As [`PUBLIC_OTHER_DELAY`], private addresses.
pub const PRIVATE_OTHER_DELAY: Duration = Duration::from_millis(100);

/// An address and when to dial it, relative to the start of the dial worker.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AddrDelay {
    /// The address.
    pub addr: Multiaddr,
    /// Delay from the worker's start.
    pub delay: Duration,
}

/// Decides when to dial each address of a peer.
///
/// Contract: return each input address at most once (extra or unknown
/// addresses are dialed as returned; duplicates are merged by the worker).
/// Any `Fn(&[Multiaddr]) -> Vec<AddrDelay>` is a ranker.
pub trait DialRanker {
    /// Ranks `addrs`.
    fn rank(&self, addrs: &[Multiaddr]) -> Vec<AddrDelay>;
}

impl<F: Fn(&[Multiaddr]) -> Vec<AddrDelay>> DialRanker for F {
    fn rank(&self, addrs: &[Multiaddr]) -> Vec<AddrDelay> {
        self(addrs)
    }
}

/// Dials everything at once (used for hole-punching requests).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoDelayDialRanker;

impl DialRanker for NoDelayDialRanker {
    fn rank(&self, addrs: &[Multiaddr]) -> Vec<AddrDelay> {
        addrs.iter().map(|a| AddrDelay { addr: a.clone(), delay: Duration::ZERO }).collect()
    }
}

/// go-libp2p's smart-dialing ranker (`DefaultDialRanker`).
///
/// 1. Split into relay (`/p2p-circuit`), private ([`is_private`]), public
///    (other `/ip4`/`/ip6`) and the rest (no IP, e.g. onion).
/// 2. Relay addresses get [`RELAY_DELAY`] extra only if a public direct
///    address exists.
/// 3. Each group is ranked on its own (private: 30 ms QUIC/TCP and 100 ms
///    other; public and relay: 250 ms and 1 s): sorted QUIC-v1 IPv6 <
///    draft-29 IPv6 < QUIC-v1 IPv4 < draft-29 IPv4 < WebTransport IPv6 <
///    WebTransport IPv4 < TCP IPv6 < TCP IPv4 < WebRTC-direct < other, lower
///    port first; Happy Eyeballs moves the first IPv4 QUIC (TCP) address right
///    behind a leading IPv6 one. QUIC: 0, q, then q (2q with Happy Eyeballs).
///    TCP: the same with t, all after the last QUIC delay + t. Others: last
///    QUIC/TCP delay + the other-delay.
/// 4. The rest: 1 s after the largest delay so far.
///
/// Quirk §8.2 (fixed): go puts the rest 1 s after the *last emitted*
/// delay, which is not always the largest (e.g. a relay QUIC address at
/// 500 ms emitted after a public WebRTC address at 1250 ms). We use the
/// maximum — what go's variable name (`maxDelay`) intends; every go test
/// vector gives the same result either way.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultDialRanker;

impl DialRanker for DefaultDialRanker {
    fn rank(&self, addrs: &[Multiaddr]) -> Vec<AddrDelay> {
        let mut relay = Vec::new();
        let mut private = Vec::new();
        let mut public = Vec::new();
        let mut rest = Vec::new();
        for a in addrs {
            if is_relay(a) {
                relay.push(a.clone());
            } else if is_private(a) {
                private.push(a.clone());
            } else if has(a, |p| matches!(p, Protocol::Ip4(_) | Protocol::Ip6(_))) {
                public.push(a.clone());
            } else {
                rest.push(a.clone());
            }
        }
        let relay_offset = if public.is_empty() { Duration::ZERO } else { RELAY_DELAY };
        let mut res = Vec::with_capacity(addrs.len());
        res.extend(group_delays(
            private,
            PRIVATE_TCP_DELAY,
            PRIVATE_QUIC_DELAY,
            PRIVATE_OTHER_DELAY,
            Duration::ZERO,
        ));
        res.extend(group_delays(
            public,
            PUBLIC_TCP_DELAY,
            PUBLIC_QUIC_DELAY,
            PUBLIC_OTHER_DELAY,
            Duration::ZERO,
        ));
        res.extend(group_delays(
            relay,
            PUBLIC_TCP_DELAY,
            PUBLIC_QUIC_DELAY,
            PUBLIC_OTHER_DELAY,
            relay_offset,
        ));
        let max = res.iter().map(|e| e.delay).max().unwrap_or(Duration::ZERO);
        res.extend(rest.into_iter().map(|addr| AddrDelay { addr, delay: max + PUBLIC_OTHER_DELAY }));
        res
    }
}

fn has(a: &Multiaddr, f: impl Fn(&Protocol<'_>) -> bool) -> bool {
    a.iter().any(|p| f(&p))
}

fn is_quic(a: &Multiaddr) -> bool {
    has(a, |p| matches!(p, Protocol::Quic | Protocol::QuicV1))
}

fn is_tcp(a: &Multiaddr) -> bool {
    has(a, |p| matches!(p, Protocol::Tcp(_)))
}

fn is_ip4(a: &Multiaddr) -> bool {
    has(a, |p| matches!(p, Protocol::Ip4(_)))
}

fn is_ip6(a: &Multiaddr) -> bool {
    has(a, |p| matches!(p, Protocol::Ip6(_)))
}

fn first_port(a: &Multiaddr, udp: bool) -> u32 {
    a.iter()
        .find_map(|p| match p {
            Protocol::Udp(port) if udp => Some(u32::from(port)),
            Protocol::Tcp(port) if !udp => Some(u32::from(port)),
            _ => None,
        })
        .unwrap_or(0)
}

/// Lower is dialed earlier; the low 16 bits are the port.
fn score(a: &Multiaddr) -> u32 {
    let ip4 = if is_ip4(a) { 1 << 18 } else { 0 };
    if has(a, |p| matches!(p, Protocol::WebTransport)) {
        return ip4 + (1 << 19) + first_port(a, true);
    }
    if has(a, |p| matches!(p, Protocol::Quic)) {
        return ip4 + (1 << 17) + first_port(a, true);
    }
    if has(a, |p| matches!(p, Protocol::QuicV1)) {
        return ip4 + first_port(a, true);
    }
    if is_tcp(a) {
        return ip4 + (1 << 20) + first_port(a, false);
    }
    if has(a, |p| matches!(p, Protocol::WebRTCDirect)) {
        return 1 << 21;
    }
    1 << 30
}

fn group_delays(
    mut addrs: Vec<Multiaddr>,
    tcp_delay: Duration,
    quic_delay: Duration,
    other_delay: Duration,
    offset: Duration,
) -> Vec<AddrDelay> {
    if addrs.is_empty() {
        return Vec::new();
    }
    // Stable, so equal scores keep the caller's order (go's sort is not
    // stable; the order of equal-score addresses is unspecified there).
    addrs.sort_by_key(score);

    let mut happy_eyeballs_quic = false;
    let mut happy_eyeballs_tcp = false;
    let mut i = 0;
    if is_quic(&addrs[0]) && is_ip6(&addrs[0]) {
        if let Some(j) = (1..addrs.len()).find(|&j| is_quic(&addrs[j]) && is_ip4(&addrs[j])) {
            let a = addrs.remove(j);
            addrs.insert(1, a);
            happy_eyeballs_quic = true;
            i = j + 1;
        }
    }
    let tcp_start = (i..addrs.len()).find(|&k| is_tcp(&addrs[k])).unwrap_or(addrs.len());
    if tcp_start < addrs.len() && is_ip6(&addrs[tcp_start]) {
        if let Some(j) = (tcp_start + 1..addrs.len()).find(|&j| is_tcp(&addrs[j]) && is_ip4(&addrs[j])) {
            let a = addrs.remove(j);
            addrs.insert(tcp_start + 1, a);
            happy_eyeballs_tcp = true;
        }
    }

    let mut tcp_first_dial_delay = Duration::ZERO;
    let mut last_quic_or_tcp_delay = Duration::ZERO;
    let mut res = Vec::with_capacity(addrs.len());
    for (i, addr) in addrs.into_iter().enumerate() {
        let delay = if is_quic(&addr) {
            let d = match i {
                0 => Duration::ZERO,
                1 => quic_delay,
                _ if happy_eyeballs_quic => 2 * quic_delay,
                _ => quic_delay,
            };
            last_quic_or_tcp_delay = d;
            tcp_first_dial_delay = d + tcp_delay;
            d
        } else if is_tcp(&addr) {
            let d = if i <= tcp_start {
                Duration::ZERO
            } else if i == tcp_start + 1 {
                tcp_delay
            } else if happy_eyeballs_tcp {
                2 * tcp_delay
            } else {
                tcp_delay
            } + tcp_first_dial_delay;
            last_quic_or_tcp_delay = d;
            d
        } else {
            last_quic_or_tcp_delay + other_delay
        };
        res.push(AddrDelay { addr, delay: offset + delay });
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ma(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    const Q: Duration = PUBLIC_QUIC_DELAY;

    /// Compares as sets of (address, delay), like go's sorted comparison.
    fn assert_ranked(ranker: &dyn DialRanker, input: &[Multiaddr], want: &[(&Multiaddr, Duration)]) {
        let mut got: Vec<(String, Duration)> =
            ranker.rank(input).into_iter().map(|e| (e.addr.to_string(), e.delay)).collect();
        let mut want: Vec<(String, Duration)> = want.iter().map(|(a, d)| (a.to_string(), *d)).collect();
        got.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
        want.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
        assert_eq!(got, want);
    }

    // go: dial_ranker_test.go TestNoDelayDialRanker
    #[test]
    fn no_delay_ranker() {
        let addrs: Vec<_> = [
            "/ip4/1.2.3.4/udp/1/quic",
            "/ip4/1.2.3.4/udp/2/quic",
            "/ip4/1.2.3.4/udp/1/quic-v1",
            "/ip4/1.2.3.4/udp/1/quic-v1/webtransport",
            "/ip4/1.2.3.5/tcp/1",
        ]
        .iter()
        .map(|s| ma(s))
        .collect();
        let want: Vec<_> = addrs.iter().map(|a| (a, Duration::ZERO)).collect();
        assert_ranked(&NoDelayDialRanker, &addrs, &want);
    }

    // go: TestDelayRankerQUICDelay, the §2.6 QUIC vectors
    #[test]
    fn quic_delays() {
        let q1v4 = ma("/ip4/1.2.3.4/udp/1/quic-v1");
        let q2v4 = ma("/ip4/1.2.3.4/udp/2/quic-v1");
        let q3v4 = ma("/ip4/1.2.3.4/udp/3/quic-v1");
        let q1v6 = ma("/ip6/1::2/udp/1/quic-v1");
        let q2v6 = ma("/ip6/1::2/udp/2/quic-v1");
        let q3v6 = ma("/ip6/1::2/udp/3/quic-v1");
        let wt1v4 = ma("/ip4/1.2.3.4/udp/1/quic-v1/webtransport");
        let r = &DefaultDialRanker;
        // q1v4, q2v4, q3v4 -> 0, 1, 1
        assert_ranked(
            r,
            &[q1v4.clone(), q2v4.clone(), q3v4.clone()],
            &[(&q1v4, Duration::ZERO), (&q2v4, Q), (&q3v4, Q)],
        );
        // q1v6, q2v4 -> 0, 1
        assert_ranked(r, &[q1v6.clone(), q2v4.clone()], &[(&q1v6, Duration::ZERO), (&q2v4, Q)]);
        // q1v6, q1v4, q2v4, q3v4, wt1v4 -> q1v6 0, q1v4 1, others 2
        assert_ranked(
            r,
            &[q1v6.clone(), q1v4.clone(), q2v4.clone(), q3v4.clone(), wt1v4.clone()],
            &[(&q1v6, Duration::ZERO), (&q1v4, Q), (&q2v4, 2 * Q), (&q3v4, 2 * Q), (&wt1v4, 2 * Q)],
        );
        // q1v6, q2v6, q3v6, wt1v4 -> q1v6 0, wt1 1, q2v6 2, q3v6 2
        assert_ranked(
            r,
            &[q1v6.clone(), q2v6.clone(), q3v6.clone(), wt1v4.clone()],
            &[(&q1v6, Duration::ZERO), (&wt1v4, Q), (&q2v6, 2 * Q), (&q3v6, 2 * Q)],
        );
    }

    // go: TestDelayRankerTCPDelay, the §2.6 TCP vectors
    #[test]
    fn tcp_delays() {
        let q1v4 = ma("/ip4/1.2.3.4/udp/1/quic-v1");
        let q2v4 = ma("/ip4/1.2.3.4/udp/2/quic-v1");
        let q1v6 = ma("/ip6/1::2/udp/1/quic-v1");
        let q2v6 = ma("/ip6/1::2/udp/2/quic-v1");
        let q3v6 = ma("/ip6/1::2/udp/3/quic-v1");
        let t1 = ma("/ip4/1.2.3.5/tcp/1");
        let t1v6 = ma("/ip6/1::2/tcp/1");
        let t2 = ma("/ip4/1.2.3.4/tcp/2");
        let t3 = ma("/ip4/1.2.3.4/tcp/3");
        let r = &DefaultDialRanker;
        // q1v4, q1v6, q2v6, q3v6, q2v4, t1v4, t1v6, t2, t3
        assert_ranked(
            r,
            &[
                q1v4.clone(),
                q1v6.clone(),
                q2v6.clone(),
                q3v6.clone(),
                q2v4.clone(),
                t1.clone(),
                t1v6.clone(),
                t2.clone(),
                t3.clone(),
            ],
            &[
                (&q1v6, Duration::ZERO),
                (&q1v4, Q),
                (&q2v6, 2 * Q),
                (&q3v6, 2 * Q),
                (&q2v4, 2 * Q),
                (&t1v6, 3 * Q),
                (&t1, 4 * Q),
                (&t2, 5 * Q),
                (&t3, 5 * Q),
            ],
        );
        // q1v4, t2, t1v6, t1 -> 0, t1v6 1, t1 2, t2 3
        assert_ranked(
            r,
            &[q1v4.clone(), t2.clone(), t1v6.clone(), t1.clone()],
            &[(&q1v4, Duration::ZERO), (&t1v6, Q), (&t1, 2 * Q), (&t2, 3 * Q)],
        );
        // q1v4, t2, t3, t1 (all IPv4) -> q 0, t1 1, t2 2, t3 2
        assert_ranked(
            r,
            &[q1v4.clone(), t2.clone(), t3.clone(), t1.clone()],
            &[(&q1v4, Duration::ZERO), (&t1, Q), (&t2, 2 * Q), (&t3, 2 * Q)],
        );
        // t1, t2, t1v6, t3 -> t1v6 0, t1 1, t2 2, t3 2
        assert_ranked(
            r,
            &[t1.clone(), t2.clone(), t1v6.clone(), t3.clone()],
            &[(&t1v6, Duration::ZERO), (&t1, Q), (&t2, 2 * Q), (&t3, 2 * Q)],
        );
    }

    // go: TestDelayRankerRelay
    #[test]
    fn relay_delays() {
        let pid = peerswarm_proto::identity::PeerId::random();
        let q1 = ma("/ip4/1.2.3.4/udp/1/quic-v1");
        let q2 = ma("/ip4/1.2.3.4/udp/2/quic-v1");
        let r1 = ma(&format!("/ip4/1.2.3.4/tcp/1/p2p-circuit/p2p/{pid}"));
        let r2 = ma(&format!("/ip4/1.2.3.4/udp/1/quic-v1/p2p-circuit/p2p/{pid}"));
        assert_ranked(
            &DefaultDialRanker,
            &[q1.clone(), q2.clone(), r1.clone(), r2.clone()],
            &[(&q1, Duration::ZERO), (&q2, Q), (&r2, RELAY_DELAY), (&r1, PUBLIC_TCP_DELAY + RELAY_DELAY)],
        );
        // no public direct address: no relay offset
        assert_ranked(&DefaultDialRanker, std::slice::from_ref(&r1), &[(&r1, Duration::ZERO)]);
    }

    // go: TestDelayRankerOtherTransportDelay
    #[test]
    fn other_transport_delays() {
        let q1v4 = ma("/ip4/1.2.3.4/udp/1/quic-v1");
        let q1v6 = ma("/ip6/1::2/udp/1/quic-v1");
        let t1 = ma("/ip4/1.2.3.5/tcp/1");
        let t1v6 = ma("/ip6/1::2/tcp/1");
        let wrtc = ma("/ip4/1.2.3.4/udp/1/webrtc-direct");
        let wrtc6 = ma("/ip6/1::2/udp/1/webrtc-direct");
        let onion = ma("/onion3/vww6ybal4bd7szmgncyruucpgfkqahzddi37ktceo3ah7ngmcopnpyyd:1234");
        let only_ip = ma("/ip4/1.2.3.4");
        let other = PUBLIC_OTHER_DELAY;
        let r = &DefaultDialRanker;
        assert_ranked(
            r,
            &[q1v4.clone(), q1v6.clone(), wrtc.clone(), wrtc6.clone(), onion.clone(), only_ip.clone()],
            &[
                (&q1v6, Duration::ZERO),
                (&q1v4, Q),
                (&wrtc, Q + other),
                (&wrtc6, Q + other),
                (&only_ip, Q + other),
                (&onion, Q + 2 * other),
            ],
        );
        assert_ranked(
            r,
            &[
                q1v4.clone(),
                t1.clone(),
                t1v6.clone(),
                wrtc.clone(),
                wrtc6.clone(),
                onion.clone(),
                only_ip.clone(),
            ],
            &[
                (&q1v4, Duration::ZERO),
                (&t1v6, Q),
                (&t1, 2 * Q),
                (&wrtc, 2 * Q + other),
                (&wrtc6, 2 * Q + other),
                (&only_ip, 2 * Q + other),
                (&onion, 2 * Q + 2 * other),
            ],
        );
        // only onion
        assert_ranked(r, std::slice::from_ref(&onion), &[(&onion, other)]);
    }

    #[test]
    fn private_addresses_use_short_delays() {
        let q = ma("/ip4/127.0.0.1/udp/1/quic-v1");
        let t = ma("/ip4/127.0.0.1/tcp/1");
        assert_ranked(
            &DefaultDialRanker,
            &[t.clone(), q.clone()],
            &[(&q, Duration::ZERO), (&t, PRIVATE_TCP_DELAY)],
        );
    }

    // Quirk §8.2: rest after the maximum, not the last emitted delay.
    #[test]
    fn rest_follows_maximum_delay() {
        let pid = peerswarm_proto::identity::PeerId::random();
        let wrtc = ma("/ip4/1.2.3.4/udp/1/webrtc-direct");
        let relay = ma(&format!("/ip4/1.2.3.4/udp/1/quic-v1/p2p-circuit/p2p/{pid}"));
        let onion = ma("/onion3/vww6ybal4bd7szmgncyruucpgfkqahzddi37ktceo3ah7ngmcopnpyyd:1234");
        assert_ranked(
            &DefaultDialRanker,
            &[wrtc.clone(), relay.clone(), onion.clone()],
            &[(&wrtc, PUBLIC_OTHER_DELAY), (&relay, RELAY_DELAY), (&onion, 2 * PUBLIC_OTHER_DELAY)],
        );
    }
}
