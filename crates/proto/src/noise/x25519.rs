//! X25519 for `snow`, backed by aws-lc, and the node's reusable static key.
//!
//! A handshake costs each side three X25519 multiplications (`ee`, `es`,
//! `se`) and one key generation, and those dominate the CPU time of a
//! connection setup. `snow`'s own X25519 (curve25519-dalek's Montgomery
//! ladder, built without its base-point tables) takes about 2× as long per
//! multiplication as aws-lc's and 4× as long per key generation, so the
//! handshake resolves Diffie-Hellman here and everything else (SHA-256,
//! ChaCha20-Poly1305, randomness) as before, through ring.
//!
//! The results are identical (RFC 7748 X25519, scalar clamped) with one
//! exception: a remote key of small order gives an all-zero shared secret,
//! which aws-lc rejects. The handshake then fails with
//! [`HandshakeError::MalformedMessage`](super::HandshakeError::MalformedMessage),
//! as go-libp2p's does; `snow` alone would carry on with a secret the remote
//! chose.

use aws_lc_rs::agreement::{self, PrivateKey, UnparsedPublicKey, X25519};
use ring::rand::{SecureRandom, SystemRandom};
use snow::params::{CipherChoice, DHChoice, HashChoice};
use snow::resolvers::{CryptoResolver, DefaultResolver, FallbackResolver, RingResolver};
use snow::types::{Cipher, Dh, Hash, Random};
use std::sync::Arc;
use zeroize::Zeroizing;

/// Length of an X25519 key, private or public.
pub(super) const KEY_LEN: usize = 32;

/// An X25519 key pair made once and shared by many handshakes.
pub(super) struct StaticPair {
    private: Zeroizing<[u8; KEY_LEN]>,
    public: [u8; KEY_LEN],
    key: Arc<PrivateKey>,
}

impl StaticPair {
    /// A fresh random key pair.
    pub(super) fn generate() -> Result<Self, snow::Error> {
        let mut private = Zeroizing::new([0u8; KEY_LEN]);
        SystemRandom::new().fill(&mut private[..]).map_err(|_| snow::Error::Rng)?;
        let (key, public) = derive(&private[..])?;
        Ok(Self { private, public, key: Arc::new(key) })
    }

    pub(super) fn private(&self) -> &[u8] {
        &self.private[..]
    }

    pub(super) fn public(&self) -> &[u8; KEY_LEN] {
        &self.public
    }
}

/// The aws-lc key and the public key for `private`.
fn derive(private: &[u8]) -> Result<(PrivateKey, [u8; KEY_LEN]), snow::Error> {
    let key = PrivateKey::from_private_key(&X25519, private).map_err(|_| snow::Error::Dh)?;
    let public = key.compute_public_key().map_err(|_| snow::Error::Dh)?;
    let public = public.as_ref().try_into().map_err(|_| snow::Error::Dh)?;
    Ok((key, public))
}

/// `snow`'s primitives for the handshake: X25519 from [`X25519Dh`], the rest
/// from ring (falling back to `snow`'s defaults), as `snow::Builder::new`
/// would pick them.
pub(super) struct Resolver {
    /// The static key this handshake will be given, so that `set` need not
    /// derive its public half again.
    known: Option<Arc<StaticPair>>,
    rest: FallbackResolver,
}

impl Resolver {
    pub(super) fn new(known: Option<Arc<StaticPair>>) -> Self {
        Self { known, rest: FallbackResolver::new(Box::new(RingResolver), Box::new(DefaultResolver)) }
    }
}

impl CryptoResolver for Resolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        self.rest.resolve_rng()
    }

    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        match choice {
            DHChoice::Curve25519 => Some(Box::new(X25519Dh { known: self.known.clone(), key: None })),
            _ => None,
        }
    }

    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
        self.rest.resolve_hash(choice)
    }

    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        self.rest.resolve_cipher(choice)
    }
}

/// One X25519 key slot of a handshake (`s` or `e`).
struct X25519Dh {
    known: Option<Arc<StaticPair>>,
    key: Option<Arc<StaticPair>>,
}

impl Dh for X25519Dh {
    fn name(&self) -> &'static str {
        "25519"
    }

    fn pub_len(&self) -> usize {
        KEY_LEN
    }

    fn priv_len(&self) -> usize {
        KEY_LEN
    }

    fn set(&mut self, privkey: &[u8]) {
        if let Some(known) = self.known.as_ref().filter(|k| k.private() == privkey) {
            self.key = Some(known.clone());
            return;
        }
        // `snow` only passes keys of `priv_len` bytes; a key aws-lc rejects
        // leaves the slot empty, and `dh` then fails.
        let mut private = Zeroizing::new([0u8; KEY_LEN]);
        if privkey.len() == KEY_LEN {
            private.copy_from_slice(privkey);
        }
        self.key = derive(&private[..])
            .ok()
            .map(|(key, public)| Arc::new(StaticPair { private, public, key: Arc::new(key) }));
    }

    fn generate(&mut self, rng: &mut dyn Random) -> Result<(), snow::Error> {
        let mut private = Zeroizing::new([0u8; KEY_LEN]);
        rng.try_fill_bytes(&mut private[..])?;
        let (key, public) = derive(&private[..])?;
        self.key = Some(Arc::new(StaticPair { private, public, key: Arc::new(key) }));
        Ok(())
    }

    fn pubkey(&self) -> &[u8] {
        self.key.as_ref().map_or(&[0; KEY_LEN], |k| &k.public)
    }

    fn privkey(&self) -> &[u8] {
        self.key.as_ref().map_or(&[0; KEY_LEN], |k| k.private())
    }

    fn dh(&self, pubkey: &[u8], out: &mut [u8]) -> Result<(), snow::Error> {
        let key = self.key.as_ref().ok_or(snow::Error::Dh)?;
        let remote = pubkey.get(..KEY_LEN).ok_or(snow::Error::Dh)?;
        let out = out.get_mut(..KEY_LEN).ok_or(snow::Error::Dh)?;
        agreement::agree(&key.key, UnparsedPublicKey::new(&X25519, remote), snow::Error::Dh, |secret| {
            out.copy_from_slice(secret);
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex32(s: &str) -> [u8; KEY_LEN] {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    fn slot(private: &[u8]) -> Box<dyn Dh> {
        let mut dh = Resolver::new(None).resolve_dh(&DHChoice::Curve25519).unwrap();
        dh.set(private);
        dh
    }

    /// RFC 7748 §6.1: both key pairs and the shared secret.
    #[test]
    fn rfc7748_diffie_hellman() {
        let alice = hex32("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
        let bob = hex32("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
        let (a, b) = (slot(&alice), slot(&bob));
        assert_eq!(a.pubkey(), hex32("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"));
        assert_eq!(b.pubkey(), hex32("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"));
        let shared = hex32("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
        let (mut ab, mut ba) = ([0u8; KEY_LEN], [0u8; KEY_LEN]);
        a.dh(b.pubkey(), &mut ab).unwrap();
        b.dh(a.pubkey(), &mut ba).unwrap();
        assert_eq!((ab, ba), (shared, shared));
    }

    /// Same results as `snow`'s own X25519, unclamped scalars included.
    #[test]
    fn agrees_with_snow_default() {
        for seed in 0u8..8 {
            let private = [seed.wrapping_mul(37) ^ 0xff; KEY_LEN];
            let ours = slot(&private);
            let mut theirs = DefaultResolver.resolve_dh(&DHChoice::Curve25519).unwrap();
            theirs.set(&private);
            assert_eq!(ours.pubkey(), theirs.pubkey());
            let peer = StaticPair::generate().unwrap();
            let (mut a, mut b) = ([0u8; KEY_LEN], [0u8; KEY_LEN]);
            ours.dh(peer.public(), &mut a).unwrap();
            theirs.dh(peer.public(), &mut b).unwrap();
            assert_eq!(a, b);
        }
    }

    #[test]
    fn small_order_point_is_rejected() {
        let dh = slot(&[9; KEY_LEN]);
        let mut out = [0u8; KEY_LEN];
        assert!(dh.dh(&[0; KEY_LEN], &mut out).is_err());
        let mut one = [0u8; KEY_LEN];
        one[0] = 1;
        assert!(dh.dh(&one, &mut out).is_err());
    }

    #[test]
    fn known_static_key_is_reused() {
        let pair = Arc::new(StaticPair::generate().unwrap());
        let mut dh = Resolver::new(Some(pair.clone())).resolve_dh(&DHChoice::Curve25519).unwrap();
        dh.set(pair.private());
        assert_eq!(dh.pubkey(), pair.public());
        assert_eq!(dh.privkey(), pair.private());
    }

    #[test]
    fn empty_slot_fails_cleanly() {
        let dh = Resolver::new(None).resolve_dh(&DHChoice::Curve25519).unwrap();
        let mut out = [0u8; KEY_LEN];
        assert!(dh.dh(&[9; KEY_LEN], &mut out).is_err());
    }
}
