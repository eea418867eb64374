#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| peerswarm_fuzz::pnet_key(data));
