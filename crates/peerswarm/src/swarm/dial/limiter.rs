//! The dial limiter: concurrent address dials overall (file descriptors) and
//! per peer (reference §2.7).

use std::collections::{HashMap, VecDeque};

use multiaddr::Multiaddr;
use peerswarm_proto::identity::PeerId;
use thiserror::Error;

use super::addrs::{is_fd_consuming, is_relay};
use super::ConfigError;

/// Limiter knobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimiterConfig {
    fd_limit: usize,
    per_peer_limit: usize,
    max_queued: usize,
}

impl Default for LimiterConfig {
    fn default() -> Self {
        LimiterConfig { fd_limit: 160, per_peer_limit: 8, max_queued: 4096 }
    }
}

impl LimiterConfig {
    /// Concurrent dials that consume a file descriptor (TCP, unix), over all
    /// peers. Default 160 (go `ConcurrentFdDials`). Higher dials faster at the
    /// risk of "too many open files". Zero is invalid.
    pub fn set_fd_limit(&mut self, limit: usize) -> Result<&mut Self, ConfigError> {
        if limit == 0 {
            return Err(ConfigError::Zero("fd_limit"));
        }
        self.fd_limit = limit;
        Ok(self)
    }

    /// Concurrent address dials to one peer. Default 8 (go
    /// `DefaultPerPeerRateLimit`). Zero is invalid.
    pub fn set_per_peer_limit(&mut self, limit: usize) -> Result<&mut Self, ConfigError> {
        if limit == 0 {
            return Err(ConfigError::Zero("per_peer_limit"));
        }
        self.per_peer_limit = limit;
        Ok(self)
    }

    /// Jobs that may wait (for a peer or fd token) at once; beyond it
    /// [`DialLimiter::submit`] fails with [`LimiterError::QueueFull`].
    /// Default 4096 (about 150 bytes each). Not in go, whose queues are
    /// unbounded. Zero is invalid.
    pub fn set_max_queued(&mut self, max: usize) -> Result<&mut Self, ConfigError> {
        if max == 0 {
            return Err(ConfigError::Zero("max_queued"));
        }
        self.max_queued = max;
        Ok(self)
    }
}

/// Why a job was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum LimiterError {
    /// As many jobs are waiting as the limiter queues.
    #[error("dial limiter queue full")]
    QueueFull,
}

/// Identifies a job submitted to a [`DialLimiter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(u64);

/// A job that now holds its tokens: dial it, then call
/// [`DialLimiter::finish`] (or [`DialLimiter::cancel`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadyDial {
    /// The job.
    pub id: JobId,
    /// The peer to dial.
    pub peer: PeerId,
    /// The address to dial.
    pub addr: Multiaddr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JobState {
    /// Waiting for a peer token.
    WaitingPeer,
    /// Holds a peer token, waiting for an fd token.
    WaitingFd,
    /// Holds its tokens; in the ready queue or running.
    Active,
}

#[derive(Debug)]
struct Job {
    peer: PeerId,
    addr: Multiaddr,
    uses_fd: bool,
    holds_fd: bool,
    state: JobState,
}

/// Bounds concurrent address dials: at most `fd_limit` fd-consuming dials
/// overall and `per_peer_limit` dials per peer; excess jobs wait FIFO.
///
/// A job takes its peer token first, then (if it consumes a file descriptor
/// and is not a relay address) an fd token; released tokens go to the next
/// non-cancelled waiter. Tokens are tracked per job, so counters never
/// underflow (go `TestFDLimitUnderflow`).
///
/// Call protocol: [`submit`](Self::submit) jobs; loop on
/// [`poll_ready`](Self::poll_ready) and start each returned dial; when a
/// dial ends call [`finish`](Self::finish), or [`cancel`](Self::cancel) to
/// abandon a job in any state; [`clear_peer`](Self::clear_peer) drops a
/// peer's waiting jobs when its dial worker ends. After any of these, poll
/// again.
#[derive(Debug, Default)]
pub struct DialLimiter {
    config: LimiterConfig,
    next_id: u64,
    jobs: HashMap<JobId, Job>,
    fd_in_use: usize,
    active_per_peer: HashMap<PeerId, usize>,
    waiting_on_peer: HashMap<PeerId, VecDeque<JobId>>,
    waiting_on_fd: VecDeque<JobId>,
    waiting: usize,
    ready: VecDeque<JobId>,
}

impl DialLimiter {
    /// An idle limiter.
    pub fn new(config: LimiterConfig) -> Self {
        DialLimiter { config, ..DialLimiter::default() }
    }

    /// Fd tokens in use.
    pub fn fd_in_use(&self) -> usize {
        self.fd_in_use
    }

    /// Peer tokens in use for `peer`.
    pub fn active_for_peer(&self, peer: &PeerId) -> usize {
        self.active_per_peer.get(peer).copied().unwrap_or(0)
    }

    /// Jobs waiting for a token.
    pub fn waiting(&self) -> usize {
        self.waiting
    }

    /// Queues a dial of `addr` for `peer`.
    pub fn submit(&mut self, peer: PeerId, addr: Multiaddr) -> Result<JobId, LimiterError> {
        if self.waiting >= self.config.max_queued {
            return Err(LimiterError::QueueFull);
        }
        let id = JobId(self.next_id);
        self.next_id += 1;
        let uses_fd = is_fd_consuming(&addr) && !is_relay(&addr);
        self.jobs.insert(id, Job { peer, addr, uses_fd, holds_fd: false, state: JobState::WaitingPeer });
        self.waiting += 1;
        if self.active_for_peer(&peer) >= self.config.per_peer_limit {
            self.waiting_on_peer.entry(peer).or_default().push_back(id);
        } else {
            *self.active_per_peer.entry(peer).or_insert(0) += 1;
            self.take_fd_or_wait(id);
        }
        Ok(id)
    }

    /// The next job that holds its tokens and should be dialed now.
    pub fn poll_ready(&mut self) -> Option<ReadyDial> {
        let id = self.ready.pop_front()?;
        // Invariant: `ready` only holds ids of live jobs (cancel removes them).
        let job = self.jobs.get(&id)?;
        Some(ReadyDial { id, peer: job.peer, addr: job.addr.clone() })
    }

    /// The dial of `id` ended (success or failure): frees its tokens. Unknown
    /// or already finished ids are ignored.
    pub fn finish(&mut self, id: JobId) {
        self.cancel(id);
    }

    /// Abandons `id` whatever its state: a waiting job is dropped (and gives
    /// its peer token, if it holds one, to the next waiter); a ready or
    /// running job frees its tokens (the caller stops the dial). Unknown ids
    /// are ignored.
    pub fn cancel(&mut self, id: JobId) {
        let Some(job) = self.jobs.remove(&id) else { return };
        match job.state {
            JobState::WaitingPeer => {
                self.waiting -= 1;
                if let Some(q) = self.waiting_on_peer.get_mut(&job.peer) {
                    q.retain(|j| *j != id);
                    if q.is_empty() {
                        self.waiting_on_peer.remove(&job.peer);
                    }
                }
            }
            JobState::WaitingFd => {
                self.waiting -= 1;
                self.waiting_on_fd.retain(|j| *j != id);
                self.free_peer_token(job.peer);
            }
            JobState::Active => {
                self.ready.retain(|j| *j != id);
                if job.holds_fd {
                    self.free_fd_token();
                }
                self.free_peer_token(job.peer);
            }
        }
    }

    /// Drops every job of `peer` not yet handed out by
    /// [`poll_ready`](Self::poll_ready) (its dial worker ended). Running jobs
    /// are left to [`finish`](Self::finish) or [`cancel`](Self::cancel).
    pub fn clear_peer(&mut self, peer: &PeerId) {
        if let Some(q) = self.waiting_on_peer.remove(peer) {
            for id in q {
                self.jobs.remove(&id);
                self.waiting -= 1;
            }
        }
        let on_fd: Vec<JobId> = self
            .waiting_on_fd
            .iter()
            .copied()
            .filter(|id| self.jobs.get(id).is_some_and(|j| &j.peer == peer))
            .collect();
        for id in on_fd {
            self.cancel(id);
        }
        let ready: Vec<JobId> = self
            .ready
            .iter()
            .copied()
            .filter(|id| self.jobs.get(id).is_some_and(|j| &j.peer == peer))
            .collect();
        for id in ready {
            self.cancel(id);
        }
    }

    fn take_fd_or_wait(&mut self, id: JobId) {
        let Some(job) = self.jobs.get_mut(&id) else { return };
        if job.uses_fd {
            if self.fd_in_use >= self.config.fd_limit {
                job.state = JobState::WaitingFd;
                self.waiting_on_fd.push_back(id);
                return;
            }
            self.fd_in_use += 1;
            job.holds_fd = true;
        }
        job.state = JobState::Active;
        self.waiting -= 1;
        self.ready.push_back(id);
    }

    fn free_fd_token(&mut self) {
        self.fd_in_use = self.fd_in_use.saturating_sub(1);
        // Cancelled jobs are removed from the queue eagerly, so the head is
        // always a live waiter.
        if let Some(next) = self.waiting_on_fd.pop_front() {
            if let Some(job) = self.jobs.get_mut(&next) {
                self.fd_in_use += 1;
                job.holds_fd = true;
                job.state = JobState::Active;
                self.waiting -= 1;
                self.ready.push_back(next);
            }
        }
    }

    fn free_peer_token(&mut self, peer: PeerId) {
        if let Some(n) = self.active_per_peer.get_mut(&peer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.active_per_peer.remove(&peer);
            }
        }
        let Some(q) = self.waiting_on_peer.get_mut(&peer) else { return };
        let next = q.pop_front();
        if q.is_empty() {
            self.waiting_on_peer.remove(&peer);
        }
        if let Some(next) = next {
            *self.active_per_peer.entry(peer).or_insert(0) += 1;
            self.take_fd_or_wait(next);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};

    fn addr_with_port(p: u16) -> Multiaddr {
        format!("/ip4/127.0.0.1/tcp/{p}").parse().unwrap()
    }

    fn port(a: &Multiaddr) -> u16 {
        a.iter()
            .find_map(|p| match p {
                multiaddr::Protocol::Tcp(p) => Some(p),
                _ => None,
            })
            .unwrap_or(u16::MAX)
    }

    fn limiter(fd: usize, per_peer: usize) -> DialLimiter {
        let mut c = LimiterConfig::default();
        c.set_fd_limit(fd).unwrap().set_per_peer_limit(per_peer).unwrap();
        DialLimiter::new(c)
    }

    fn drain(l: &mut DialLimiter) -> Vec<ReadyDial> {
        std::iter::from_fn(|| l.poll_ready()).collect()
    }

    // go: limiter_test.go TestLimiterBasicDials
    #[test]
    fn limiter_basic_dials() {
        let mut l = limiter(160, 4);
        let pid = PeerId::random();
        let bads: Vec<JobId> = (1..=4).map(|p| l.submit(pid, addr_with_port(p)).unwrap()).collect();
        let good = l.submit(pid, addr_with_port(20)).unwrap();
        let started = drain(&mut l);
        assert_eq!(started.iter().map(|r| r.id).collect::<Vec<_>>(), bads, "the good dial waits");
        // complete a single hung dial (it fails): the good one starts
        l.finish(bads[0]);
        let started = drain(&mut l);
        assert_eq!(started.len(), 1);
        assert_eq!(started[0].id, good);
        assert_eq!(started[0].addr, addr_with_port(20));
    }

    // go: limiter_test.go TestFDLimiting
    #[test]
    fn fd_limiting() {
        let mut l = limiter(16, 5);
        let pids: Vec<PeerId> = (0..4).map(|_| PeerId::random()).collect();
        for pid in &pids {
            for p in 1..=4 {
                l.submit(*pid, addr_with_port(p)).unwrap();
            }
        }
        for pid in &pids {
            l.submit(*pid, addr_with_port(20)).unwrap();
        }
        assert_eq!(drain(&mut l).len(), 16, "the four good TCP dials wait for fd tokens");
        assert_eq!(l.fd_in_use(), 16);
        assert_eq!(l.waiting(), 4);

        // not fd-consuming: starts at once
        let utp: Multiaddr = "/ip4/127.0.0.1/udp/7777/utp".parse().unwrap();
        let id = l.submit(PeerId::random(), utp.clone()).unwrap();
        assert_eq!(drain(&mut l), vec![ReadyDial { id, peer: l.jobs[&id].peer, addr: utp }]);

        // relay over tcp: no fd token either
        let pid6 = PeerId::random();
        let relay: Multiaddr = format!("/ip4/127.0.0.1/tcp/20/p2p-circuit/p2p/{pid6}").parse().unwrap();
        let id = l.submit(pid6, relay.clone()).unwrap();
        let started = drain(&mut l);
        assert_eq!(started.len(), 1);
        assert_eq!(started[0].id, id);
        assert_eq!(l.fd_in_use(), 16);
    }

    // go: limiter_test.go TestTokenRedistribution
    #[test]
    fn token_redistribution() {
        let mut l = limiter(8, 4);
        let pids = [PeerId::random(), PeerId::random()];
        let mut bad = HashMap::new();
        for pid in pids {
            for p in 1..=4 {
                let id = l.submit(pid, addr_with_port(p)).unwrap();
                bad.entry(pid).or_insert_with(Vec::new).push(id);
            }
        }
        let good = l.submit(pids[1], "/ip4/127.0.0.1/tcp/1001".parse().unwrap()).unwrap();
        assert_eq!(drain(&mut l).len(), 8, "no further dial starts");

        // one of peer 0's dials fails: its tokens go to no one of peer 1
        l.finish(bad[&pids[0]][0]);
        assert!(drain(&mut l).is_empty(), "no more dials should have started");

        // fill peer 0's limit again; must not starve peer 1's queued dial
        let extra = l.submit(pids[0], addr_with_port(7)).unwrap();
        let started = drain(&mut l);
        assert_eq!(started.iter().map(|r| r.id).collect::<Vec<_>>(), vec![extra]);

        // one of peer 1's dials fails: its tokens go to peer 1's good dial
        l.finish(bad[&pids[1]][0]);
        let started = drain(&mut l);
        assert_eq!(started.iter().map(|r| r.id).collect::<Vec<_>>(), vec![good]);
    }

    // go: limiter_test.go TestStressLimiter: 20 peers × 101 addresses in
    // random order (fd 20, per peer 5): every peer reaches its good address.
    #[test]
    fn stress_limiter() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut l = limiter(20, 5);
        let peers: Vec<PeerId> = (0..20).map(|_| PeerId::random()).collect();
        let mut addresses: Vec<Multiaddr> = (0..100).map(addr_with_port).collect();
        addresses.push(addr_with_port(2000));
        for pid in &peers {
            let mut order = addresses.clone();
            order.shuffle(&mut rng);
            for a in order {
                l.submit(*pid, a).unwrap();
            }
        }
        let mut running: Vec<ReadyDial> = Vec::new();
        let mut succeeded = std::collections::HashSet::new();
        let mut steps = 0;
        while succeeded.len() < peers.len() {
            steps += 1;
            assert!(steps < 100_000, "limiter stalled");
            running.extend(drain(&mut l));
            assert!(l.fd_in_use() <= 20);
            for pid in &peers {
                assert!(l.active_for_peer(pid) <= 5);
            }
            // complete a random running dial
            assert!(!running.is_empty(), "nothing running while jobs wait");
            let job = running.swap_remove(rng.gen_range(0..running.len()));
            l.finish(job.id);
            if port(&job.addr) > 1000 && succeeded.insert(job.peer) {
                l.clear_peer(&job.peer);
                for r in running.iter().filter(|r| r.peer == job.peer) {
                    l.cancel(r.id);
                }
                running.retain(|r| r.peer != job.peer);
            }
        }
        assert_eq!(l.waiting(), 0);
        for r in running {
            l.finish(r.id);
        }
        assert_eq!(l.fd_in_use(), 0);
    }

    // go: limiter_test.go TestFDLimitUnderflow: 60 dials that time out or are
    // cancelled never drive the fd count below zero (here: it returns to 0
    // exactly, and finishing twice or cancelling after finishing is harmless).
    #[test]
    fn fd_limit_underflow() {
        let mut l = limiter(20, 3);
        let peers: Vec<PeerId> = (0..20).map(|_| PeerId::random()).collect();
        let ids: Vec<JobId> =
            (0..60).map(|i| l.submit(peers[i % 20], addr_with_port(i as u16)).unwrap()).collect();
        let started = drain(&mut l);
        assert_eq!(started.len(), 20);
        // cancel everything in a mixed order: waiting ones first, then running
        for id in ids.iter().rev() {
            l.cancel(*id);
            for r in drain(&mut l) {
                l.finish(r.id);
                l.finish(r.id);
                l.cancel(r.id);
            }
        }
        assert_eq!(l.fd_in_use(), 0);
        assert_eq!(l.waiting(), 0);
        assert!(peers.iter().all(|p| l.active_for_peer(p) == 0));
    }

    #[test]
    fn cancelled_waiters_are_skipped_and_queue_is_bounded() {
        let mut c = LimiterConfig::default();
        c.set_fd_limit(1).unwrap().set_per_peer_limit(1).unwrap().set_max_queued(2).unwrap();
        let mut l = DialLimiter::new(c);
        let p = PeerId::random();
        let a = l.submit(p, addr_with_port(1)).unwrap();
        let b = l.submit(p, addr_with_port(2)).unwrap();
        let c2 = l.submit(p, addr_with_port(3)).unwrap();
        assert_eq!(l.submit(p, addr_with_port(4)), Err(LimiterError::QueueFull));
        assert_eq!(drain(&mut l).len(), 1);
        l.cancel(b);
        l.finish(a);
        assert_eq!(drain(&mut l).iter().map(|r| r.id).collect::<Vec<_>>(), vec![c2]);
        // clear_peer drops waiting jobs only
        let d = l.submit(p, addr_with_port(5)).unwrap();
        l.clear_peer(&p);
        l.finish(c2);
        assert!(drain(&mut l).is_empty());
        l.cancel(d); // already dropped: ignored
        assert_eq!(l.fd_in_use(), 0);
        assert_eq!(l.waiting(), 0);
    }
}
