//! The async side of dialing: one worker task per peer driving the sans-IO
//! [`DialWorker`], the process-wide [`DialLimiter`], and the backoff table.
//!
//! # Dial synchronisation
//!
//! Concurrent `dial_peer` calls for one peer share one worker. Each caller
//! holds a reference; when the last caller leaves (answered, timed out or
//! cancelled), the worker's request channel closes and the worker stops,
//! aborting its in-flight dials. A caller that gives up does not cancel the
//! others. Errors are not cached: the next call starts a fresh worker.

use super::dial::{
    AddrDelay, AddrFilter, DefaultDialRanker, DialAction, DialBackoff, DialCause, DialLimiter, DialRanker,
    DialRequest, DialWorker, DialWorkerConfig, JobId, LimiterConfig, RequestId,
};
use super::resolve::{self, Resolver};
use super::{Conn, DialError, Shared, Swarm};
use crate::peerstore::TEMP_ADDR_TTL;
use crate::transport::TransportError;
use multiaddr::Multiaddr;
use peerswarm_proto::identity::PeerId;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

/// The per-address transport error, shared between the requests that
/// waited on that address.
pub type SharedTransportError = Arc<TransportError>;

/// Requests queued to one worker before callers wait.
const REQUEST_QUEUE: usize = 64;

struct Request {
    reply: oneshot::Sender<Result<Conn, DialError>>,
}

struct ActiveDial {
    generation: u64,
    tx: mpsc::Sender<Request>,
    waiters: usize,
}

struct LimiterState {
    limiter: DialLimiter,
    grants: HashMap<JobId, oneshot::Sender<()>>,
}

/// Dial bookkeeping shared by all of a swarm's dials.
pub(crate) struct Dialer {
    backoff: Mutex<DialBackoff>,
    limiter: Mutex<LimiterState>,
    active: Mutex<HashMap<PeerId, ActiveDial>>,
    worker_config: DialWorkerConfig,
    next_generation: AtomicU64,
    closed: AtomicBool,
    resolver: Arc<dyn Resolver>,
}

impl Dialer {
    pub(crate) fn new(config: &super::SwarmConfig, resolver: Arc<dyn Resolver>) -> Self {
        let mut worker_config = DialWorkerConfig::default();
        worker_config.set_dial_timeout(config.dial_timeout).set_local_dial_timeout(config.dial_timeout_local);
        let mut limiter_config = LimiterConfig::default();
        // Both limits are clamped to ≥ 1 by the swarm config setters.
        let _ = limiter_config.set_fd_limit(config.max_fd_dials);
        let _ = limiter_config.set_per_peer_limit(config.max_dials_per_peer);
        Self {
            backoff: Mutex::new(DialBackoff::new(config.backoff.clone())),
            limiter: Mutex::new(LimiterState {
                limiter: DialLimiter::new(limiter_config),
                grants: HashMap::new(),
            }),
            active: Mutex::default(),
            worker_config,
            next_generation: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            resolver,
        }
    }

    fn lock_backoff(&self) -> std::sync::MutexGuard<'_, DialBackoff> {
        self.backoff.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn clear_backoff(&self, peer: &PeerId) {
        self.lock_backoff().clear_peer(peer);
    }

    pub(crate) fn is_backed_off(&self, peer: &PeerId, addr: &Multiaddr) -> bool {
        self.lock_backoff().is_backed_off(peer, addr, Instant::now())
    }

    /// Stops every worker (their callers get `SwarmClosed`).
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.active.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Waits for a limiter slot for one address dial.
    async fn acquire(&self, peer: PeerId, addr: Multiaddr) -> Option<LimiterPermit<'_>> {
        let (tx, rx) = oneshot::channel();
        let id = {
            let mut state = self.limiter.lock().unwrap_or_else(|e| e.into_inner());
            let id = state.limiter.submit(peer, addr).ok()?;
            state.grants.insert(id, tx);
            pump(&mut state);
            id
        };
        let mut permit = LimiterPermit { dialer: self, id, granted: false };
        rx.await.ok()?;
        permit.granted = true;
        Some(permit)
    }
}

/// Hands out every slot the limiter can grant now.
fn pump(state: &mut LimiterState) {
    while let Some(ready) = state.limiter.poll_ready() {
        let granted = state.grants.remove(&ready.id).is_some_and(|tx| tx.send(()).is_ok());
        if !granted {
            state.limiter.cancel(ready.id);
        }
    }
}

/// A limiter slot: released (to the next waiter) when dropped, whether the
/// dial finished or was abandoned.
struct LimiterPermit<'a> {
    dialer: &'a Dialer,
    id: JobId,
    granted: bool,
}

impl Drop for LimiterPermit<'_> {
    fn drop(&mut self) {
        let mut state = self.dialer.limiter.lock().unwrap_or_else(|e| e.into_inner());
        state.grants.remove(&self.id);
        if self.granted {
            state.limiter.finish(self.id);
        } else {
            state.limiter.cancel(self.id);
        }
        pump(&mut state);
    }
}

/// Leaves the shared dial when the caller is done (or cancelled).
struct WaiterGuard<'a> {
    shared: &'a Shared,
    peer: PeerId,
    generation: u64,
}

impl Drop for WaiterGuard<'_> {
    fn drop(&mut self) {
        let mut active = self.shared.dialer.active.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(dial) = active.get_mut(&self.peer) {
            if dial.generation == self.generation {
                dial.waiters -= 1;
                if dial.waiters == 0 {
                    // Dropping the sender stops the worker.
                    active.remove(&self.peer);
                }
            }
        }
    }
}

pub(crate) async fn dial_peer(swarm: &Swarm, peer: PeerId) -> Result<Conn, DialError> {
    let shared = &swarm.inner;
    if peer == shared.local_peer {
        return Err(DialError::new(peer, DialCause::DialToSelf));
    }
    if swarm.is_closed() || shared.dialer.closed.load(Ordering::Acquire) {
        return Err(DialError::new(peer, DialCause::SwarmClosed));
    }
    if let Some(conn) = swarm.best_conn(&peer) {
        return Ok(conn);
    }
    if let Some(gater) = &shared.gater {
        if !gater.intercept_peer_dial(&peer) {
            return Err(DialError::new(peer, DialCause::GaterDisallowed));
        }
    }
    {
        let state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(limit) = shared.config.limits.check_dial(&state) {
            return Err(DialError::new(peer, DialCause::LimitExceeded(limit)));
        }
    }
    let (tx, guard) = {
        let mut active = shared.dialer.active.lock().unwrap_or_else(|e| e.into_inner());
        let dial = active.entry(peer).or_insert_with(|| {
            let (tx, rx) = mpsc::channel(REQUEST_QUEUE);
            let generation = shared.dialer.next_generation.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(run_worker(Arc::downgrade(&swarm.inner), peer, rx));
            ActiveDial { generation, tx, waiters: 0 }
        });
        dial.waiters += 1;
        (dial.tx.clone(), WaiterGuard { shared, peer, generation: dial.generation })
    };
    let (reply, answer) = oneshot::channel();
    let exchange = async {
        tx.send(Request { reply }).await.map_err(|_| DialCause::SwarmClosed)?;
        answer.await.map_err(|_| DialCause::SwarmClosed)
    };
    let result = match tokio::time::timeout(shared.config.dial_peer_timeout, exchange).await {
        Ok(Ok(result)) => result,
        Ok(Err(cause)) => Err(DialError::new(peer, cause)),
        Err(_) => Err(DialError::new(peer, DialCause::Timeout)),
    };
    drop(guard);
    match result {
        Ok(conn) if conn.remote_peer() != peer => {
            // The upgrade checks the peer ID, so this is a bug, not an attack.
            conn.start_close();
            Err(DialError::new(peer, DialCause::ConnectionClosed))
        }
        Err(_) if swarm.is_closed() => Err(DialError::new(peer, DialCause::SwarmClosed)),
        other => other,
    }
}

/// The addresses to dial for `peer`: peerstore addresses, resolved (see
/// [`resolve`]), filtered, ranked; the dialable ones are written back to the
/// peerstore with the temporary TTL (as go does). `Err` when the peer has
/// addresses but none survives resolution and the filter (some are dropped
/// without a per-address reason, so the worker alone cannot tell this from
/// having none).
async fn plan(swarm: &Swarm, peer: PeerId) -> Result<DialRequest<SharedTransportError>, DialError> {
    let known = swarm.inner.peerstore.addrs_now(&peer);
    let had_addrs = !known.is_empty();
    let resolved = resolve::resolve_addrs(&*swarm.inner.dialer.resolver, peer, known).await;
    let own = swarm.interface_listen_addresses();
    let endpoint = &swarm.inner.endpoint;
    let can_dial = |addr: &Multiaddr| endpoint.can_dial(addr);
    let gater = swarm.inner.gater.clone();
    let gate = move |addr: &Multiaddr| gater.as_ref().is_none_or(|g| g.intercept_addr_dial(&peer, addr));
    let filtered = AddrFilter::new(&own, &can_dial).with_gater(&gate).filter(resolved);
    if let Err(error) = swarm.inner.peerstore.add_addrs_now(peer, filtered.dialable.clone(), TEMP_ADDR_TTL) {
        tracing::debug!(%peer, %error, "cannot record resolved addresses");
    }
    let addrs: Vec<AddrDelay> = DefaultDialRanker.rank(&filtered.dialable);
    let mut request = DialRequest::new(addrs);
    request.rejected = filtered
        .rejected
        .into_iter()
        .filter_map(|(addr, reason)| Some((addr, reason.to_addr_error()?)))
        .collect();
    if had_addrs && request.addrs.is_empty() {
        let mut error = DialError::new(peer, DialCause::NoGoodAddresses);
        for (addr, e) in request.rejected {
            error.record(addr, e);
        }
        return Err(error);
    }
    Ok(request)
}

/// Dials one address: waits for a limiter slot, connects, upgrades
/// (expecting `peer`), and registers the connection with the swarm.
async fn dial_addr(
    shared: std::sync::Weak<Shared>,
    peer: PeerId,
    addr: Multiaddr,
    timeout: Duration,
) -> (Multiaddr, Result<Conn, SharedTransportError>) {
    let result = async {
        let shared = shared.upgrade().ok_or_else(|| TransportError::Timeout { addr: addr.clone() })?;
        let swarm = Swarm::internal(shared);
        let _permit = swarm
            .inner
            .dialer
            .acquire(peer, addr.clone())
            .await
            .ok_or_else(|| TransportError::Timeout { addr: addr.clone() })?;
        let connection = swarm.inner.endpoint.dial_with_timeout(&addr, Some(peer), timeout).await?;
        swarm
            .add_conn(connection)
            .map_err(|cause| TransportError::Refused { addr: addr.clone(), cause: cause.to_string() })
    }
    .await;
    (addr, result.map_err(Arc::new))
}

async fn run_worker(shared: std::sync::Weak<Shared>, peer: PeerId, mut requests: mpsc::Receiver<Request>) {
    let Some(config) = shared.upgrade().map(|s| s.dialer.worker_config.clone()) else { return };
    let mut worker: DialWorker<Conn, SharedTransportError> =
        DialWorker::new(peer, config.clone(), Instant::now());
    let mut replies: HashMap<RequestId, oneshot::Sender<Result<Conn, DialError>>> = HashMap::new();
    let mut dials = JoinSet::new();
    let existing = |shared: &std::sync::Weak<Shared>| {
        let shared = shared.clone();
        move |_force_direct: bool| shared.upgrade().and_then(|inner| Swarm::internal(inner).best_conn(&peer))
    };
    loop {
        while let Some(action) = worker.poll_action() {
            match action {
                DialAction::Dial { addr, timeout, .. } => {
                    dials.spawn(dial_addr(shared.clone(), peer, addr, timeout));
                }
                DialAction::Respond { request, result } => {
                    if let Some(reply) = replies.remove(&request) {
                        let _ = reply.send(result);
                    }
                }
            }
        }
        let Some(inner) = shared.upgrade() else { return };
        let deadline = worker.poll_timeout();
        if deadline.is_some_and(|d| d <= Instant::now()) {
            let backoff = inner.dialer.lock_backoff();
            worker.handle_timeout(Instant::now(), &backoff, existing(&shared));
            continue;
        }
        drop(inner);
        tokio::select! {
            request = requests.recv() => {
                let Some(request) = request else { return };
                let Some(inner) = shared.upgrade() else { return };
                let swarm = Swarm::internal(inner);
                // A connection may have appeared (inbound, or from another
                // worker) since the caller looked: use it rather than dial.
                if let Some(conn) = swarm.best_conn(&peer) {
                    let _ = request.reply.send(Ok(conn));
                    continue;
                }
                // An idle worker can still be alive because this request
                // joined just before the last caller left. It must not answer
                // with a connection it made earlier (now closed, or the swarm
                // would have one): start afresh, as a new worker would.
                if worker.is_idle() {
                    dials.abort_all();
                    worker = DialWorker::new(peer, config.clone(), Instant::now());
                }
                match plan(&swarm, peer).await {
                    Ok(plan) => {
                        let id = worker.handle_request(plan);
                        replies.insert(id, request.reply);
                    }
                    Err(error) => {
                        let _ = request.reply.send(Err(error));
                    }
                }
            }
            Some(joined) = dials.join_next(), if !dials.is_empty() => {
                let Ok((addr, result)) = joined else { continue };
                let Some(inner) = shared.upgrade() else { return };
                let mut backoff = inner.dialer.lock_backoff();
                let unexpected = worker.handle_dial_result(&addr, result, Instant::now(), &mut backoff, existing(&shared));
                drop(backoff);
                if let Some(conn) = unexpected {
                    conn.start_close();
                }
            }
            _ = sleep_until(deadline), if deadline.is_some() => {}
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
