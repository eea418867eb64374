#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| peerswarm_fuzz::dns_message(data));
