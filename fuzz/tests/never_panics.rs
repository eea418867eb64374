//! The fuzz targets' checks under proptest, on the stable toolchain:
//! `cargo test --manifest-path fuzz/Cargo.toml`. Random bytes go through
//! the same `arbitrary` decoding libFuzzer uses, so a failing case here is
//! a failing fuzz input too (the regression tests proper live next to the
//! decoders in `crates/proto`).

use arbitrary::{Arbitrary, Unstructured};
use proptest::prelude::*;

fn structured<'a, T: Arbitrary<'a>>(bytes: &'a [u8]) -> Option<T> {
    T::arbitrary_take_rest(Unstructured::new(bytes)).ok()
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn multistream_message(data in bytes(1100)) {
        peerswarm_fuzz::multistream_message(&data);
    }

    #[test]
    fn multistream_negotiation(data in bytes(600)) {
        if let Some(input) = structured(&data) {
            peerswarm_fuzz::multistream_negotiation(input);
        }
    }

    #[test]
    fn noise_payload(data in bytes(400)) {
        peerswarm_fuzz::noise_payload(&data);
    }

    #[test]
    fn yamux_session(data in bytes(2000)) {
        if let Some(input) = structured(&data) {
            peerswarm_fuzz::yamux_session(input);
        }
    }

    #[test]
    fn identify(data in bytes(600)) {
        peerswarm_fuzz::identify(&data);
    }

    #[test]
    fn identity(data in bytes(200)) {
        peerswarm_fuzz::identity(&data);
    }

    #[test]
    fn plaintext_exchange(data in bytes(300)) {
        peerswarm_fuzz::plaintext_exchange(&data);
    }

    #[test]
    fn pnet_key(data in bytes(200)) {
        peerswarm_fuzz::pnet_key(&data);
    }

    #[test]
    fn pnet_key_after_a_valid_header(encoding in 0..3usize, data in bytes(100)) {
        let header = ["/base16/", "/base64/", "/bin/"][encoding];
        let mut file = format!("/key/swarm/psk/1.0.0/\n{header}\n").into_bytes();
        file.extend_from_slice(&data);
        peerswarm_fuzz::pnet_key(&file);
    }

    #[test]
    fn dns_message(data in bytes(600)) {
        peerswarm_fuzz::dns_message(&data);
    }

    #[test]
    fn multiaddr(data in bytes(100)) {
        peerswarm_fuzz::multiaddr(&data);
    }
}

proptest! {
    // Each case runs X25519 and Ed25519 operations: fewer cases.
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn noise_handshake(data in bytes(600)) {
        if let Some(input) = structured(&data) {
            peerswarm_fuzz::noise_handshake(input);
        }
    }
}
