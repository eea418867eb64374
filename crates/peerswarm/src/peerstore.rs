//! The peerstore: what we know about other peers — addresses with
//! time-to-live, public keys, supported protocols and small metadata — and
//! our own identity.
//!
//! A [`Peerstore`] is a cheap, clonable, thread-safe handle (an
//! `Arc<RwLock<..>>`). Every method that depends on time takes `now`; the
//! `*_now` variants use [`Instant::now`]. Nothing runs in the background:
//! expired addresses are hidden from reads at once and dropped by writes to
//! that peer or by [`Peerstore::gc`].
//!
//! # Bounds and eviction
//!
//! Everything is capped ([`PeerstoreConfig`]):
//!
//! * **peers**: adding a new peer to a full store first drops peers with
//!   nothing left (all addresses expired, no key, protocols or metadata),
//!   then evicts the *unprotected* peer with the oldest activity (last
//!   write). Protected are our own peer and peers holding an address with
//!   [`CONNECTED_ADDR_TTL`] or [`PERMANENT_ADDR_TTL`] (connected peers and
//!   bootstrap peers). If every peer is protected the write fails with
//!   [`PeerstoreError::Full`].
//! * **addresses per peer**: beyond the cap, the address expiring soonest is
//!   dropped (possibly the one just added); connected and permanent
//!   addresses go last.
//! * **protocols per peer**: beyond the cap the write fails with
//!   [`PeerstoreError::TooManyProtocols`] and changes nothing (go's memory
//!   protobook does the same, with the same default of 128).
//! * **metadata bytes per peer** (keys plus values): beyond the cap the write
//!   fails with [`PeerstoreError::MetadataTooLarge`].

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use multiaddr::{Multiaddr, Protocol};
use peerswarm_proto::identity::{Keypair, PeerId, PublicKey};
use thiserror::Error;

/// TTL of an ordinary address (go `AddressTTL`): 1 hour.
pub const ADDRESS_TTL: Duration = Duration::from_secs(60 * 60);
/// TTL of a short-lived address, e.g. one we are about to dial (go
/// `TempAddrTTL`): 2 minutes.
pub const TEMP_ADDR_TTL: Duration = Duration::from_secs(2 * 60);
/// TTL of the addresses of a peer we were recently connected to (go
/// `RecentlyConnectedAddrTTL`): 15 minutes.
pub const RECENTLY_CONNECTED_ADDR_TTL: Duration = Duration::from_secs(15 * 60);
/// TTL of our own addresses as observed by peers (go `OwnObservedAddrTTL`):
/// 30 minutes.
pub const OWN_OBSERVED_ADDR_TTL: Duration = Duration::from_secs(30 * 60);
/// TTL that never expires, e.g. bootstrap peers (go `PermanentAddrTTL`).
pub const PERMANENT_ADDR_TTL: Duration = Duration::MAX;
/// TTL of the addresses of a peer we are connected to: never expires, and
/// is distinct from [`PERMANENT_ADDR_TTL`] so that
/// [`Peerstore::update_ttl`] can move exactly these to
/// [`RECENTLY_CONNECTED_ADDR_TTL`] on disconnect (go `ConnectedAddrTTL`).
pub const CONNECTED_ADDR_TTL: Duration = Duration::new(u64::MAX, 999_999_998);

/// Peerstore bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerstoreConfig {
    max_peers: usize,
    max_addrs_per_peer: usize,
    max_protocols_per_peer: usize,
    max_metadata_bytes_per_peer: usize,
}

impl Default for PeerstoreConfig {
    fn default() -> Self {
        PeerstoreConfig {
            max_peers: 10_000,
            max_addrs_per_peer: 64,
            max_protocols_per_peer: 128,
            max_metadata_bytes_per_peer: 8 * 1024,
        }
    }
}

/// A configuration value was invalid.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PeerstoreConfigError {
    /// The named setting must not be zero.
    #[error("{0} must not be zero")]
    Zero(&'static str),
}

fn nonzero(v: usize, name: &'static str) -> Result<usize, PeerstoreConfigError> {
    if v == 0 {
        Err(PeerstoreConfigError::Zero(name))
    } else {
        Ok(v)
    }
}

impl PeerstoreConfig {
    /// Peers held at once. Default 10 000 (a peer with a few addresses and
    /// protocols is about 2 KiB). See the module docs for eviction.
    pub fn set_max_peers(&mut self, v: usize) -> Result<&mut Self, PeerstoreConfigError> {
        self.max_peers = nonzero(v, "max_peers")?;
        Ok(self)
    }

    /// Addresses per peer. Default 64; beyond it the address expiring
    /// soonest is dropped.
    pub fn set_max_addrs_per_peer(&mut self, v: usize) -> Result<&mut Self, PeerstoreConfigError> {
        self.max_addrs_per_peer = nonzero(v, "max_addrs_per_peer")?;
        Ok(self)
    }

    /// Protocols per peer. Default 128 (as go); beyond it writes fail.
    pub fn set_max_protocols_per_peer(&mut self, v: usize) -> Result<&mut Self, PeerstoreConfigError> {
        self.max_protocols_per_peer = nonzero(v, "max_protocols_per_peer")?;
        Ok(self)
    }

    /// Metadata bytes (keys plus values) per peer. Default 8 KiB; beyond it
    /// writes fail.
    pub fn set_max_metadata_bytes_per_peer(&mut self, v: usize) -> Result<&mut Self, PeerstoreConfigError> {
        self.max_metadata_bytes_per_peer = nonzero(v, "max_metadata_bytes_per_peer")?;
        Ok(self)
    }
}

/// Why a peerstore write was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PeerstoreError {
    /// The public key does not belong to the peer ID.
    #[error("public key does not match peer id {peer}")]
    KeyMismatch {
        /// The peer the key was offered for.
        peer: PeerId,
    },
    /// The peer would support more protocols than allowed.
    #[error("too many protocols for peer {peer} (max {max})")]
    TooManyProtocols {
        /// The peer.
        peer: PeerId,
        /// The cap.
        max: usize,
    },
    /// The peer's metadata would exceed its byte cap.
    #[error("metadata for peer {peer} too large (max {max} bytes)")]
    MetadataTooLarge {
        /// The peer.
        peer: PeerId,
        /// The cap.
        max: usize,
    },
    /// The store is full of protected peers; the new peer was not added.
    #[error("peerstore full")]
    Full,
}

#[derive(Debug, Clone)]
struct AddrEntry {
    addr: Multiaddr,
    ttl: Duration,
    /// `None`: never expires.
    expires: Option<Instant>,
}

impl AddrEntry {
    fn live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|e| now < e)
    }
}

#[derive(Debug)]
struct PeerRecord {
    addrs: Vec<AddrEntry>,
    public_key: Option<PublicKey>,
    protocols: BTreeSet<String>,
    metadata: HashMap<String, Vec<u8>>,
    metadata_bytes: usize,
    last_activity: Instant,
}

impl PeerRecord {
    fn new(now: Instant) -> Self {
        PeerRecord {
            addrs: Vec::new(),
            public_key: None,
            protocols: BTreeSet::new(),
            metadata: HashMap::new(),
            metadata_bytes: 0,
            last_activity: now,
        }
    }

    fn protected(&self) -> bool {
        self.addrs.iter().any(|a| a.ttl == CONNECTED_ADDR_TTL || a.ttl == PERMANENT_ADDR_TTL)
    }

    fn is_empty_at(&self, now: Instant) -> bool {
        !self.addrs.iter().any(|a| a.live(now))
            && self.public_key.is_none()
            && self.protocols.is_empty()
            && self.metadata.is_empty()
    }
}

#[derive(Debug)]
struct Inner {
    config: PeerstoreConfig,
    local_key: Keypair,
    local_peer: PeerId,
    peers: HashMap<PeerId, PeerRecord>,
}

impl Inner {
    /// The record of `peer`, created (evicting if full) when missing.
    fn record_mut(&mut self, peer: PeerId, now: Instant) -> Result<&mut PeerRecord, PeerstoreError> {
        if !self.peers.contains_key(&peer) && self.peers.len() >= self.config.max_peers {
            self.make_room(now)?;
        }
        let rec = self.peers.entry(peer).or_insert_with(|| PeerRecord::new(now));
        rec.last_activity = rec.last_activity.max(now);
        Ok(rec)
    }

    fn make_room(&mut self, now: Instant) -> Result<(), PeerstoreError> {
        let local = self.local_peer;
        self.peers.retain(|p, r| *p == local || !r.is_empty_at(now));
        if self.peers.len() < self.config.max_peers {
            return Ok(());
        }
        let victim = self
            .peers
            .iter()
            .filter(|(p, r)| **p != local && !r.protected())
            .min_by_key(|(_, r)| r.last_activity)
            .map(|(p, _)| *p);
        match victim {
            Some(v) => {
                tracing::debug!(peer = %v, "peerstore full: evicting least recently active peer");
                self.peers.remove(&v);
                Ok(())
            }
            None => Err(PeerstoreError::Full),
        }
    }
}

/// Strips a trailing `/p2p/<peer>`; `None` if it names another peer.
fn addr_for_peer(mut addr: Multiaddr, peer: &PeerId) -> Option<Multiaddr> {
    if let Some(Protocol::P2p(id)) = addr.iter().last() {
        if id != *peer {
            return None;
        }
        addr.pop();
    }
    Some(addr)
}

fn expiry(now: Instant, ttl: Duration) -> Option<Instant> {
    if ttl == PERMANENT_ADDR_TTL || ttl == CONNECTED_ADDR_TTL {
        None
    } else {
        now.checked_add(ttl)
    }
}

/// A handle on the peerstore; clones share the same store. See the module
/// documentation for TTLs, bounds and eviction.
#[derive(Debug, Clone)]
pub struct Peerstore {
    inner: Arc<RwLock<Inner>>,
}

impl Peerstore {
    /// A store for the node with identity `local_key`; its own public key is
    /// recorded.
    pub fn new(local_key: Keypair, config: PeerstoreConfig) -> Self {
        let local_peer = local_key.public().to_peer_id();
        let mut peers = HashMap::new();
        let mut rec = PeerRecord::new(Instant::now());
        rec.public_key = Some(local_key.public());
        peers.insert(local_peer, rec);
        Peerstore { inner: Arc::new(RwLock::new(Inner { config, local_key, local_peer, peers })) }
    }

    // Lock poisoning: no code panics while holding the lock (no user
    // callbacks run under it), so a poisoned lock still holds a consistent
    // store.
    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Our own peer ID.
    pub fn local_peer_id(&self) -> PeerId {
        self.read().local_peer
    }

    /// Our own keypair.
    pub fn local_keypair(&self) -> Keypair {
        self.read().local_key.clone()
    }

    // ---- addresses ----

    /// Adds addresses valid for `ttl` from `now`. An address already known
    /// keeps the longer of its TTL and expiry and the new ones (adding never
    /// shortens). A trailing `/p2p/<peer>` is stripped; addresses naming
    /// another peer are ignored. A zero `ttl` adds nothing.
    pub fn add_addrs(
        &self,
        peer: PeerId,
        addrs: impl IntoIterator<Item = Multiaddr>,
        ttl: Duration,
        now: Instant,
    ) -> Result<(), PeerstoreError> {
        if ttl.is_zero() {
            return Ok(());
        }
        let addrs: Vec<Multiaddr> = addrs.into_iter().filter_map(|a| addr_for_peer(a, &peer)).collect();
        if addrs.is_empty() {
            return Ok(());
        }
        let mut inner = self.write();
        let max = inner.config.max_addrs_per_peer;
        let rec = inner.record_mut(peer, now)?;
        rec.addrs.retain(|a| a.live(now));
        let exp = expiry(now, ttl);
        for addr in addrs {
            match rec.addrs.iter_mut().find(|e| e.addr == addr) {
                Some(e) => {
                    e.ttl = e.ttl.max(ttl);
                    e.expires = match (e.expires, exp) {
                        (None, _) | (_, None) => None,
                        (Some(a), Some(b)) => Some(a.max(b)),
                    };
                }
                None => rec.addrs.push(AddrEntry { addr, ttl, expires: exp }),
            }
        }
        cap_addrs(&mut rec.addrs, max);
        Ok(())
    }

    /// Sets the TTL of these addresses to exactly `ttl` from `now` (adding
    /// missing ones); a zero `ttl` removes them.
    pub fn set_addrs(
        &self,
        peer: PeerId,
        addrs: impl IntoIterator<Item = Multiaddr>,
        ttl: Duration,
        now: Instant,
    ) -> Result<(), PeerstoreError> {
        let addrs: Vec<Multiaddr> = addrs.into_iter().filter_map(|a| addr_for_peer(a, &peer)).collect();
        let mut inner = self.write();
        if ttl.is_zero() {
            if let Some(rec) = inner.peers.get_mut(&peer) {
                rec.addrs.retain(|e| !addrs.contains(&e.addr));
            }
            return Ok(());
        }
        if addrs.is_empty() {
            return Ok(());
        }
        let max = inner.config.max_addrs_per_peer;
        let rec = inner.record_mut(peer, now)?;
        rec.addrs.retain(|a| a.live(now));
        let exp = expiry(now, ttl);
        for addr in addrs {
            match rec.addrs.iter_mut().find(|e| e.addr == addr) {
                Some(e) => {
                    e.ttl = ttl;
                    e.expires = exp;
                }
                None => rec.addrs.push(AddrEntry { addr, ttl, expires: exp }),
            }
        }
        cap_addrs(&mut rec.addrs, max);
        Ok(())
    }

    /// Gives every address of `peer` whose TTL is exactly `old_ttl` the TTL
    /// `new_ttl` from `now` (zero removes them). E.g. on disconnect:
    /// [`CONNECTED_ADDR_TTL`] → [`RECENTLY_CONNECTED_ADDR_TTL`].
    pub fn update_ttl(&self, peer: &PeerId, old_ttl: Duration, new_ttl: Duration, now: Instant) {
        let mut inner = self.write();
        let Some(rec) = inner.peers.get_mut(peer) else { return };
        if new_ttl.is_zero() {
            rec.addrs.retain(|e| e.ttl != old_ttl);
            return;
        }
        for e in rec.addrs.iter_mut().filter(|e| e.ttl == old_ttl) {
            e.ttl = new_ttl;
            e.expires = expiry(now, new_ttl);
        }
    }

    /// The addresses of `peer` not expired at `now`, oldest first.
    pub fn addrs(&self, peer: &PeerId, now: Instant) -> Vec<Multiaddr> {
        self.read()
            .peers
            .get(peer)
            .map(|r| r.addrs.iter().filter(|e| e.live(now)).map(|e| e.addr.clone()).collect())
            .unwrap_or_default()
    }

    /// Forgets every address of `peer`.
    pub fn clear_addrs(&self, peer: &PeerId) {
        if let Some(rec) = self.write().peers.get_mut(peer) {
            rec.addrs.clear();
        }
    }

    /// Peers with at least one address not expired at `now`.
    pub fn peers_with_addrs(&self, now: Instant) -> Vec<PeerId> {
        self.read()
            .peers
            .iter()
            .filter(|(_, r)| r.addrs.iter().any(|e| e.live(now)))
            .map(|(p, _)| *p)
            .collect()
    }

    /// [`add_addrs`](Self::add_addrs) at [`Instant::now`].
    pub fn add_addrs_now(
        &self,
        peer: PeerId,
        addrs: impl IntoIterator<Item = Multiaddr>,
        ttl: Duration,
    ) -> Result<(), PeerstoreError> {
        self.add_addrs(peer, addrs, ttl, Instant::now())
    }

    /// [`set_addrs`](Self::set_addrs) at [`Instant::now`].
    pub fn set_addrs_now(
        &self,
        peer: PeerId,
        addrs: impl IntoIterator<Item = Multiaddr>,
        ttl: Duration,
    ) -> Result<(), PeerstoreError> {
        self.set_addrs(peer, addrs, ttl, Instant::now())
    }

    /// [`update_ttl`](Self::update_ttl) at [`Instant::now`].
    pub fn update_ttl_now(&self, peer: &PeerId, old_ttl: Duration, new_ttl: Duration) {
        self.update_ttl(peer, old_ttl, new_ttl, Instant::now())
    }

    /// [`addrs`](Self::addrs) at [`Instant::now`].
    pub fn addrs_now(&self, peer: &PeerId) -> Vec<Multiaddr> {
        self.addrs(peer, Instant::now())
    }

    // ---- keys ----

    /// Records `key` for `peer`; fails if the key's peer ID is not `peer`.
    pub fn add_public_key(&self, peer: PeerId, key: PublicKey, now: Instant) -> Result<(), PeerstoreError> {
        if key.to_peer_id() != peer {
            return Err(PeerstoreError::KeyMismatch { peer });
        }
        self.write().record_mut(peer, now)?.public_key = Some(key);
        Ok(())
    }

    /// The public key of `peer`: the recorded one, else the one inlined in
    /// the peer ID (identity multihash, e.g. Ed25519).
    pub fn public_key(&self, peer: &PeerId) -> Option<PublicKey> {
        if let Some(k) = self.read().peers.get(peer).and_then(|r| r.public_key.clone()) {
            return Some(k);
        }
        // Multihash bytes: code 0x00 (identity), a length (one byte: inlined
        // keys are at most 42 bytes), then the protobuf-encoded key.
        match peer.to_bytes().as_slice() {
            [0x00, len, digest @ ..] if usize::from(*len) == digest.len() => {
                PublicKey::try_decode_protobuf(digest).ok().filter(|k| k.to_peer_id() == *peer)
            }
            _ => None,
        }
    }

    // ---- protocols ----

    /// Replaces the protocols `peer` supports.
    pub fn set_protocols<S: Into<String>>(
        &self,
        peer: PeerId,
        protocols: impl IntoIterator<Item = S>,
        now: Instant,
    ) -> Result<(), PeerstoreError> {
        let new: BTreeSet<String> = protocols.into_iter().map(Into::into).collect();
        let mut inner = self.write();
        let max = inner.config.max_protocols_per_peer;
        if new.len() > max {
            return Err(PeerstoreError::TooManyProtocols { peer, max });
        }
        inner.record_mut(peer, now)?.protocols = new;
        Ok(())
    }

    /// Adds protocols `peer` supports; nothing changes if the cap would be
    /// exceeded.
    pub fn add_protocols<S: Into<String>>(
        &self,
        peer: PeerId,
        protocols: impl IntoIterator<Item = S>,
        now: Instant,
    ) -> Result<(), PeerstoreError> {
        let add: Vec<String> = protocols.into_iter().map(Into::into).collect();
        let mut inner = self.write();
        let max = inner.config.max_protocols_per_peer;
        let rec = inner.record_mut(peer, now)?;
        let mut merged = rec.protocols.clone();
        merged.extend(add);
        if merged.len() > max {
            return Err(PeerstoreError::TooManyProtocols { peer, max });
        }
        rec.protocols = merged;
        Ok(())
    }

    /// Removes protocols from `peer`.
    pub fn remove_protocols<S: AsRef<str>>(&self, peer: &PeerId, protocols: impl IntoIterator<Item = S>) {
        if let Some(rec) = self.write().peers.get_mut(peer) {
            for p in protocols {
                rec.protocols.remove(p.as_ref());
            }
        }
    }

    /// The protocols `peer` supports, sorted.
    pub fn protocols(&self, peer: &PeerId) -> Vec<String> {
        self.read().peers.get(peer).map(|r| r.protocols.iter().cloned().collect()).unwrap_or_default()
    }

    /// Whether `peer` supports any of `protocols`.
    pub fn supports_any(&self, peer: &PeerId, protocols: &[&str]) -> bool {
        self.first_supported(peer, protocols).is_some()
    }

    /// The first of `protocols` (in the given order) that `peer` supports.
    pub fn first_supported(&self, peer: &PeerId, protocols: &[&str]) -> Option<String> {
        let inner = self.read();
        let rec = inner.peers.get(peer)?;
        protocols.iter().find(|p| rec.protocols.contains(**p)).map(|p| p.to_string())
    }

    // ---- metadata ----

    /// Stores `value` under `key` for `peer`, replacing any earlier value.
    pub fn put(
        &self,
        peer: PeerId,
        key: impl Into<String>,
        value: Vec<u8>,
        now: Instant,
    ) -> Result<(), PeerstoreError> {
        let key = key.into();
        let mut inner = self.write();
        let max = inner.config.max_metadata_bytes_per_peer;
        let rec = inner.record_mut(peer, now)?;
        let old = rec.metadata.get(&key).map_or(0, |v| key.len() + v.len());
        let total = rec.metadata_bytes - old + key.len() + value.len();
        if total > max {
            return Err(PeerstoreError::MetadataTooLarge { peer, max });
        }
        rec.metadata_bytes = total;
        rec.metadata.insert(key, value);
        Ok(())
    }

    /// The value stored under `key` for `peer`.
    pub fn get(&self, peer: &PeerId, key: &str) -> Option<Vec<u8>> {
        self.read().peers.get(peer).and_then(|r| r.metadata.get(key).cloned())
    }

    // ---- peers ----

    /// Every peer the store holds anything about (ourselves included).
    pub fn peers(&self) -> Vec<PeerId> {
        self.read().peers.keys().copied().collect()
    }

    /// Removes the peer's key, protocols and metadata. As in go, its
    /// addresses stay until they expire (use
    /// [`clear_addrs`](Self::clear_addrs) to drop them); the record goes
    /// when nothing is left. Our own peer keeps its key.
    pub fn remove_peer(&self, peer: &PeerId) {
        let mut inner = self.write();
        let local = inner.local_peer;
        let Some(rec) = inner.peers.get_mut(peer) else { return };
        if *peer != local {
            rec.public_key = None;
        }
        rec.protocols.clear();
        rec.metadata.clear();
        rec.metadata_bytes = 0;
        if rec.addrs.is_empty() && *peer != local {
            inner.peers.remove(peer);
        }
    }

    /// Drops expired addresses, and peers with nothing left.
    pub fn gc(&self, now: Instant) {
        let mut inner = self.write();
        let local = inner.local_peer;
        inner.peers.retain(|p, r| {
            r.addrs.retain(|a| a.live(now));
            *p == local || !r.is_empty_at(now)
        });
    }
}

/// Keeps at most `max` addresses, dropping those expiring soonest.
fn cap_addrs(addrs: &mut Vec<AddrEntry>, max: usize) {
    while addrs.len() > max {
        // `None` (never expires) sorts last.
        let victim =
            addrs.iter().enumerate().min_by_key(|(_, e)| (e.expires.is_none(), e.expires)).map(|(i, _)| i);
        match victim {
            Some(i) => {
                addrs.remove(i);
            }
            None => break,
        }
    }
}

#[cfg(test)]
mod tests;
