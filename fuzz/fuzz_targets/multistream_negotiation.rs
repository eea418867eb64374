#![no_main]

libfuzzer_sys::fuzz_target!(|input: peerswarm_fuzz::NegotiationInput| {
    peerswarm_fuzz::multistream_negotiation(input)
});
