#![no_main]

libfuzzer_sys::fuzz_target!(|input: peerswarm_fuzz::YamuxInput| peerswarm_fuzz::yamux_session(input));
