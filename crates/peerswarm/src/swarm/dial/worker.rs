//! The per-peer dial worker (reference §2.3).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use multiaddr::Multiaddr;
use peerswarm_proto::identity::PeerId;

use super::addrs::is_private;
use super::backoff::DialBackoff;
use super::error::{AddrError, DialCause, DialError};
use super::queue::DialQueue;
use super::ranker::{AddrDelay, PUBLIC_TCP_DELAY};
use super::ConfigError;

/// Dial worker knobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialWorkerConfig {
    dial_timeout: Duration,
    local_dial_timeout: Duration,
    max_pending_requests: usize,
    max_tracked_addrs: usize,
}

impl Default for DialWorkerConfig {
    fn default() -> Self {
        DialWorkerConfig {
            dial_timeout: Duration::from_secs(15),
            local_dial_timeout: Duration::from_secs(5),
            max_pending_requests: 1024,
            max_tracked_addrs: 256,
        }
    }
}

impl DialWorkerConfig {
    /// Timeout of one address dial, security and muxer handshakes included.
    /// Default 15 s (go `WithDialTimeout`).
    pub fn set_dial_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.dial_timeout = timeout;
        self
    }

    /// Timeout for private and loopback addresses ([`is_private`]), used only
    /// when shorter than the dial timeout (quirk §8.12, kept). Default 5 s
    /// (go `WithDialTimeoutLocal`); raise it on slow VPNs.
    pub fn set_local_dial_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.local_dial_timeout = timeout;
        self
    }

    /// Requests one worker holds at once; further requests are answered at
    /// once with [`DialCause::TooManyPendingRequests`]. Default 1024 (a few
    /// hundred bytes each). Zero is invalid.
    pub fn set_max_pending_requests(&mut self, max: usize) -> Result<&mut Self, ConfigError> {
        if max == 0 {
            return Err(ConfigError::Zero("max_pending_requests"));
        }
        self.max_pending_requests = max;
        Ok(self)
    }

    /// Distinct addresses one worker tracks (dials at most once). Addresses
    /// beyond it are ignored (logged at debug). Default 256; go caps a
    /// peer's resolved addresses at 100. Zero is invalid.
    pub fn set_max_tracked_addrs(&mut self, max: usize) -> Result<&mut Self, ConfigError> {
        if max == 0 {
            return Err(ConfigError::Zero("max_tracked_addrs"));
        }
        self.max_tracked_addrs = max;
        Ok(self)
    }

    /// The timeout for dialing `addr`.
    pub fn timeout_for(&self, addr: &Multiaddr) -> Duration {
        if is_private(addr) && self.local_dial_timeout < self.dial_timeout {
            self.local_dial_timeout
        } else {
            self.dial_timeout
        }
    }
}

/// Which side of a hole punch we take (go `WithSimultaneousConnect(isClient)`);
/// transports flip the handshake role for [`HolePunchRole::Server`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HolePunchRole {
    /// We act as the handshake initiator.
    Client,
    /// We act as the handshake responder.
    Server,
}

/// One caller's dial request, with its addresses already filtered and
/// ranked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialRequest<E> {
    /// The addresses to dial and their delays (from a
    /// [`DialRanker`](super::DialRanker)), after the
    /// [`AddrFilter`](super::AddrFilter).
    pub addrs: Vec<AddrDelay>,
    /// Addresses the filter rejected, pre-loaded into the request's
    /// [`DialError`] (see [`FilterReason::to_addr_error`](super::FilterReason::to_addr_error)).
    pub rejected: Vec<(Multiaddr, AddrError<E>)>,
    /// A hole-punch dial: every address is dialed without delay, and
    /// not-yet-dialed addresses of earlier requests are pulled forward.
    pub simultaneous_connect: Option<HolePunchRole>,
    /// A direct dial: backoff is not checked for the addresses this request
    /// adds (the filter already dropped relay addresses).
    pub force_direct: bool,
}

impl<E> DialRequest<E> {
    /// A plain request for `addrs`.
    pub fn new(addrs: Vec<AddrDelay>) -> Self {
        DialRequest { addrs, rejected: Vec::new(), simultaneous_connect: None, force_direct: false }
    }
}

/// Identifies a request within its worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(u64);

/// What the worker asks its driver to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialAction<C, E> {
    /// Dial `addr` (through the [`DialLimiter`](super::DialLimiter)) within
    /// `timeout`, then report with [`DialWorker::handle_dial_result`].
    Dial {
        /// The address.
        addr: Multiaddr,
        /// Per-address timeout, counted from when the dial starts.
        timeout: Duration,
        /// Set for hole-punch dials: the handshake role to take.
        simultaneous_connect: Option<HolePunchRole>,
    },
    /// Answer the request: it is complete.
    Respond {
        /// The request.
        request: RequestId,
        /// The connection, or why there is none.
        result: Result<C, DialError<E>>,
    },
}

#[derive(Debug)]
enum AddrStatus<C, E> {
    Queued,
    InFlight,
    Connected(C),
    Failed(AddrError<E>),
}

#[derive(Debug)]
struct Tracked<C, E> {
    status: AddrStatus<C, E>,
    simultaneous_connect: Option<HolePunchRole>,
    force_direct: bool,
    expected_upgrade: Option<Instant>,
}

#[derive(Debug)]
struct Pending<E> {
    addrs: HashSet<Multiaddr>,
    error: DialError<E>,
    force_direct: bool,
}

/// Synchronises all concurrent dials to one peer: each address is dialed at
/// most once per worker, in delay-ordered batches, and each request is
/// answered exactly once.
///
/// # Call protocol
///
/// The driver creates one worker per peer when the first caller dials (after
/// checking for an existing acceptable connection), and:
///
/// * feeds requests with [`handle_request`](Self::handle_request), dial
///   outcomes with [`handle_dial_result`](Self::handle_dial_result) and
///   "TCP connected, upgrading" progress with
///   [`handle_handshake_progressed`](Self::handle_handshake_progressed);
/// * after every input drains [`poll_action`](Self::poll_action);
/// * calls [`handle_timeout`](Self::handle_timeout) once
///   [`poll_timeout`](Self::poll_timeout) is reached — which may already be
///   the case right after an input (the next batch fires at once when
///   nothing is in flight), so check it before sleeping;
/// * drops the worker once [`is_idle`](Self::is_idle) (every request
///   answered), cancelling its in-flight dials and clearing its waiting
///   limiter jobs. Results of dials cancelled that way must not be fed back.
///
/// # Scheduling (go's timer rule)
///
/// Delays are measured from the worker's creation (quirk §8.4, kept: a
/// request joining an old worker finds elapsed delays due). While nothing
/// is in flight and no connection was made, the next batch is due at once:
/// the first batch always fires immediately whatever its delay, and the
/// failure of every in-flight dial pulls the next batch forward. Otherwise a
/// batch fires at its delay, but not before any in-flight public address
/// that reported handshake progress had [`PUBLIC_TCP_DELAY`] to finish its
/// upgrade (quirk §8.3: go's code waits 1× the delay, its docs say 2×; we
/// follow the code).
///
/// Deliberate difference: go keeps dialing queued addresses while the worker
/// lives even when no request waits; here nothing is scheduled without a
/// pending request, so a success never leads to further dials (quirk §8.5:
/// in-flight siblings are not cancelled on success; dropping an idle worker
/// cancels them).
#[derive(Debug)]
pub struct DialWorker<C, E> {
    peer: PeerId,
    config: DialWorkerConfig,
    start: Instant,
    next_request: u64,
    pending: BTreeMap<RequestId, Pending<E>>,
    tracked: HashMap<Multiaddr, Tracked<C, E>>,
    queue: DialQueue,
    in_flight: usize,
    connected: bool,
    actions: VecDeque<DialAction<C, E>>,
}

impl<C: Clone, E: Clone> DialWorker<C, E> {
    /// A worker for `peer`, started at `now` (the origin of all delays).
    pub fn new(peer: PeerId, config: DialWorkerConfig, now: Instant) -> Self {
        DialWorker {
            peer,
            config,
            start: now,
            next_request: 0,
            pending: BTreeMap::new(),
            tracked: HashMap::new(),
            queue: DialQueue::new(),
            in_flight: 0,
            connected: false,
            actions: VecDeque::new(),
        }
    }

    /// The peer this worker dials.
    pub fn peer(&self) -> &PeerId {
        &self.peer
    }

    /// Whether every request has been answered.
    pub fn is_idle(&self) -> bool {
        self.pending.is_empty()
    }

    /// Requests waiting for an answer.
    pub fn pending_requests(&self) -> usize {
        self.pending.len()
    }

    /// Address dials started and not yet reported.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Adds a request. It is answered by a [`DialAction::Respond`], possibly
    /// at once: with an earlier connection on one of its addresses, with
    /// [`DialCause::NoAddresses`] / [`DialCause::NoGoodAddresses`] if it
    /// has no address, or [`DialCause::AllDialsFailed`] if all of them
    /// already failed in this worker.
    pub fn handle_request(&mut self, req: DialRequest<E>) -> RequestId {
        let id = RequestId(self.next_request);
        self.next_request += 1;
        let mut error = DialError::new(self.peer, DialCause::AllDialsFailed);
        let had_rejected = !req.rejected.is_empty();
        for (addr, e) in req.rejected {
            error.record(addr, e);
        }
        if self.pending.len() >= self.config.max_pending_requests {
            error.cause = DialCause::TooManyPendingRequests;
            self.respond(id, Err(error));
            return id;
        }
        if req.addrs.is_empty() {
            error.cause = if had_rejected { DialCause::NoGoodAddresses } else { DialCause::NoAddresses };
            self.respond(id, Err(error));
            return id;
        }

        let mut seen = HashSet::new();
        let mut to_dial = Vec::new();
        let mut to_join = Vec::new();
        for AddrDelay { addr, delay } in req.addrs {
            if !seen.insert(addr.clone()) {
                continue;
            }
            let delay = if req.simultaneous_connect.is_some() { Duration::ZERO } else { delay };
            match self.tracked.get(&addr).map(|t| &t.status) {
                None => to_dial.push(AddrDelay { addr, delay }),
                Some(AddrStatus::Connected(c)) => {
                    let c = c.clone();
                    self.respond(id, Ok(c));
                    return id;
                }
                Some(AddrStatus::Failed(e)) => error.record(addr, e.clone()),
                Some(AddrStatus::Queued | AddrStatus::InFlight) => to_join.push(AddrDelay { addr, delay }),
            }
        }
        let room = self.config.max_tracked_addrs.saturating_sub(self.tracked.len());
        if to_dial.len() > room {
            tracing::debug!(peer = %self.peer, dropped = to_dial.len() - room, "dial worker address cap reached");
            to_dial.truncate(room);
        }
        if to_dial.is_empty() && to_join.is_empty() {
            self.respond(id, Err(error));
            return id;
        }

        let addrs = to_dial.iter().chain(&to_join).map(|a| a.addr.clone()).collect();
        self.pending.insert(id, Pending { addrs, error, force_direct: req.force_direct });
        for entry in to_join {
            if let Some(t) = self.tracked.get_mut(&entry.addr) {
                if matches!(t.status, AddrStatus::Queued)
                    && req.simultaneous_connect.is_some()
                    && t.simultaneous_connect.is_none()
                {
                    t.simultaneous_connect = req.simultaneous_connect;
                    self.queue.add(entry);
                }
            }
        }
        for entry in to_dial {
            self.tracked.insert(
                entry.addr.clone(),
                Tracked {
                    status: AddrStatus::Queued,
                    simultaneous_connect: req.simultaneous_connect,
                    force_direct: req.force_direct,
                    expected_upgrade: None,
                },
            );
            self.queue.add(entry);
        }
        id
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called;
    /// `None` when there is nothing to dial or no request waits. May be in
    /// the past (then call it now).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.pending.is_empty() {
            return None;
        }
        let top = self.queue.top_delay()?;
        if self.in_flight == 0 && !self.connected {
            return Some(self.start);
        }
        let at = self.start + top;
        let upgrade = self.tracked.values().filter_map(|t| t.expected_upgrade).max();
        Some(upgrade.map_or(at, |u| at.max(u)))
    }

    /// Fires the next batch if [`poll_timeout`](Self::poll_timeout) is
    /// reached: each address is dialed unless it is backed off (then it
    /// fails with [`AddrError::Backoff`] without a dial and is forgotten, so
    /// a later force-direct request may dial it). `existing(force_direct)` is
    /// the last-chance lookup of an acceptable connection, for requests left
    /// without addresses.
    pub fn handle_timeout(
        &mut self,
        now: Instant,
        backoff: &DialBackoff,
        mut existing: impl FnMut(bool) -> Option<C>,
    ) {
        if self.poll_timeout().is_none_or(|t| t > now) {
            return;
        }
        for AddrDelay { addr, .. } in self.queue.next_batch() {
            let Some(t) = self.tracked.get_mut(&addr) else { continue };
            if !t.force_direct && backoff.is_backed_off(&self.peer, &addr, now) {
                self.dispatch_error(&addr, AddrError::Backoff, &mut existing);
                continue;
            }
            t.status = AddrStatus::InFlight;
            self.in_flight += 1;
            let timeout = self.config.timeout_for(&addr);
            let simultaneous_connect = t.simultaneous_connect;
            self.actions.push_back(DialAction::Dial { addr, timeout, simultaneous_connect });
        }
    }

    /// A public address's socket connected and its upgrade is under way:
    /// hold the next batch for [`PUBLIC_TCP_DELAY`] so the upgrade can win.
    pub fn handle_handshake_progressed(&mut self, addr: &Multiaddr, now: Instant) {
        if let Some(t) = self.tracked.get_mut(addr) {
            if matches!(t.status, AddrStatus::InFlight) && !is_private(addr) {
                t.expected_upgrade = Some(now + PUBLIC_TCP_DELAY);
            }
        }
    }

    /// The dial of `addr` ended. On success every pending request that
    /// includes `addr` is answered with the connection. On failure the
    /// address is backed off (unless the worker already connected, quirk
    /// §8.8), the error is recorded for every request that includes it, and
    /// requests left without addresses get the last-chance
    /// `existing(force_direct)` connection or [`DialCause::AllDialsFailed`].
    ///
    /// Returns the connection back if the worker did not expect this result
    /// (unknown address, or not in flight): the caller should close it.
    pub fn handle_dial_result(
        &mut self,
        addr: &Multiaddr,
        result: Result<C, E>,
        now: Instant,
        backoff: &mut DialBackoff,
        mut existing: impl FnMut(bool) -> Option<C>,
    ) -> Option<C> {
        let Some(t) = self.tracked.get_mut(addr).filter(|t| matches!(t.status, AddrStatus::InFlight)) else {
            tracing::warn!(peer = %self.peer, %addr, "dial result for an address not in flight");
            return result.ok();
        };
        self.in_flight -= 1;
        t.expected_upgrade = None;
        match result {
            Ok(conn) => {
                t.status = AddrStatus::Connected(conn.clone());
                self.connected = true;
                let done: Vec<RequestId> =
                    self.pending.iter().filter(|(_, p)| p.addrs.contains(addr)).map(|(id, _)| *id).collect();
                for id in done {
                    self.pending.remove(&id);
                    self.respond(id, Ok(conn.clone()));
                }
            }
            Err(e) => {
                if !self.connected {
                    backoff.add(self.peer, addr.clone(), now);
                }
                self.dispatch_error(addr, AddrError::Transport(e), &mut existing);
            }
        }
        None
    }

    /// The next action for the driver.
    pub fn poll_action(&mut self) -> Option<DialAction<C, E>> {
        self.actions.pop_front()
    }

    fn respond(&mut self, request: RequestId, result: Result<C, DialError<E>>) {
        self.actions.push_back(DialAction::Respond { request, result });
    }

    fn dispatch_error(
        &mut self,
        addr: &Multiaddr,
        err: AddrError<E>,
        existing: &mut impl FnMut(bool) -> Option<C>,
    ) {
        let ids: Vec<RequestId> =
            self.pending.iter().filter(|(_, p)| p.addrs.contains(addr)).map(|(id, _)| *id).collect();
        for id in ids {
            let Some(p) = self.pending.get_mut(&id) else { continue };
            p.error.record(addr.clone(), err.clone());
            p.addrs.remove(addr);
            if p.addrs.is_empty() {
                let force_direct = p.force_direct;
                // Invariant: `id` was found in `pending` just above.
                let Some(p) = self.pending.remove(&id) else { continue };
                match existing(force_direct) {
                    Some(conn) => self.respond(id, Ok(conn)),
                    None => {
                        let mut error = p.error;
                        // Nothing was dialed: every address is backed off.
                        if error.cause == DialCause::AllDialsFailed
                            && error.skipped == 0
                            && error.errors.iter().all(|(_, e)| matches!(e, AddrError::Backoff))
                        {
                            error.cause = DialCause::DialBackoff;
                        }
                        self.respond(id, Err(error))
                    }
                }
            }
        }
        if matches!(err, AddrError::Backoff) {
            self.tracked.remove(addr);
        } else if let Some(t) = self.tracked.get_mut(addr) {
            t.status = AddrStatus::Failed(err);
        }
    }
}

#[cfg(test)]
mod tests;
