use std::time::{Duration, Instant};

use multiaddr::Multiaddr;
use peerswarm_proto::identity::{Keypair, PeerId};

use super::*;

fn ma(s: &str) -> Multiaddr {
    s.parse().unwrap()
}

fn store() -> Peerstore {
    Peerstore::new(Keypair::generate_ed25519(), PeerstoreConfig::default())
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn go_ttl_constants() {
    assert_eq!(TEMP_ADDR_TTL, secs(120));
    assert_eq!(RECENTLY_CONNECTED_ADDR_TTL, secs(15 * 60));
    assert_eq!(ADDRESS_TTL, secs(3600));
    assert_eq!(OWN_OBSERVED_ADDR_TTL, secs(30 * 60));
    assert!(CONNECTED_ADDR_TTL < PERMANENT_ADDR_TTL);
    assert!(CONNECTED_ADDR_TTL > secs(1 << 60));
}

// go pstore suite: testAddAddress / testAddressesExpire (the core cases)
#[test]
fn addresses_expire_and_add_never_shortens() {
    let ps = store();
    let p = PeerId::random();
    let t0 = Instant::now();
    let a1 = ma("/ip4/1.2.3.4/tcp/1");
    let a2 = ma("/ip4/1.2.3.4/tcp/2");
    ps.add_addrs(p, [a1.clone()], secs(10), t0).unwrap();
    ps.add_addrs(p, [a2.clone()], secs(100), t0).unwrap();
    assert_eq!(ps.addrs(&p, t0), vec![a1.clone(), a2.clone()]);
    assert_eq!(ps.addrs(&p, t0 + secs(10)), vec![a2.clone()], "a1 expired");
    // adding with a shorter TTL keeps the longer one
    ps.add_addrs(p, [a2.clone()], secs(1), t0).unwrap();
    assert_eq!(ps.addrs(&p, t0 + secs(50)), vec![a2.clone()]);
    // a zero TTL adds nothing
    ps.add_addrs(p, [ma("/ip4/1.2.3.4/tcp/3")], Duration::ZERO, t0).unwrap();
    assert_eq!(ps.addrs(&p, t0).len(), 2);
    assert_eq!(ps.peers_with_addrs(t0 + secs(100)), Vec::<PeerId>::new());
    assert_eq!(ps.peers_with_addrs(t0), vec![p]);
}

// go: testSetNegativeTTLClears / testClearWorks / testUpdateTTLs
#[test]
fn set_update_and_clear() {
    let ps = store();
    let p = PeerId::random();
    let t0 = Instant::now();
    let a1 = ma("/ip4/1.2.3.4/tcp/1");
    let a2 = ma("/ip4/1.2.3.4/tcp/2");
    ps.add_addrs(p, [a1.clone(), a2.clone()], CONNECTED_ADDR_TTL, t0).unwrap();
    // set shortens
    ps.set_addrs(p, [a1.clone()], secs(5), t0).unwrap();
    assert_eq!(ps.addrs(&p, t0 + secs(6)), vec![a2.clone()]);
    // zero TTL removes
    ps.set_addrs(p, [a2.clone()], Duration::ZERO, t0).unwrap();
    assert_eq!(ps.addrs(&p, t0), vec![a1.clone()]);

    // disconnect: connected -> recently connected, others untouched
    ps.set_addrs(p, [a2.clone()], CONNECTED_ADDR_TTL, t0).unwrap();
    ps.add_addrs(p, [ma("/ip4/9.9.9.9/tcp/9")], PERMANENT_ADDR_TTL, t0).unwrap();
    ps.update_ttl(&p, CONNECTED_ADDR_TTL, RECENTLY_CONNECTED_ADDR_TTL, t0);
    let later = t0 + RECENTLY_CONNECTED_ADDR_TTL;
    assert_eq!(ps.addrs(&p, later), vec![ma("/ip4/9.9.9.9/tcp/9")]);
    ps.update_ttl(&p, PERMANENT_ADDR_TTL, Duration::ZERO, t0);
    assert_eq!(ps.addrs(&p, t0), vec![a1.clone(), a2.clone()]);

    ps.clear_addrs(&p);
    assert!(ps.addrs(&p, t0).is_empty());
}

#[test]
fn strips_own_peer_id_and_ignores_other_peers() {
    let ps = store();
    let p = PeerId::random();
    let other = PeerId::random();
    let t0 = Instant::now();
    ps.add_addrs(
        p,
        [ma(&format!("/ip4/1.2.3.4/tcp/1/p2p/{p}")), ma(&format!("/ip4/1.2.3.4/tcp/2/p2p/{other}"))],
        ADDRESS_TTL,
        t0,
    )
    .unwrap();
    assert_eq!(ps.addrs(&p, t0), vec![ma("/ip4/1.2.3.4/tcp/1")]);
}

// go: keybook tests (testKeyBookPeers, testInlinedPubKeyAddedOnRetrieve)
#[test]
fn public_keys_must_match_and_are_inlined() {
    let ps = store();
    let t0 = Instant::now();
    let kp = Keypair::generate_ed25519();
    let p = kp.public().to_peer_id();
    // an Ed25519 key is inlined in the peer ID
    assert_eq!(ps.public_key(&p), Some(kp.public()));
    let other = Keypair::generate_ed25519();
    assert_eq!(ps.add_public_key(p, other.public(), t0), Err(PeerstoreError::KeyMismatch { peer: p }));
    ps.add_public_key(p, kp.public(), t0).unwrap();
    assert_eq!(ps.public_key(&p), Some(kp.public()));
    assert_eq!(ps.public_key(&PeerId::random()), None, "random peer IDs are hashes");

    assert_eq!(ps.public_key(&ps.local_peer_id()), Some(ps.local_keypair().public()));
    assert_eq!(ps.local_keypair().public().to_peer_id(), ps.local_peer_id());
}

// go: protobook tests (testBasicProtoBook, max protocols)
#[test]
fn protocols_set_add_remove_and_capped() {
    let mut config = PeerstoreConfig::default();
    config.set_max_protocols_per_peer(3).unwrap();
    let ps = Peerstore::new(Keypair::generate_ed25519(), config);
    let p = PeerId::random();
    let t0 = Instant::now();
    ps.add_protocols(p, ["/a", "/b"], t0).unwrap();
    assert_eq!(ps.protocols(&p), vec!["/a", "/b"]);
    assert!(ps.supports_any(&p, &["/x", "/b"]));
    assert!(!ps.supports_any(&p, &["/x"]));
    assert_eq!(ps.first_supported(&p, &["/x", "/b", "/a"]), Some("/b".to_string()));
    assert!(matches!(
        ps.add_protocols(p, ["/c", "/d"], t0),
        Err(PeerstoreError::TooManyProtocols { max: 3, .. })
    ));
    assert_eq!(ps.protocols(&p), vec!["/a", "/b"], "failed write changes nothing");
    ps.set_protocols(p, ["/c"], t0).unwrap();
    assert_eq!(ps.protocols(&p), vec!["/c"]);
    assert!(ps.set_protocols(p, ["/1", "/2", "/3", "/4"], t0).is_err());
    ps.remove_protocols(&p, ["/c"]);
    assert!(ps.protocols(&p).is_empty());
}

#[test]
fn metadata_is_capped() {
    let mut config = PeerstoreConfig::default();
    config.set_max_metadata_bytes_per_peer(16).unwrap();
    let ps = Peerstore::new(Keypair::generate_ed25519(), config);
    let p = PeerId::random();
    let t0 = Instant::now();
    ps.put(p, "agent", b"go-1".to_vec(), t0).unwrap(); // 9 bytes
    assert_eq!(ps.get(&p, "agent"), Some(b"go-1".to_vec()));
    assert!(matches!(
        ps.put(p, "version", b"1.0".to_vec(), t0),
        Err(PeerstoreError::MetadataTooLarge { .. })
    ));
    // replacing a value counts only the new size
    ps.put(p, "agent", b"rust-0.1.0x".to_vec(), t0).unwrap(); // 5 + 11 = 16
    assert_eq!(ps.get(&p, "agent"), Some(b"rust-0.1.0x".to_vec()));
    assert_eq!(ps.get(&p, "nope"), None);
}

#[test]
fn addresses_per_peer_capped_dropping_soonest_expiring() {
    let mut config = PeerstoreConfig::default();
    config.set_max_addrs_per_peer(2).unwrap();
    let ps = Peerstore::new(Keypair::generate_ed25519(), config);
    let p = PeerId::random();
    let t0 = Instant::now();
    ps.add_addrs(p, [ma("/ip4/1.1.1.1/tcp/1")], CONNECTED_ADDR_TTL, t0).unwrap();
    ps.add_addrs(p, [ma("/ip4/1.1.1.1/tcp/2")], secs(10), t0).unwrap();
    ps.add_addrs(p, [ma("/ip4/1.1.1.1/tcp/3")], secs(20), t0).unwrap();
    assert_eq!(ps.addrs(&p, t0), vec![ma("/ip4/1.1.1.1/tcp/1"), ma("/ip4/1.1.1.1/tcp/3")]);
}

#[test]
fn peers_evicted_by_oldest_activity_sparing_protected() {
    let mut config = PeerstoreConfig::default();
    config.set_max_peers(3).unwrap(); // ourselves + 2
    let ps = Peerstore::new(Keypair::generate_ed25519(), config);
    let t0 = Instant::now();
    let connected = PeerId::random();
    let old = PeerId::random();
    let new = PeerId::random();
    ps.add_addrs(old, [ma("/ip4/1.1.1.1/tcp/1")], ADDRESS_TTL, t0).unwrap();
    ps.add_addrs(connected, [ma("/ip4/2.2.2.2/tcp/1")], CONNECTED_ADDR_TTL, t0 + secs(1)).unwrap();
    ps.add_addrs(new, [ma("/ip4/3.3.3.3/tcp/1")], ADDRESS_TTL, t0 + secs(2)).unwrap();
    let mut peers = ps.peers();
    peers.sort();
    let mut want = vec![ps.local_peer_id(), connected, new];
    want.sort();
    assert_eq!(peers, want, "the least recently active unprotected peer went");

    // all protected: refused
    ps.set_addrs(new, [ma("/ip4/3.3.3.3/tcp/1")], PERMANENT_ADDR_TTL, t0 + secs(3)).unwrap();
    assert_eq!(
        ps.add_addrs(PeerId::random(), [ma("/ip4/4.4.4.4/tcp/1")], ADDRESS_TTL, t0 + secs(4)),
        Err(PeerstoreError::Full)
    );
}

#[test]
fn expired_peers_make_room_first() {
    let mut config = PeerstoreConfig::default();
    config.set_max_peers(2).unwrap();
    assert!(config.clone().set_max_peers(0).is_err());
    let ps = Peerstore::new(Keypair::generate_ed25519(), config);
    let t0 = Instant::now();
    let a = PeerId::random();
    ps.add_addrs(a, [ma("/ip4/1.1.1.1/tcp/1")], secs(1), t0).unwrap();
    let b = PeerId::random();
    ps.add_addrs(b, [ma("/ip4/1.1.1.1/tcp/2")], secs(1), t0 + secs(5)).unwrap();
    assert!(!ps.peers().contains(&a));
    ps.gc(t0 + secs(10));
    assert_eq!(ps.peers(), vec![ps.local_peer_id()]);
}

// go: RemovePeer keeps addresses
#[test]
fn remove_peer_keeps_addresses() {
    let ps = store();
    let t0 = Instant::now();
    let kp = Keypair::generate_ed25519();
    let p = kp.public().to_peer_id();
    ps.add_addrs(p, [ma("/ip4/1.1.1.1/tcp/1")], ADDRESS_TTL, t0).unwrap();
    ps.add_public_key(p, kp.public(), t0).unwrap();
    ps.add_protocols(p, ["/a"], t0).unwrap();
    ps.put(p, "k", vec![1], t0).unwrap();
    ps.remove_peer(&p);
    assert!(ps.protocols(&p).is_empty());
    assert_eq!(ps.get(&p, "k"), None);
    assert_eq!(ps.addrs(&p, t0), vec![ma("/ip4/1.1.1.1/tcp/1")]);
    ps.clear_addrs(&p);
    ps.remove_peer(&p);
    assert!(!ps.peers().contains(&p));
}

#[test]
fn clones_share_state_across_threads() {
    let ps = store();
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let ps = ps.clone();
            std::thread::spawn(move || {
                for j in 0..50u16 {
                    let p = PeerId::random();
                    ps.add_addrs_now(p, [ma(&format!("/ip4/10.0.{i}.1/tcp/{j}"))], ADDRESS_TTL).unwrap();
                    assert_eq!(ps.addrs_now(&p).len(), 1);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(ps.peers().len(), 201);
}
