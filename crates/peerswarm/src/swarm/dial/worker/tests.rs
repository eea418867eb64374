//! Ports of go's `dial_worker_test.go` with a mock clock: the "network" is
//! the test feeding dial results back.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use multiaddr::Multiaddr;
use peerswarm_proto::identity::PeerId;
use proptest::prelude::*;

use super::*;
use crate::swarm::dial::{DefaultDialRanker, DialRanker};

type Conn = u32;
type Action = DialAction<Conn, String>;

fn ma(s: &str) -> Multiaddr {
    s.parse().unwrap()
}

fn ad(addr: &Multiaddr, delay: Duration) -> AddrDelay {
    AddrDelay { addr: addr.clone(), delay }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A worker, its backoff table, a mock clock and the swarm's connections.
struct Harness {
    w: DialWorker<Conn, String>,
    backoff: DialBackoff,
    now: Instant,
    existing: Option<Conn>,
    next_conn: Conn,
}

impl Harness {
    fn new() -> Self {
        let now = Instant::now();
        Harness {
            w: DialWorker::new(PeerId::random(), DialWorkerConfig::default(), now),
            backoff: DialBackoff::default(),
            now,
            existing: None,
            next_conn: 1,
        }
    }

    fn request(&mut self, addrs: Vec<AddrDelay>) -> RequestId {
        self.w.handle_request(DialRequest::new(addrs))
    }

    /// Fires every due timeout and returns the actions produced.
    fn pump(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        loop {
            while let Some(a) = self.w.poll_action() {
                out.push(a);
            }
            match self.w.poll_timeout() {
                Some(t) if t <= self.now => {
                    let existing = self.existing;
                    self.w.handle_timeout(self.now, &self.backoff, |_| existing);
                }
                _ => return out,
            }
        }
    }

    fn succeed(&mut self, addr: &Multiaddr) -> Conn {
        let conn = self.next_conn;
        self.next_conn += 1;
        let existing = self.existing;
        assert_eq!(
            self.w.handle_dial_result(addr, Ok(conn), self.now, &mut self.backoff, |_| existing),
            None
        );
        self.existing = Some(conn);
        conn
    }

    fn fail(&mut self, addr: &Multiaddr) {
        let existing = self.existing;
        let r =
            self.w.handle_dial_result(addr, Err("refused".into()), self.now, &mut self.backoff, |_| existing);
        assert_eq!(r, None);
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
    }
}

fn dials(actions: &[Action]) -> Vec<Multiaddr> {
    actions
        .iter()
        .filter_map(|a| match a {
            DialAction::Dial { addr, .. } => Some(addr.clone()),
            DialAction::Respond { .. } => None,
        })
        .collect()
}

fn responses(actions: Vec<Action>) -> Vec<(RequestId, Result<Conn, DialError<String>>)> {
    actions
        .into_iter()
        .filter_map(|a| match a {
            DialAction::Respond { request, result } => Some((request, result)),
            DialAction::Dial { .. } => None,
        })
        .collect()
}

// go: TestDialWorkerLoopBasic
#[test]
fn dial_worker_loop_basic() {
    let mut h = Harness::new();
    let a = ma("/ip4/127.0.0.1/tcp/4001");
    let r1 = h.request(vec![ad(&a, Duration::ZERO)]);
    let actions = h.pump();
    assert_eq!(
        actions,
        vec![DialAction::Dial {
            addr: a.clone(),
            timeout: Duration::from_secs(5),
            simultaneous_connect: None
        }]
    );
    let conn = h.succeed(&a);
    assert_eq!(responses(h.pump()), vec![(r1, Ok(conn))]);

    // the second request gets the same connection, without a new dial
    let r2 = h.request(vec![ad(&a, Duration::ZERO)]);
    let actions = h.pump();
    assert!(dials(&actions).is_empty());
    assert_eq!(responses(actions), vec![(r2, Ok(conn))]);
    // nothing left to do: the driver drops the worker
    assert!(h.w.is_idle());
    assert_eq!(h.w.poll_timeout(), None);
}

// go: TestDialWorkerLoopConcurrent
#[test]
fn dial_worker_loop_concurrent() {
    let mut h = Harness::new();
    let tcp = ma("/ip4/127.0.0.1/tcp/4001");
    let quic = ma("/ip4/127.0.0.1/udp/4001/quic-v1");
    let ranked = DefaultDialRanker.rank(&[tcp.clone(), quic.clone()]);
    let ids: Vec<RequestId> = (0..100).map(|_| h.request(ranked.clone())).collect();
    let actions = h.pump();
    assert_eq!(dials(&actions), vec![quic.clone()], "only the first batch fires at once");
    let conn = h.succeed(&quic);
    let got = responses(h.pump());
    assert_eq!(got.len(), 100);
    assert!(got.iter().all(|(_, r)| r == &Ok(conn)));
    assert_eq!(got.iter().map(|(id, _)| *id).collect::<Vec<_>>(), ids);
    h.advance(Duration::from_secs(1));
    assert!(h.pump().is_empty(), "no further dial after success");
}

// go: TestDialWorkerLoopFailure
#[test]
fn dial_worker_loop_failure() {
    let mut h = Harness::new();
    let tcp = ma("/ip4/11.0.0.1/tcp/1234");
    let quic = ma("/ip4/11.0.0.1/udp/1234/quic-v1");
    let r = h.request(DefaultDialRanker.rank(&[tcp.clone(), quic.clone()]));
    assert_eq!(dials(&h.pump()), vec![quic.clone()]);
    h.fail(&quic);
    // nothing in flight: the TCP batch fires at once
    assert_eq!(dials(&h.pump()), vec![tcp.clone()]);
    h.fail(&tcp);
    let got = responses(h.pump());
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, r);
    let err = got[0].1.clone().unwrap_err();
    assert_eq!(err.cause, DialCause::AllDialsFailed);
    assert_eq!(
        err.errors,
        vec![
            (quic.clone(), AddrError::Transport("refused".into())),
            (tcp, AddrError::Transport("refused".into()))
        ]
    );
    assert!(h.backoff.is_backed_off(h.w.peer(), &quic, h.now));
}

// go: TestDialWorkerLoopConcurrentFailure and ...ConcurrentFailureStress
#[test]
fn dial_worker_loop_concurrent_failure() {
    for n_addrs in [2usize, 16] {
        let mut h = Harness::new();
        let addrs: Vec<Multiaddr> =
            (0..n_addrs).map(|i| ma(&format!("/ip4/11.0.0.{}/tcp/{}", i % 256, 1234 + i))).collect();
        let ranked = DefaultDialRanker.rank(&addrs);
        for _ in 0..100 {
            h.request(ranked.clone());
        }
        let mut got = Vec::new();
        let mut steps = 0;
        while got.len() < 100 {
            steps += 1;
            assert!(steps < 10_000, "a request hangs");
            let actions = h.pump();
            for a in dials(&actions) {
                h.fail(&a);
            }
            got.extend(responses(actions));
            h.advance(ms(10));
        }
        assert!(got.iter().all(|(_, r)| r.as_ref().is_err_and(|e| e.cause == DialCause::AllDialsFailed)));
        assert!(h.w.is_idle());
    }
}

// go: TestDialWorkerLoopConcurrentMix
#[test]
fn dial_worker_loop_concurrent_mix() {
    let mut h = Harness::new();
    let good_tcp = ma("/ip4/127.0.0.1/tcp/4001");
    let good_quic = ma("/ip4/127.0.0.1/udp/4001/quic-v1");
    let bad_tcp = ma("/ip4/11.0.0.1/tcp/1234");
    let bad_quic = ma("/ip4/11.0.0.1/udp/1234/quic-v1");
    let good = [good_tcp.clone(), good_quic.clone()];
    let ranked = DefaultDialRanker.rank(&[good_tcp, good_quic, bad_tcp, bad_quic]);
    for _ in 0..100 {
        h.request(ranked.clone());
    }
    let mut got = Vec::new();
    for _ in 0..1000 {
        let actions = h.pump();
        for a in dials(&actions) {
            if good.contains(&a) {
                h.succeed(&a);
            } else {
                h.fail(&a);
            }
        }
        got.extend(responses(actions));
        if got.len() == 100 {
            break;
        }
        h.advance(ms(10));
    }
    assert_eq!(got.len(), 100);
    assert!(got.iter().all(|(_, r)| r.is_ok()));
}

// go: TestDialWorkerLoopAddrDedup
#[test]
fn dial_worker_loop_addr_dedup() {
    let mut h = Harness::new();
    let t1 = ma("/ip4/127.0.0.1/tcp/10000");
    let t2 = ma("/ip4/127.0.0.1/tcp/10000");
    h.request(vec![ad(&t1, Duration::ZERO)]);
    assert_eq!(dials(&h.pump()), vec![t1.clone()]);
    h.fail(&t1);
    assert!(responses(h.pump())[0].1.is_err());
    // clear backoff, otherwise the dial would not be attempted anyway
    let peer = *h.w.peer();
    h.backoff.clear_peer(&peer);

    let r = h.request(vec![ad(&t2, Duration::ZERO)]);
    let actions = h.pump();
    assert!(dials(&actions).is_empty(), "didn't expect a connection attempt");
    let got = responses(actions);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, r);
    assert_eq!(got[0].1.as_ref().unwrap_err().errors, vec![(t1, AddrError::Transport("refused".into()))]);
}

// go: TestDialWorkerLoopHolePunching
#[test]
fn dial_worker_loop_hole_punching() {
    let mut h = Harness::new();
    let t1 = ma("/ip4/127.0.0.1/tcp/10000");
    let t2 = ma("/ip4/127.0.0.1/tcp/10001");
    let ranked = vec![ad(&t1, Duration::ZERO), ad(&t2, ms(100))];
    let r1 = h.request(ranked.clone());
    assert_eq!(dials(&h.pump()), vec![t1.clone()]);
    // t1 hangs; t2 is not due
    assert!(h.pump().is_empty());

    let mut hp = DialRequest::new(ranked);
    hp.simultaneous_connect = Some(HolePunchRole::Client);
    let r2 = h.w.handle_request(hp);
    let actions = h.pump();
    assert_eq!(
        actions,
        vec![DialAction::Dial {
            addr: t2.clone(),
            timeout: Duration::from_secs(5),
            simultaneous_connect: Some(HolePunchRole::Client)
        }]
    );
    let conn = h.succeed(&t2);
    assert_eq!(responses(h.pump()), vec![(r1, Ok(conn)), (r2, Ok(conn))]);
}

// go: TestDialWorkerLoopTCPConnUpgradeWait
#[test]
fn dial_worker_loop_tcp_conn_upgrade_wait() {
    let mut h = Harness::new();
    let a1 = ma("/ip4/192.0.0.170/tcp/10001"); // public
    let a2 = ma("/ip4/127.0.0.1/tcp/10002");
    h.request(vec![ad(&a1, Duration::ZERO), ad(&a2, ms(100))]);
    assert_eq!(dials(&h.pump()), vec![a1.clone()]);
    h.w.handle_handshake_progressed(&a1, h.now);
    h.advance(ms(200));
    assert!(h.pump().is_empty(), "a2 waits for a1's upgrade");
    h.advance(ms(50));
    assert_eq!(dials(&h.pump()), vec![a2.clone()]);
    let conn = h.succeed(&a2);
    assert_eq!(responses(h.pump()).len(), 1);
    let _ = conn;
}

// go: TestDialSimultaneousJoin (worker part): a request waiting on a failing
// address is answered with a connection another request's address made.
#[test]
fn last_chance_check_answers_with_existing_connection() {
    let mut h = Harness::new();
    let silent = ma("/ip4/1.2.3.4/tcp/1");
    let real = ma("/ip4/1.2.3.4/tcp/2");
    let r1 = h.request(vec![ad(&silent, Duration::ZERO)]);
    assert_eq!(dials(&h.pump()), vec![silent.clone()]);
    let r2 = h.request(vec![ad(&silent, Duration::ZERO), ad(&real, Duration::ZERO)]);
    // silent is in flight, so real waits for its delay (0): due now
    assert_eq!(dials(&h.pump()), vec![real.clone()]);
    let c2 = h.succeed(&real);
    assert_eq!(responses(h.pump()), vec![(r2, Ok(c2))]);
    let r3 = h.request(vec![ad(&real, Duration::ZERO)]);
    assert_eq!(responses(h.pump()), vec![(r3, Ok(c2))]);
    h.fail(&silent);
    assert_eq!(responses(h.pump()), vec![(r1, Ok(c2))]);
    // connected: no backoff added
    assert!(!h.backoff.is_backed_off(h.w.peer(), &silent, h.now));
}

#[test]
fn backed_off_address_is_untracked_and_force_direct_dials_it() {
    let mut h = Harness::new();
    let a = ma("/ip4/1.2.3.4/tcp/1");
    let peer = *h.w.peer();
    h.backoff.add(peer, a.clone(), h.now);
    let r1 = h.request(vec![ad(&a, Duration::ZERO)]);
    let actions = h.pump();
    assert!(dials(&actions).is_empty());
    let got = responses(actions);
    assert_eq!(got[0].0, r1);
    assert_eq!(got[0].1.as_ref().unwrap_err().errors, vec![(a.clone(), AddrError::Backoff)]);
    assert_eq!(got[0].1.as_ref().unwrap_err().cause, DialCause::DialBackoff);

    let mut direct = DialRequest::new(vec![ad(&a, Duration::ZERO)]);
    direct.force_direct = true;
    h.w.handle_request(direct);
    assert_eq!(dials(&h.pump()), vec![a]);
}

#[test]
fn requests_without_addresses_and_preloaded_reasons() {
    let mut h = Harness::new();
    let r = h.w.handle_request(DialRequest::new(Vec::new()));
    let got = responses(h.pump());
    assert_eq!(got[0], (r, Err(DialError::new(*h.w.peer(), DialCause::NoAddresses))));

    let own = ma("/ip4/127.0.0.1/tcp/4001");
    let mut req = DialRequest::new(Vec::new());
    req.rejected = vec![(own.clone(), AddrError::DialToSelf)];
    h.w.handle_request(req);
    let err = responses(h.pump()).remove(0).1.unwrap_err();
    assert_eq!(err.cause, DialCause::NoGoodAddresses);
    assert_eq!(err.errors, vec![(own.clone(), AddrError::DialToSelf)]);

    let bad = ma("/ip4/1.2.3.4/tcp/1");
    let mut req = DialRequest::new(vec![ad(&bad, Duration::ZERO)]);
    req.rejected = vec![(own.clone(), AddrError::DialToSelf)];
    h.w.handle_request(req);
    h.pump();
    h.fail(&bad);
    let err = responses(h.pump()).remove(0).1.unwrap_err();
    assert_eq!(err.cause, DialCause::AllDialsFailed);
    assert_eq!(err.errors, vec![(own, AddrError::DialToSelf), (bad, AddrError::Transport("refused".into()))]);
}

#[test]
fn pending_requests_are_bounded() {
    let mut config = DialWorkerConfig::default();
    config.set_max_pending_requests(2).unwrap();
    let mut w: DialWorker<Conn, String> = DialWorker::new(PeerId::random(), config, Instant::now());
    let a = ma("/ip4/1.2.3.4/tcp/1");
    for _ in 0..3 {
        w.handle_request(DialRequest::new(vec![ad(&a, Duration::ZERO)]));
    }
    let actions: Vec<_> = std::iter::from_fn(|| w.poll_action()).collect();
    let got = responses(actions);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1.as_ref().unwrap_err().cause, DialCause::TooManyPendingRequests);
    assert_eq!(w.pending_requests(), 2);
}

#[test]
fn unexpected_result_hands_the_connection_back() {
    let mut h = Harness::new();
    let a = ma("/ip4/1.2.3.4/tcp/1");
    let r = h.w.handle_dial_result(&a, Ok(7), h.now, &mut h.backoff, |_| None);
    assert_eq!(r, Some(7));
}

// ---- the scheduling checker (go checkDialWorkerLoopScheduling) ----

#[derive(Debug, Clone)]
struct TimedDial {
    addr: Multiaddr,
    delay: Duration,
    success: bool,
    fail_after: Duration,
}

fn make_ranker(tc: &[TimedDial]) -> impl Fn(&[Multiaddr]) -> Vec<AddrDelay> + '_ {
    move |_: &[Multiaddr]| tc.iter().map(|t| ad(&t.addr, t.delay)).collect()
}

/// Steps a mock clock by 10 ms and checks every dial happens exactly when
/// due: at its delay, or earlier when no dial is in flight and it is among
/// the smallest remaining delays; no dial after the success; the request
/// is answered (with the connection, or an error if all failed).
fn check_scheduling(
    input: &[TimedDial],
    ranker: &dyn DialRanker,
    max_duration: Duration,
) -> Result<(), String> {
    let mut h = Harness::new();
    let st = h.now;
    let addrs: Vec<Multiaddr> = input.iter().map(|t| t.addr.clone()).collect();
    let req = h.request(ranker.rank(&addrs));
    let successes: HashSet<Multiaddr> = input.iter().filter(|t| t.success).map(|t| t.addr.clone()).collect();

    let mut all: Vec<TimedDial> = input.to_vec();
    let mut fail_at: HashMap<Multiaddr, Instant> = HashMap::new();
    let mut dialed: Vec<Multiaddr> = Vec::new();
    let mut responses_got = Vec::new();
    let mut connected = false;

    let pump = |h: &mut Harness, dialed: &mut Vec<Multiaddr>, responses_got: &mut Vec<_>| {
        let mut actions = h.pump();
        loop {
            let new_dials = dials(&actions);
            responses_got.extend(responses(actions));
            if new_dials.is_empty() {
                break;
            }
            for a in new_dials {
                if successes.contains(&a) {
                    h.succeed(&a);
                }
                dialed.push(a);
            }
            actions = h.pump();
        }
    };

    'outer: loop {
        let due: Vec<Multiaddr> =
            fail_at.iter().filter(|(_, t)| **t <= h.now).map(|(a, _)| a.clone()).collect();
        for a in due {
            fail_at.remove(&a);
            h.fail(&a);
        }
        pump(&mut h, &mut dialed, &mut responses_got);

        let trigger = fail_at.is_empty();
        let mi = all.iter().map(|t| t.delay).min();
        let (mut expected, rest): (Vec<TimedDial>, Vec<TimedDial>) =
            all.into_iter().partition(|t| (trigger && Some(t.delay) == mi) || h.now >= st + t.delay);
        all = rest;
        expected.sort_by_key(|t| t.success); // failures first
        for t in expected {
            let Some(pos) = dialed.iter().position(|a| a == &t.addr) else {
                return Err(format!("didn't receive a dial attempt for {} at {:?}", t.addr, h.now - st));
            };
            dialed.remove(pos);
            if t.success {
                match responses_got.as_slice() {
                    [(id, Ok(_))] if *id == req => {}
                    other => return Err(format!("expected connection to succeed, got {other:?}")),
                }
                connected = true;
                break 'outer;
            }
            if !responses_got.is_empty() {
                return Err("didn't expect a response".into());
            }
            fail_at.insert(t.addr.clone(), h.now + t.fail_after);
        }
        if !dialed.is_empty() {
            return Err(format!("no dial should have happened at {:?}: {dialed:?}", h.now - st));
        }
        h.advance(ms(10));
        if fail_at.is_empty() && all.is_empty() {
            break;
        }
    }
    let elapsed = h.now - st;

    if connected {
        if !dialed.is_empty() {
            return Err(format!("didn't expect a dial attempt: {dialed:?}"));
        }
        for _ in 0..300 {
            h.advance(ms(10));
            pump(&mut h, &mut dialed, &mut responses_got);
            if !dialed.is_empty() {
                return Err(format!("didn't expect a dial attempt after success: {dialed:?}"));
            }
        }
    } else {
        match responses_got.as_slice() {
            [(id, Err(_))] if *id == req => {}
            other => return Err(format!("expected to receive an error response, got {other:?}")),
        }
    }
    if elapsed > max_duration {
        return Err(format!("expected test to finish early: expected {max_duration:?}, took {elapsed:?}"));
    }
    Ok(())
}

fn local_addrs() -> Vec<Multiaddr> {
    (0..10).map(|i| ma(&format!("/ip4/127.0.0.1/tcp/{}", 20000 + i))).collect()
}

fn td(addr: &Multiaddr, delay: u64, success: bool, fail_after: u64) -> TimedDial {
    TimedDial { addr: addr.clone(), delay: ms(delay), success, fail_after: ms(fail_after) }
}

// go: TestCheckDialWorkerLoopScheduling
#[test]
fn check_dial_worker_loop_scheduling() {
    let a = local_addrs();
    let tc = vec![td(&a[1], 0, true, 0), td(&a[0], 100, false, 50)];
    check_scheduling(&tc, &make_ranker(&tc), ms(20)).unwrap();
    // the no-delay ranker dials a[0] too early: the checker must notice
    assert!(check_scheduling(&tc, &NoDelay, ms(20)).is_err());
}

struct NoDelay;
impl DialRanker for NoDelay {
    fn rank(&self, addrs: &[Multiaddr]) -> Vec<AddrDelay> {
        crate::swarm::dial::NoDelayDialRanker.rank(addrs)
    }
}

// go: TestDialWorkerLoopRanking
#[test]
fn dial_worker_loop_ranking() {
    let a = local_addrs();
    let cases: Vec<(&str, Vec<TimedDial>, u64)> = vec![
        ("first success", vec![td(&a[1], 0, true, 0), td(&a[0], 100, false, 50)], 20),
        (
            "delayed dials",
            vec![
                td(&a[0], 0, false, 200),
                td(&a[1], 100, false, 100),
                td(&a[2], 300, false, 100),
                td(&a[3], 2000, true, 0),
                td(&a[4], 2001, false, 100), // never dialed
            ],
            310,
        ),
        ("failed dials", vec![td(&a[0], 0, false, 105), td(&a[1], 100, false, 20)], 200),
    ];
    for (name, tc, max) in cases {
        check_scheduling(&tc, &make_ranker(&tc), ms(max)).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

// go: TestDialWorkerLoopQuicOverTCP
#[test]
fn dial_worker_loop_quic_over_tcp() {
    let tc = vec![
        td(&ma("/ip4/127.0.0.1/udp/20000/quic-v1"), 0, true, 0),
        td(&ma("/ip4/127.0.0.1/tcp/20000"), 30, true, 0),
    ];
    check_scheduling(&tc, &DefaultDialRanker, ms(20)).unwrap();
}

fn scheduling_case() -> impl Strategy<Value = Vec<TimedDial>> {
    (1usize..=20)
        .prop_flat_map(|n| {
            (
                proptest::collection::vec(0u64..100, n),
                proptest::collection::vec(0u64..100, n),
                0..n,
                0u64..100,
            )
        })
        .prop_map(|(delays, fails, success_idx, seed)| {
            let mut input: Vec<TimedDial> = delays
                .iter()
                .zip(&fails)
                .enumerate()
                .map(|(i, (d, f))| {
                    td(&ma(&format!("/ip4/127.0.0.1/tcp/{}", 10550 + i)), d * 10, false, f * 10)
                })
                .collect();
            // a delay no other address has: no extra dial after success
            let taken: HashSet<u64> = delays.iter().copied().collect();
            let d = (0..100).map(|k| (seed + k) % 100).find(|d| !taken.contains(d)).unwrap_or(0);
            input[success_idx].delay = ms(d * 10);
            input[success_idx].success = true;
            input
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(50))]

    // go: TestDialWorkerLoopSchedulingProperty
    #[test]
    fn dial_worker_loop_scheduling_property(tc in scheduling_case()) {
        let ranker = make_ranker(&tc);
        prop_assert!(check_scheduling(&tc, &ranker, Duration::from_secs(10)).is_ok(),
            "{:?}", check_scheduling(&tc, &ranker, Duration::from_secs(10)));
    }
}
