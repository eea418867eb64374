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

/// The benchmark's key. A fixed key is fine for a benchmark; so is the
/// repeated nonce.
fn key() -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &[7u8; 32]).expect("32-byte key"))
}

/// Makes `frame` valid ciphertext for repeated opens without copying it
/// back. ChaCha20 is an XOR stream, so with one nonce sealing `a` gives `b`
/// and sealing `b` gives `a`: `frame` is left holding `b`, and opening it
/// with the returned tags in turn (`[0]`, `[1]`, `[0]`, ...) alternates
/// between `b` and `a`.
fn alternating_tags(key: &LessSafeKey, frame: &mut [u8]) -> [Tag; 2] {
    let seal =
        |frame: &mut [u8]| key.seal_in_place_separate_tag(nonce(), Aad::empty(), frame).expect("frame fits");
    let a_to_b = seal(frame);
    // `frame` holds b; sealing it again gives a back, with a's tag as
    // ciphertext.
    let b_to_a = seal(frame);
    // `frame` holds a; make it the ciphertext b again for the first open.
    let _ = seal(frame);
    [a_to_b, b_to_a]
}

fn rates(frames: u64, seal_secs: f64, open_secs: f64) -> CipherRates {
    let bytes = (frames * FRAME as u64) as f64;
    CipherRates { seal_bytes_per_sec: bytes / seal_secs, open_bytes_per_sec: bytes / open_secs }
}

/// Seals, then opens, at least `total` bytes in [`FRAME`] blocks.
pub fn measure(total: u64) -> CipherRates {
    let key = key();
    let frames = total.div_ceil(FRAME as u64).max(1);
    let mut buf = vec![0u8; FRAME];

    let started = Instant::now();
    for _ in 0..frames {
        let tag = key.seal_in_place_separate_tag(nonce(), Aad::empty(), &mut buf).expect("frame fits");
        let _ = std::hint::black_box(tag);
    }
    let seal_secs = started.elapsed().as_secs_f64();

    let tags = alternating_tags(&key, &mut buf);
    let started = Instant::now();
    for i in 0..frames {
        let tag = tags[(i % 2) as usize];
        let plain = key.open_in_place_separate_tag(nonce(), Aad::empty(), tag, &mut buf, 0..);
        std::hint::black_box(plain.expect("the tags match the alternating ciphertexts"));
    }
    let open_secs = started.elapsed().as_secs_f64();
    rates(frames, seal_secs, open_secs)
}

/// Frames a transfer keeps in flight per side: the cipher then works on
/// data that has left L1, as it does in a transfer.
const SPAN_FRAMES: usize = 16;

/// Seals on one thread while another opens, each over 16
/// frames in turn: the cipher as an encrypted transfer runs it, with both
/// cores busy (on shared or virtual cores the two slow each other down).
pub fn measure_concurrent(total: u64) -> CipherRates {
    let frames = total.div_ceil(FRAME as u64).max(1);
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
            let mut span = vec![0u8; FRAME * SPAN_FRAMES];
            let tags: Vec<[Tag; 2]> =
                span.chunks_mut(FRAME).map(|frame| alternating_tags(&key, frame)).collect();
            start.wait();
            let started = Instant::now();
            for i in 0..frames as usize {
                let (k, opened_before) = (i % SPAN_FRAMES, i / SPAN_FRAMES);
                let frame = &mut span[k * FRAME..(k + 1) * FRAME];
                let tag = tags[k][opened_before % 2];
                let plain = key.open_in_place_separate_tag(nonce(), Aad::empty(), tag, frame, 0..);
                std::hint::black_box(plain.expect("the tags match the alternating ciphertexts"));
            }
            started.elapsed().as_secs_f64()
        });
        let (seal_secs, open_secs) = (sealer.join().expect("sealer"), opener.join().expect("opener"));
        rates(frames, seal_secs, open_secs)
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
