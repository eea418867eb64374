//! The cipher reference: ChaCha20-Poly1305 (ring, the implementation under
//! Noise in both stacks) sealing and opening Noise-sized frames on one core.

use ring::aead::{Aad, LessSafeKey, Nonce, Tag, UnboundKey, CHACHA20_POLY1305};
use std::time::Instant;

/// Plaintext per Noise transport message: 65 535 bytes minus the 16-byte tag.
pub const FRAME: usize = 65_535 - 16;

/// Single-core cipher throughput.
#[derive(Debug, Clone, Copy)]
pub struct CipherRates {
    /// Plaintext bytes sealed per second.
    pub seal_bytes_per_sec: f64,
    /// Ciphertext bytes opened (verified and decrypted) per second.
    pub open_bytes_per_sec: f64,
}

fn nonce() -> Nonce {
    Nonce::assume_unique_for_key([0u8; 12])
}

/// Seals, then opens, at least `total` bytes in [`FRAME`] blocks.
pub fn measure(total: u64) -> CipherRates {
    // A fixed key is fine for a benchmark; so is the repeated nonce.
    let key = LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &[7u8; 32]).expect("32-byte key"));
    let frames = total.div_ceil(FRAME as u64).max(1);
    let mut buf = vec![0u8; FRAME];

    let started = Instant::now();
    for _ in 0..frames {
        let tag = key.seal_in_place_separate_tag(nonce(), Aad::empty(), &mut buf).expect("frame fits");
        let _ = std::hint::black_box(tag);
    }
    let seal_secs = started.elapsed().as_secs_f64();

    // Opening needs valid ciphertext every time without copying it back.
    // ChaCha20 is an XOR stream, so with one nonce sealing `a` gives `b`
    // and sealing `b` gives `a`: keep both tags and alternate.
    let mut buf = vec![0u8; FRAME];
    let tag_a_to_b = key.seal_in_place_separate_tag(nonce(), Aad::empty(), &mut buf).expect("frame fits");
    // `buf` now holds b; sealing it again gives a back, with a's tag as
    // ciphertext.
    let tag_b_to_a = key.seal_in_place_separate_tag(nonce(), Aad::empty(), &mut buf).expect("frame fits");
    // `buf` holds a; make it the ciphertext b again for the first open.
    let _ = key.seal_in_place_separate_tag(nonce(), Aad::empty(), &mut buf).expect("frame fits");
    let tags: [Tag; 2] = [tag_a_to_b, tag_b_to_a];
    let started = Instant::now();
    for i in 0..frames {
        // Ciphertext b (tag a→b) opens to a; ciphertext a (tag b→a) to b.
        let tag = tags[(i % 2) as usize];
        let plain = key.open_in_place_separate_tag(nonce(), Aad::empty(), tag, &mut buf, 0..);
        std::hint::black_box(plain.expect("the tags match the alternating ciphertexts"));
    }
    let open_secs = started.elapsed().as_secs_f64();

    let bytes = (frames * FRAME as u64) as f64;
    CipherRates { seal_bytes_per_sec: bytes / seal_secs, open_bytes_per_sec: bytes / open_secs }
}

/// Frames a transfer keeps in flight per side: the cipher then works on
/// data that has left L1, as it does in a transfer.
const SPAN_FRAMES: usize = 16;

/// Seals on one thread while another opens, each over 16
/// frames in turn: the cipher as an encrypted transfer runs it, with both
/// cores busy (on shared or virtual cores the two slow each other down).
pub fn measure_concurrent(total: u64) -> CipherRates {
    let frames = total.div_ceil(FRAME as u64).max(1);
    let key = || LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &[7u8; 32]).expect("32-byte key"));
    let start = std::sync::Barrier::new(2);
    std::thread::scope(|scope| {
        let sealer = scope.spawn(|| {
            let key = key();
            let mut span = vec![0u8; FRAME * SPAN_FRAMES];
            start.wait();
            let started = Instant::now();
            for i in 0..frames as usize {
                let k = i % SPAN_FRAMES;
                let frame = &mut span[k * FRAME..(k + 1) * FRAME];
                let tag = key.seal_in_place_separate_tag(nonce(), Aad::empty(), frame).expect("frame fits");
                let _ = std::hint::black_box(tag);
            }
            started.elapsed().as_secs_f64()
        });
        let opener = scope.spawn(|| {
            let key = key();
            // Each frame alternates between ciphertexts b and a, as in
            // `measure`; `round` tracks which one a frame holds.
            let mut span = vec![0u8; FRAME * SPAN_FRAMES];
            let mut tags = Vec::new();
            for frame in span.chunks_mut(FRAME) {
                let a_to_b =
                    key.seal_in_place_separate_tag(nonce(), Aad::empty(), frame).expect("frame fits");
                let b_to_a =
                    key.seal_in_place_separate_tag(nonce(), Aad::empty(), frame).expect("frame fits");
                let _ = key.seal_in_place_separate_tag(nonce(), Aad::empty(), frame).expect("frame fits");
                tags.push([a_to_b, b_to_a]);
            }
            let mut round = [0usize; SPAN_FRAMES];
            start.wait();
            let started = Instant::now();
            for i in 0..frames as usize {
                let k = i % SPAN_FRAMES;
                let frame = &mut span[k * FRAME..(k + 1) * FRAME];
                let tag = tags[k][round[k] % 2];
                round[k] += 1;
                let plain = key.open_in_place_separate_tag(nonce(), Aad::empty(), tag, frame, 0..);
                std::hint::black_box(plain.expect("the tags match the alternating ciphertexts"));
            }
            started.elapsed().as_secs_f64()
        });
        let (seal_secs, open_secs) = (sealer.join().expect("sealer"), opener.join().expect("opener"));
        let bytes = (frames * FRAME as u64) as f64;
        CipherRates { seal_bytes_per_sec: bytes / seal_secs, open_bytes_per_sec: bytes / open_secs }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn measures_without_failing_an_open() {
        let rates = super::measure(1 << 20);
        assert!(rates.seal_bytes_per_sec > 0.0 && rates.open_bytes_per_sec > 0.0);
    }

    #[test]
    fn measures_both_cores_without_failing_an_open() {
        let rates = super::measure_concurrent(4 << 20);
        assert!(rates.seal_bytes_per_sec > 0.0 && rates.open_bytes_per_sec > 0.0);
    }
}
