//! Identify and identify-push: learn a peer's keys, addresses and protocols;
//! tell peers ours, and push changes.

use super::{Host, HostError, HostInner};
use crate::connection::ConnectionId;
use crate::stream::Stream;
use crate::swarm::Conn;
use futures::StreamExt;
use multiaddr::Multiaddr;
use peerswarm_proto::identify::{Identify, MAX_STREAM_BYTES, PROTOCOL, PUSH_PROTOCOL};
use peerswarm_proto::identity::{PeerId, PublicKey};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{watch, Notify};
use tokio::task::AbortHandle;

/// The protocol family we speak (identify's `protocolVersion`).
pub const PROTOCOL_VERSION: &str = "ipfs/0.1.0";
/// Time allowed to read a peer's identify answer (or to push ours).
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Pushes in flight at once when our identify message changes.
const PUSH_CONCURRENCY: usize = 16;
/// Peerstore metadata keys under which identify records versions.
pub const AGENT_VERSION_KEY: &str = "AgentVersion";
/// See [`AGENT_VERSION_KEY`].
pub const PROTOCOL_VERSION_KEY: &str = "ProtocolVersion";

/// What a peer told us about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentifyInfo {
    /// The peer, as authenticated by the connection.
    pub peer: PeerId,
    /// Its protocol family.
    pub protocol_version: Option<String>,
    /// Its implementation.
    pub agent_version: Option<String>,
    /// Where it listens.
    pub listen_addrs: Vec<Multiaddr>,
    /// The protocols it serves.
    pub protocols: Vec<String>,
    /// How it sees our address.
    pub observed_addr: Option<Multiaddr>,
}

pub(super) fn install(host: &Host) {
    // The handlers live in the host: they hold it weakly, or it would never
    // be freed.
    let weak = host.downgrade();
    host.set_stream_handler(PROTOCOL, move |stream| {
        let host = weak.upgrade();
        async move {
            if let Some(host) = host {
                respond(&host, stream).await;
            }
        }
    });
    let weak = host.downgrade();
    host.set_stream_handler(PUSH_PROTOCOL, move |stream| {
        let host = weak.upgrade();
        async move {
            let Some(host) = host else { return };
            if let Err(error) = receive_push(&host, stream).await {
                tracing::debug!(%error, "identify push rejected");
            }
        }
    });
}

fn message(host: &Host, observed: Option<&Multiaddr>) -> Identify {
    Identify {
        protocol_version: Some(PROTOCOL_VERSION.to_owned()),
        agent_version: Some(host.config().agent_version.clone()),
        public_key: Some(host.swarm().peerstore().local_keypair().public().encode_protobuf()),
        listen_addrs: host.swarm().interface_listen_addresses(),
        observed_addr: observed.cloned(),
        protocols: host.protocols(),
        signed_peer_record: None,
    }
}

async fn respond(host: &Host, mut stream: Stream) {
    let observed = host
        .swarm()
        .conns()
        .into_iter()
        .find(|c| c.id() == stream.connection_id())
        .map(|c| c.remote_multiaddr().clone());
    let msg = message(host, observed.as_ref()).encode_delimited();
    if stream.write_all(&msg).await.is_ok() {
        let _ = stream.close().await;
    }
}

/// Reads delimited identify messages to EOF, bounded in size and time.
async fn read_message(stream: &mut Stream) -> Result<Identify, HostError> {
    let mut buf = Vec::new();
    let mut limited = (&mut *stream).take(MAX_STREAM_BYTES as u64 + 1);
    let read = limited.read_to_end(&mut buf);
    tokio::time::timeout(READ_TIMEOUT, read).await.map_err(|_| HostError::Timeout)??;
    if buf.len() > MAX_STREAM_BYTES {
        stream.reset();
        return Err(HostError::Protocol("identify message too large".into()));
    }
    Identify::decode_stream(&buf).map_err(|e| HostError::Protocol(e.to_string()))
}

/// Checks the advertised key against the authenticated peer, then stores
/// what the peer said. `push` merges (absent = unchanged); a full answer
/// replaces the protocol list.
fn record(host: &Host, peer: PeerId, msg: &Identify, push: bool) -> Result<(), HostError> {
    if let Some(key) = &msg.public_key {
        let key = PublicKey::try_decode_protobuf(key)
            .map_err(|e| HostError::Protocol(format!("bad identify public key: {e}")))?;
        if key.to_peer_id() != peer {
            return Err(HostError::Protocol(format!(
                "identify key belongs to {}, not {peer}",
                key.to_peer_id()
            )));
        }
    }
    let store = host.swarm().peerstore();
    if !msg.listen_addrs.is_empty() || !push {
        let _ = store.add_addrs_now(
            peer,
            msg.listen_addrs.clone(),
            crate::peerstore::RECENTLY_CONNECTED_ADDR_TTL,
        );
    }
    if !msg.protocols.is_empty() || !push {
        let _ = store.set_protocols(peer, msg.protocols.clone(), std::time::Instant::now());
    }
    if let Some(v) = &msg.agent_version {
        let _ = store.put(peer, AGENT_VERSION_KEY, v.as_bytes().to_vec(), std::time::Instant::now());
    }
    if let Some(v) = &msg.protocol_version {
        let _ = store.put(peer, PROTOCOL_VERSION_KEY, v.as_bytes().to_vec(), std::time::Instant::now());
    }
    Ok(())
}

/// The identify exchanges in flight, by connection: each one's outcome
/// (`None` while it runs; then the answer, or `None` if it failed).
#[derive(Debug, Default)]
pub(super) struct Runs(Mutex<HashMap<ConnectionId, RunOutcome>>);

impl Runs {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ConnectionId, RunOutcome>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

type RunOutcome = watch::Receiver<Option<Option<IdentifyInfo>>>;

/// A request's part in a connection's identify run.
enum Turn {
    /// Run the exchange and publish its outcome.
    Lead(watch::Sender<Option<Option<IdentifyInfo>>>, RunOutcome),
    /// Wait for the run in flight.
    Follow(RunOutcome),
}

/// Removes a run's entry when its leader finishes or is cancelled (its
/// followers then see the channel close).
struct RunGuard<'a> {
    runs: &'a Runs,
    conn: ConnectionId,
    outcome: RunOutcome,
}

impl Drop for RunGuard<'_> {
    fn drop(&mut self) {
        let mut runs = self.runs.lock();
        if runs.get(&self.conn).is_some_and(|r| r.same_channel(&self.outcome)) {
            runs.remove(&self.conn);
        }
    }
}

pub(super) async fn request(host: &Host, peer: &PeerId) -> Result<IdentifyInfo, HostError> {
    let conn = host.swarm().dial_peer(peer).await?;
    request_conn(host, &conn).await
}

/// Identifies `conn`'s peer over that connection only: never dials (the
/// connection may be closed already, and then there is nothing to do).
///
/// One exchange per connection at a time: a request that finds one in
/// flight waits for its answer, and asks again itself only if that one
/// failed. Some peers refuse a second concurrent identify stream
/// (js-libp2p resets it), and one answer serves every caller.
async fn request_conn(host: &Host, conn: &Conn) -> Result<IdentifyInfo, HostError> {
    let runs = &host.inner.identify_runs;
    let turn = {
        let mut in_flight = runs.lock();
        match in_flight.get(&conn.id()) {
            Some(outcome) => Turn::Follow(outcome.clone()),
            None => {
                let (tx, rx) = watch::channel(None);
                in_flight.insert(conn.id(), rx.clone());
                Turn::Lead(tx, rx)
            }
        }
    };
    let (tx, rx) = match turn {
        Turn::Lead(tx, rx) => (tx, rx),
        Turn::Follow(mut outcome) => {
            if let Ok(done) = outcome.wait_for(Option::is_some).await {
                if let Some(Some(info)) = &*done {
                    return Ok(info.clone());
                }
            }
            // That run failed or was cancelled: ask ourselves.
            return exchange(host, conn).await;
        }
    };
    let _guard = RunGuard { runs, conn: conn.id(), outcome: rx };
    let result = exchange(host, conn).await;
    tx.send_replace(Some(result.as_ref().ok().cloned()));
    result
}

/// One identify exchange on a new stream of `conn`.
async fn exchange(host: &Host, conn: &Conn) -> Result<IdentifyInfo, HostError> {
    let stream = conn.new_stream().await?;
    let negotiate = stream.negotiate_outbound(&[PROTOCOL]);
    let stream = tokio::time::timeout(host.config().negotiation_timeout, negotiate)
        .await
        .map_err(|_| HostError::Timeout)??;
    request_on(host, &conn.remote_peer(), stream).await
}

async fn request_on(host: &Host, peer: &PeerId, mut stream: Stream) -> Result<IdentifyInfo, HostError> {
    stream.close_write().await?;
    let msg = read_message(&mut stream).await?;
    record(host, *peer, &msg, false)?;
    Ok(IdentifyInfo {
        peer: *peer,
        protocol_version: msg.protocol_version,
        agent_version: msg.agent_version,
        listen_addrs: msg.listen_addrs,
        protocols: msg.protocols,
        observed_addr: msg.observed_addr,
    })
}

async fn receive_push(host: &Host, mut stream: Stream) -> Result<(), HostError> {
    let peer = host
        .swarm()
        .conns()
        .into_iter()
        .find(|c| c.id() == stream.connection_id())
        .map(|c| c.remote_peer())
        .ok_or(HostError::Protocol("push on an unknown connection".into()))?;
    let msg = read_message(&mut stream).await?;
    record(host, peer, &msg, true)
}

pub(super) fn on_connected(host: &Host, conn: &Conn) {
    if !host.config().identify_on_connect {
        return;
    }
    let (host, conn) = (host.clone(), conn.clone());
    tokio::spawn(async move {
        if let Err(error) = request_conn(&host, &conn).await {
            tracing::debug!(peer = %conn.remote_peer(), %error, "identify failed");
        }
    });
}

/// Sends identify pushes from one task, a round at a time: each round
/// sends the message as it is when the round starts, so a peer never gets
/// an older message after a newer one, and changes made during a round
/// lead to one more round (not one task each).
#[derive(Debug, Default)]
pub(super) struct Pusher {
    wake: Arc<Notify>,
    worker: OnceLock<AbortHandle>,
}

impl Pusher {
    /// Asks for a round with the current message (starting the task on
    /// first use; it holds the host weakly and ends with it). Without
    /// peers there is nobody to tell: a peer that connects later asks for
    /// the message itself.
    fn request(&self, host: &Host) {
        if host.swarm().peers().is_empty() {
            return;
        }
        if self.worker.get().is_none() {
            let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                tracing::debug!("identify push skipped: not called from a tokio runtime");
                return;
            };
            self.worker.get_or_init(|| {
                runtime.spawn(push_rounds(Arc::downgrade(&host.inner), self.wake.clone())).abort_handle()
            });
        }
        self.wake.notify_one();
    }
}

impl Drop for Pusher {
    fn drop(&mut self) {
        if let Some(worker) = self.worker.get() {
            worker.abort();
        }
    }
}

async fn push_rounds(host: Weak<HostInner>, wake: Arc<Notify>) {
    loop {
        wake.notified().await;
        let Some(inner) = host.upgrade() else { return };
        push_round(&Host { inner }).await;
    }
}

/// Pushes our current identify message to every connected peer.
async fn push_round(host: &Host) {
    let peers = host.swarm().peers();
    if peers.is_empty() {
        return;
    }
    let msg = message(host, None).encode_delimited();
    let push_to = |peer: PeerId| {
        let msg = &msg;
        async move {
            let push = async {
                let mut stream = host.new_stream(&peer, &[PUSH_PROTOCOL]).await?;
                stream.write_all(msg).await?;
                // FIN once the peer has accepted: js-libp2p can lose a
                // message whose FIN arrives ahead of its answer.
                stream.confirm_protocol().await?;
                stream.close().await?;
                Ok::<_, HostError>(())
            };
            match tokio::time::timeout(READ_TIMEOUT, push).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::debug!(%peer, %error, "identify push failed"),
                Err(_) => tracing::debug!(%peer, "identify push timed out"),
            }
        }
    };
    // A few at a time: one slow peer does not hold up the others.
    futures::stream::iter(peers).for_each_concurrent(PUSH_CONCURRENCY, push_to).await;
}

pub(super) fn protocols_changed(host: &Host) {
    host.inner.identify_push.request(host);
}

pub(super) fn addresses_changed(host: &Host) {
    host.inner.identify_push.request(host);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::HostConfig;
    use crate::swarm::Swarm;
    use libp2p_identity::Keypair;

    #[tokio::test]
    async fn a_dropped_host_is_freed() {
        let swarm = Swarm::builder(Keypair::generate_ed25519()).build();
        let host = Host::new(swarm, HostConfig::default());
        let inner = Arc::downgrade(&host.inner);
        drop(host);
        assert!(inner.upgrade().is_none(), "something keeps the host alive");
    }

    #[tokio::test]
    async fn no_push_task_without_peers() {
        let host = Host::new(Swarm::builder(Keypair::generate_ed25519()).build(), HostConfig::default());
        host.set_stream_handler("/new/1.0.0", |_| async {});
        assert!(host.inner.identify_push.worker.get().is_none());
    }

    #[tokio::test]
    async fn the_push_task_ends_with_its_host() {
        let swarm = Swarm::builder(Keypair::generate_ed25519()).build();
        let other = Swarm::builder(Keypair::generate_ed25519()).build();
        other.listen(&["/ip4/127.0.0.1/tcp/0".parse().unwrap()]).await.unwrap();
        let _ = swarm.peerstore().add_addrs_now(
            other.local_peer(),
            other.listen_addresses(),
            Duration::from_secs(60),
        );
        swarm.dial_peer(&other.local_peer()).await.unwrap();
        let host = Host::new(swarm, HostConfig::default());
        host.set_stream_handler("/new/1.0.0", |_| async {});
        let worker = host.inner.identify_push.worker.get().expect("a change starts the push task").clone();
        let inner = Arc::downgrade(&host.inner);
        drop(host);
        for _ in 0..100 {
            if worker.is_finished() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(worker.is_finished(), "the push task outlived its host");
        assert!(inner.upgrade().is_none(), "the push task kept its host alive");
    }
}
