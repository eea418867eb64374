#![no_main]

libfuzzer_sys::fuzz_target!(|input: peerswarm_fuzz::HandshakeInput| peerswarm_fuzz::noise_handshake(input));
