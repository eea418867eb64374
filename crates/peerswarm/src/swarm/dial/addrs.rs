//! Address classification and the undialable-address filter (reference §2.5,
//! §2.7 "FD-consuming", §2.8 private ranges).

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use multiaddr::{Multiaddr, Protocol};

use super::error::AddrError;

/// The address's leading IP, if its first component is `/ip4` or `/ip6`.
fn leading_ip(addr: &Multiaddr) -> Option<IpAddr> {
    match addr.iter().next()? {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
    (u32::from(ip) & mask) == (u32::from(Ipv4Addr::from(net)) & mask)
}

fn in_v6(ip: Ipv6Addr, net: Ipv6Addr, prefix: u32) -> bool {
    let mask = if prefix == 0 { 0 } else { u128::MAX << (128 - prefix) };
    (u128::from(ip) & mask) == (u128::from(net) & mask)
}

fn ip_is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => {
            in_v4(ip, [127, 0, 0, 0], 8)
                || in_v4(ip, [10, 0, 0, 0], 8)
                || in_v4(ip, [100, 64, 0, 0], 10)
                || in_v4(ip, [172, 16, 0, 0], 12)
                || in_v4(ip, [169, 254, 0, 0], 16)
                || in_v4(ip, [192, 168, 0, 0], 16)
        }
        IpAddr::V6(ip) => {
            ip == Ipv6Addr::LOCALHOST
                || in_v6(ip, Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7)
                || in_v6(ip, Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10)
        }
    }
}

/// Whether the address starts with an IP in a private, loopback or
/// link-local range: IPv4 127/8, 10/8, 100.64/10, 172.16/12, 169.254/16,
/// 192.168/16; IPv6 ::1, fc00::/7, fe80::/10.
///
/// This is go's modern list (`manet.IsPrivateAddr`), loopback included; the
/// 2021 list without loopback is not used. Addresses that do not start with
/// an IP (DNS names, onion, relay-only) are not private.
pub fn is_private(addr: &Multiaddr) -> bool {
    leading_ip(addr).is_some_and(ip_is_private)
}

/// Whether the address is a relay address (contains `/p2p-circuit`).
pub fn is_relay(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| matches!(p, Protocol::P2pCircuit))
}

/// Whether dialing the address consumes a file descriptor: the part before
/// any `/p2p-circuit` contains `/tcp` or `/unix`. A bare `/p2p-circuit` (with
/// nothing before it) counts as consuming, to be safe.
///
/// The [limiter](super::DialLimiter) additionally never charges relay
/// addresses, whose fd is taken by the dial to the relay server.
pub fn is_fd_consuming(addr: &Multiaddr) -> bool {
    let mut before_circuit = 0;
    for p in addr.iter() {
        match p {
            Protocol::P2pCircuit => return before_circuit == 0,
            Protocol::Tcp(_) | Protocol::Unix(_) => return true,
            _ => before_circuit += 1,
        }
    }
    false
}

/// Removes a trailing `/p2p/<peer id>` component, if any.
pub fn strip_peer_id(mut addr: Multiaddr) -> Multiaddr {
    if matches!(addr.iter().last(), Some(Protocol::P2p(_))) {
        addr.pop();
    }
    addr
}

fn has_unspecified_ip(addr: &Multiaddr) -> bool {
    leading_ip(addr).is_some_and(|ip| ip.is_unspecified())
}

fn is_ipv6_link_local(addr: &Multiaddr) -> bool {
    matches!(leading_ip(addr), Some(IpAddr::V6(ip)) if in_v6(ip, Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10))
}

/// Why the filter dropped an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FilterReason {
    /// No transport can dial it.
    NoTransport,
    /// A better address for the same IP and port exists (`/quic` draft-29 or
    /// `/webtransport` beside `/quic-v1`; `/ws` or `/wss` beside plain `/tcp`).
    LowerPriorityDuplicate,
    /// Its IP is unspecified (`0.0.0.0`, `::`).
    UnspecifiedIp,
    /// It is one of our own listen addresses.
    DialToSelf,
    /// Its IP is IPv6 link-local (`fe80::/10`).
    Ipv6LinkLocal,
    /// The connection gater refused it.
    GaterDisallowed,
    /// It is a relay address and the dial must be direct.
    RelayNotAllowed,
}

impl FilterReason {
    /// The per-address error go pre-loads into the `DialError` for this
    /// reason; `None` for reasons go drops silently (duplicates, unspecified
    /// and link-local IPs, relays on a force-direct dial).
    pub fn to_addr_error<E>(self) -> Option<AddrError<E>> {
        match self {
            FilterReason::NoTransport => Some(AddrError::NoTransport),
            FilterReason::DialToSelf => Some(AddrError::DialToSelf),
            FilterReason::GaterDisallowed => Some(AddrError::GaterDisallowed),
            FilterReason::LowerPriorityDuplicate
            | FilterReason::UnspecifiedIp
            | FilterReason::Ipv6LinkLocal
            | FilterReason::RelayNotAllowed => None,
        }
    }
}

/// The result of [`AddrFilter::filter`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilteredAddrs {
    /// Addresses that may be dialed: `/p2p/ID` stripped, de-duplicated, in
    /// input order.
    pub dialable: Vec<Multiaddr>,
    /// Addresses dropped, each with its reason, in the order they were dropped.
    pub rejected: Vec<(Multiaddr, FilterReason)>,
}

/// The undialable-address filter for one dial (go `filterKnownUndialables`).
///
/// Steps, in go's order: strip a trailing `/p2p/ID` and drop exact
/// duplicates; (1) no transport can dial it; (2) lower-priority duplicates
/// (after step 1 on purpose: if we can only dial WebTransport it must not be
/// dropped because a QUIC address exists); (3) unspecified IP; (4) one of our
/// own listen addresses (only those starting with `/ip4` or `/ip6` are
/// compared); (5) IPv6 link-local; (6) the gater; (7) with `force_direct`,
/// relay addresses. Black-hole filtering is not implemented.
///
/// Quirk §8.11: go compares against a cached (1 minute) list of interface
/// addresses. Here the caller passes the list it wants compared, so caching
/// is the caller's decision.
pub struct AddrFilter<'a> {
    own_listen_addrs: &'a [Multiaddr],
    can_dial: &'a dyn Fn(&Multiaddr) -> bool,
    gater_allows: Option<&'a dyn Fn(&Multiaddr) -> bool>,
    force_direct: bool,
}

impl std::fmt::Debug for AddrFilter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AddrFilter")
            .field("own_listen_addrs", &self.own_listen_addrs)
            .field("has_gater", &self.gater_allows.is_some())
            .field("force_direct", &self.force_direct)
            .finish()
    }
}

impl<'a> AddrFilter<'a> {
    /// A filter that drops addresses `can_dial` refuses and our own
    /// `own_listen_addrs` (interface addresses, unspecified IPs expanded).
    pub fn new(own_listen_addrs: &'a [Multiaddr], can_dial: &'a dyn Fn(&Multiaddr) -> bool) -> Self {
        AddrFilter { own_listen_addrs, can_dial, gater_allows: None, force_direct: false }
    }

    /// Also drops addresses the gater's `allows(addr)` refuses (go
    /// `InterceptAddrDial`).
    pub fn with_gater(mut self, allows: &'a dyn Fn(&Multiaddr) -> bool) -> Self {
        self.gater_allows = Some(allows);
        self
    }

    /// Also drops relay addresses (a force-direct dial).
    pub fn force_direct(mut self, force_direct: bool) -> Self {
        self.force_direct = force_direct;
        self
    }

    /// Filters `addrs`; see the type's documentation for the steps.
    pub fn filter(&self, addrs: impl IntoIterator<Item = Multiaddr>) -> FilteredAddrs {
        let mut seen = HashSet::new();
        let mut out = FilteredAddrs::default();
        let mut candidates = Vec::new();
        for addr in addrs {
            let addr = strip_peer_id(addr);
            if seen.insert(addr.clone()) {
                candidates.push(addr);
            }
        }
        // (1) transports
        let mut kept = Vec::with_capacity(candidates.len());
        for addr in candidates {
            if (self.can_dial)(&addr) {
                kept.push(addr);
            } else {
                out.rejected.push((addr, FilterReason::NoTransport));
            }
        }
        // (2) lower-priority duplicates
        let (kept, dupes) = drop_lower_priority_duplicates(kept);
        out.rejected.extend(dupes.into_iter().map(|a| (a, FilterReason::LowerPriorityDuplicate)));
        // (3)..(7)
        for addr in kept {
            let reason = if has_unspecified_ip(&addr) {
                Some(FilterReason::UnspecifiedIp)
            } else if leading_ip(&addr).is_some() && self.own_listen_addrs.contains(&addr) {
                Some(FilterReason::DialToSelf)
            } else if is_ipv6_link_local(&addr) {
                Some(FilterReason::Ipv6LinkLocal)
            } else if self.gater_allows.is_some_and(|allows| !allows(&addr)) {
                Some(FilterReason::GaterDisallowed)
            } else if self.force_direct && is_relay(&addr) {
                Some(FilterReason::RelayNotAllowed)
            } else {
                None
            };
            match reason {
                Some(reason) => out.rejected.push((addr, reason)),
                None => out.dialable.push(addr),
            }
        }
        out
    }
}

/// (ip, port) key of a direct address: the leading IP component and the
/// following tcp/udp component.
fn thin_waist(addr: &Multiaddr) -> Option<Multiaddr> {
    let mut it = addr.iter();
    let ip = it.next().filter(|p| matches!(p, Protocol::Ip4(_) | Protocol::Ip6(_)))?;
    let port = it.next().filter(|p| matches!(p, Protocol::Tcp(_) | Protocol::Udp(_)))?;
    Some(Multiaddr::empty().with(ip).with(port))
}

fn has(addr: &Multiaddr, f: impl Fn(&Protocol<'_>) -> bool) -> bool {
    addr.iter().any(|p| f(&p))
}

fn is_plain_quic_v1(addr: &Multiaddr) -> bool {
    has(addr, |p| matches!(p, Protocol::QuicV1)) && !has(addr, |p| matches!(p, Protocol::WebTransport))
}

fn is_plain_tcp(addr: &Multiaddr) -> bool {
    let mut it = addr.iter();
    matches!(it.next(), Some(Protocol::Ip4(_) | Protocol::Ip6(_)))
        && matches!(it.next(), Some(Protocol::Tcp(_)))
        && it.next().is_none()
}

fn drop_lower_priority_duplicates(addrs: Vec<Multiaddr>) -> (Vec<Multiaddr>, Vec<Multiaddr>) {
    let quic_v1: HashSet<_> = addrs.iter().filter(|a| is_plain_quic_v1(a)).filter_map(thin_waist).collect();
    let tcp: HashSet<_> = addrs.iter().filter(|a| is_plain_tcp(a)).filter_map(thin_waist).collect();
    addrs.into_iter().partition(|a| {
        let Some(key) = thin_waist(a) else { return true };
        let lower_quic = (has(a, |p| matches!(p, Protocol::Quic))
            || has(a, |p| matches!(p, Protocol::WebTransport)))
            && quic_v1.contains(&key);
        let lower_ws = has(a, |p| matches!(p, Protocol::Ws(_) | Protocol::Wss(_))) && tcp.contains(&key);
        !(lower_quic || lower_ws)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ma(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    #[test]
    fn private_ranges_include_loopback() {
        for a in [
            "/ip4/127.0.0.1/tcp/1",
            "/ip4/10.1.2.3/tcp/1",
            "/ip4/100.64.0.1/tcp/1",
            "/ip4/172.31.255.255/tcp/1",
            "/ip4/169.254.1.1/tcp/1",
            "/ip4/192.168.0.1/tcp/1",
            "/ip6/::1/tcp/1",
            "/ip6/fd00::1/tcp/1",
            "/ip6/fe80::1/tcp/1",
        ] {
            assert!(is_private(&ma(a)), "{a}");
        }
        for a in
            ["/ip4/1.2.3.4/tcp/1", "/ip4/172.32.0.1/tcp/1", "/ip6/2001:db8::1/tcp/1", "/dns4/localhost/tcp/1"]
        {
            assert!(!is_private(&ma(a)), "{a}");
        }
    }

    // go: util_test.go TestIsFdConsuming
    #[test]
    fn is_fd_consuming_vectors() {
        let pid = peerswarm_proto::identity::PeerId::random();
        assert!(is_fd_consuming(&ma("/ip4/127.0.0.1/tcp/20")));
        assert!(!is_fd_consuming(&ma("/ip4/127.0.0.1/udp/0/quic-v1")));
        assert!(is_fd_consuming(&ma("/ip4/127.0.0.1/tcp/20/ws")));
        assert!(is_fd_consuming(&ma(&format!("/ip4/127.0.0.1/tcp/20/p2p-circuit/p2p/{pid}"))));
        assert!(!is_fd_consuming(&ma(&format!("/ip4/127.0.0.1/udp/20/quic-v1/p2p-circuit/p2p/{pid}"))));
        assert!(is_fd_consuming(&ma("/p2p-circuit")));
        assert!(is_fd_consuming(&ma("/unix/tmp%2Fsock")));
    }

    #[test]
    fn strips_trailing_peer_id() {
        let pid = peerswarm_proto::identity::PeerId::random();
        assert_eq!(strip_peer_id(ma(&format!("/ip4/1.2.3.4/tcp/1/p2p/{pid}"))), ma("/ip4/1.2.3.4/tcp/1"));
        assert_eq!(strip_peer_id(ma("/ip4/1.2.3.4/tcp/1")), ma("/ip4/1.2.3.4/tcp/1"));
    }

    fn tcp_only(a: &Multiaddr) -> bool {
        a.iter().any(|p| matches!(p, Protocol::Tcp(_)))
    }

    fn anything(_: &Multiaddr) -> bool {
        true
    }

    // go: swarm_dial_test.go TestAddrsForDialFiltering
    #[test]
    fn filtering_drops_duplicates_own_and_unspecified() {
        let q1v1 = ma("/ip4/1.2.3.4/udp/1/quic-v1");
        let q1 = ma("/ip4/1.2.3.4/udp/1/quic");
        let wt1 = ma("/ip4/1.2.3.4/udp/1/quic-v1/webtransport");
        let t1 = ma("/ip4/1.2.3.4/tcp/1");
        let ws1 = ma("/ip4/1.2.3.4/tcp/1/ws");
        let wt2 = ma("/ip4/1.2.3.4/udp/2/quic-v1/webtransport");
        let own = ma("/ip4/5.6.7.8/tcp/1");
        let unspecified = ma("/ip4/0.0.0.0/tcp/1");
        let unspecified6 = ma("/ip6/::/tcp/1");
        let input = vec![
            q1v1.clone(),
            q1.clone(),
            wt1.clone(),
            t1.clone(),
            ws1.clone(),
            wt2.clone(),
            own.clone(),
            unspecified.clone(),
            unspecified6.clone(),
        ];
        let owns = [own.clone()];
        let out = AddrFilter::new(&owns, &anything).filter(input);
        assert_eq!(out.dialable, vec![q1v1, t1, wt2]);
        assert_eq!(
            out.rejected,
            vec![
                (q1, FilterReason::LowerPriorityDuplicate),
                (wt1, FilterReason::LowerPriorityDuplicate),
                (ws1, FilterReason::LowerPriorityDuplicate),
                (own, FilterReason::DialToSelf),
                (unspecified, FilterReason::UnspecifiedIp),
                (unspecified6, FilterReason::UnspecifiedIp),
            ]
        );
    }

    // go: swarm_addr_test.go TestDialBadAddrs (link-local, unsupported /utp)
    #[test]
    fn filtering_drops_link_local_and_untransportable() {
        let input = vec![
            ma("/ip6/fe80::1/tcp/1"),
            ma("/ip6/fe80::100/tcp/1"),
            ma("/ip4/127.0.0.1/udp/1234/utp"),
            ma("/ip4/1.2.3.4/tcp/1"),
        ];
        let out = AddrFilter::new(&[], &tcp_only).filter(input);
        assert_eq!(out.dialable, vec![ma("/ip4/1.2.3.4/tcp/1")]);
        assert_eq!(
            out.rejected,
            vec![
                (ma("/ip4/127.0.0.1/udp/1234/utp"), FilterReason::NoTransport),
                (ma("/ip6/fe80::1/tcp/1"), FilterReason::Ipv6LinkLocal),
                (ma("/ip6/fe80::100/tcp/1"), FilterReason::Ipv6LinkLocal),
            ]
        );
        assert_eq!(FilterReason::NoTransport.to_addr_error::<()>(), Some(AddrError::NoTransport));
        assert_eq!(FilterReason::Ipv6LinkLocal.to_addr_error::<()>(), None);
    }

    // Only reachable-by-webtransport: the QUIC address is dropped by step 1 so
    // the WebTransport address survives step 2.
    #[test]
    fn transport_check_precedes_dedup() {
        let wt = |a: &Multiaddr| a.iter().any(|p| matches!(p, Protocol::WebTransport));
        let input = vec![ma("/ip4/1.2.3.4/udp/1/quic-v1"), ma("/ip4/1.2.3.4/udp/1/quic-v1/webtransport")];
        let out = AddrFilter::new(&[], &wt).filter(input);
        assert_eq!(out.dialable, vec![ma("/ip4/1.2.3.4/udp/1/quic-v1/webtransport")]);
    }

    #[test]
    fn dedups_after_stripping_peer_id_and_applies_gater_and_force_direct() {
        let pid = peerswarm_proto::identity::PeerId::random();
        let relay = ma(&format!("/ip4/9.9.9.9/tcp/1/p2p/{pid}/p2p-circuit"));
        let input = vec![
            ma(&format!("/ip4/1.2.3.4/tcp/1/p2p/{pid}")),
            ma("/ip4/1.2.3.4/tcp/1"),
            ma("/ip4/1.2.3.4/tcp/2"),
            relay.clone(),
        ];
        let gater = |a: &Multiaddr| a != &ma("/ip4/1.2.3.4/tcp/2");
        let out = AddrFilter::new(&[], &anything).with_gater(&gater).force_direct(true).filter(input);
        assert_eq!(out.dialable, vec![ma("/ip4/1.2.3.4/tcp/1")]);
        assert_eq!(
            out.rejected,
            vec![
                (ma("/ip4/1.2.3.4/tcp/2"), FilterReason::GaterDisallowed),
                (relay, FilterReason::RelayNotAllowed)
            ]
        );
    }

    // go: swarm_test.go TestPreventDialListenAddr — our own address only.
    #[test]
    fn own_listen_address_only_leaves_nothing() {
        let own = [ma("/ip4/127.0.0.1/tcp/4001")];
        let out = AddrFilter::new(&own, &anything).filter(vec![ma("/ip4/127.0.0.1/tcp/4001")]);
        assert!(out.dialable.is_empty());
        assert_eq!(out.rejected[0].1, FilterReason::DialToSelf);
    }
}
