//! Transport-phase framing and encryption: the two `CipherState`s that the
//! handshake's `Split()` produces, one per direction.
//!
//! Each direction is ChaCha20-Poly1305 (RFC 8439) with a 64-bit counter
//! nonce, encoded as Noise's ChaChaPoly cipher functions require: 32 zero
//! bits followed by the counter, little-endian. The associated data is
//! empty. The frames are bit-for-bit what snow's `TransportState` produces
//! (tested), but sealed and opened in place in the caller's buffer.

use super::{FRAME_HEADER_LEN, MAX_FRAME_LEN, MAX_PLAINTEXT_LEN, TAG_LEN};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};
use std::fmt;
use thiserror::Error;

/// Why a transport frame could not be sealed or opened.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CipherError {
    /// The frame's authentication tag does not verify: it was corrupted,
    /// forged, replayed or reordered. The remote's (or the path's) fault.
    #[error("frame failed to decrypt")]
    Decrypt,
    /// A received frame is shorter than the 16-byte tag.
    #[error("frame of {len} bytes is shorter than the tag")]
    FrameTooShort {
        /// The frame's length.
        len: usize,
    },
    /// The plaintext does not fit in one frame.
    #[error("plaintext of {len} bytes exceeds the frame limit of {max}")]
    FrameTooLarge {
        /// The plaintext's length.
        len: usize,
        /// The limit, [`MAX_PLAINTEXT_LEN`].
        max: usize,
    },
    /// 2⁶⁴ − 1 frames went this way; the connection must close.
    #[error("nonce exhausted")]
    NonceExhausted,
}

impl From<CipherError> for std::io::Error {
    /// `Decrypt` and `FrameTooShort` are [`InvalidData`]; `FrameTooLarge`
    /// is [`InvalidInput`]; `NonceExhausted` is [`Other`].
    ///
    /// [`InvalidData`]: std::io::ErrorKind::InvalidData
    /// [`InvalidInput`]: std::io::ErrorKind::InvalidInput
    /// [`Other`]: std::io::ErrorKind::Other
    fn from(err: CipherError) -> Self {
        use std::io::ErrorKind;
        let kind = match err {
            CipherError::Decrypt | CipherError::FrameTooShort { .. } => ErrorKind::InvalidData,
            CipherError::FrameTooLarge { .. } => ErrorKind::InvalidInput,
            CipherError::NonceExhausted => ErrorKind::Other,
        };
        std::io::Error::new(kind, err)
    }
}

/// One direction's key and nonce counter.
///
/// The key is kept as its 32 bytes and expanded into ring's key type for
/// each frame: ring's type is sized for its largest algorithm (an AES key
/// schedule, about half a KiB), and two of them would be a sixth of what an
/// idle connection costs, while building one for ChaCha20 is a copy.
struct CipherState {
    key: [u8; 32],
    nonce: u64,
}

impl CipherState {
    fn new(key: [u8; 32]) -> Self {
        Self { key, nonce: 0 }
    }

    fn key(&self) -> LessSafeKey {
        // A 32-byte key is always valid for ChaCha20-Poly1305.
        LessSafeKey::new(
            UnboundKey::new(&CHACHA20_POLY1305, &self.key).expect("32-byte chacha20-poly1305 key"),
        )
    }

    /// The next nonce; fails (without advancing) at 2⁶⁴ − 1, which Noise
    /// reserves.
    fn next_nonce(&mut self) -> Result<Nonce, CipherError> {
        if self.nonce == u64::MAX {
            return Err(CipherError::NonceExhausted);
        }
        let mut bytes = [0u8; 12];
        bytes[4..].copy_from_slice(&self.nonce.to_le_bytes());
        self.nonce += 1;
        Ok(Nonce::assume_unique_for_key(bytes))
    }
}

/// Encrypts outgoing transport frames.
pub struct SendCipher(CipherState);

/// Decrypts incoming transport frames.
pub struct RecvCipher(CipherState);

impl SendCipher {
    /// A sender with `key` (from the handshake's split) and nonce 0.
    pub(crate) fn new(key: [u8; 32]) -> Self {
        Self(CipherState::new(key))
    }

    /// Seals a frame laid out in place:
    /// `frame = [2 header bytes, ignored][plaintext][16 bytes, ignored]`.
    ///
    /// Writes the big-endian length into the header and the tag into the
    /// last 16 bytes, and encrypts the plaintext in place; `frame` is then
    /// ready to send. The plaintext is at most [`MAX_PLAINTEXT_LEN`] bytes.
    ///
    /// # Errors
    ///
    /// [`CipherError::FrameTooLarge`] if the plaintext is too long (or
    /// `frame` too short to hold the header and tag), and
    /// [`CipherError::NonceExhausted`] when this direction is used up.
    pub fn seal_frame(&mut self, frame: &mut [u8]) -> Result<(), CipherError> {
        let Some(plaintext_len) = frame.len().checked_sub(FRAME_HEADER_LEN + TAG_LEN) else {
            return Err(CipherError::FrameTooLarge { len: 0, max: MAX_PLAINTEXT_LEN });
        };
        if plaintext_len > MAX_PLAINTEXT_LEN {
            return Err(CipherError::FrameTooLarge { len: plaintext_len, max: MAX_PLAINTEXT_LEN });
        }
        let nonce = self.0.next_nonce()?;
        let (header, body) = frame.split_at_mut(FRAME_HEADER_LEN);
        let (plaintext, tag_space) = body.split_at_mut(plaintext_len);
        let tag = self
            .0
            .key()
            .seal_in_place_separate_tag(nonce, Aad::empty(), plaintext)
            // ring fails only for inputs beyond ChaCha20's 256 GiB block limit.
            .expect("frame within chacha20 limits");
        tag_space.copy_from_slice(tag.as_ref());
        // plaintext_len + TAG_LEN <= MAX_FRAME_LEN = u16::MAX.
        header.copy_from_slice(&((plaintext_len + TAG_LEN) as u16).to_be_bytes());
        Ok(())
    }

    /// Encrypts `plaintext` (at most [`MAX_PLAINTEXT_LEN`] bytes) in place
    /// and returns the frame's header and tag: the frame on the wire is
    /// `header ‖ plaintext (now ciphertext) ‖ tag`, for a caller that sends
    /// the three pieces with one vectored write instead of copying.
    pub fn seal_detached(
        &mut self,
        plaintext: &mut [u8],
    ) -> Result<([u8; FRAME_HEADER_LEN], [u8; TAG_LEN]), CipherError> {
        if plaintext.len() > MAX_PLAINTEXT_LEN {
            return Err(CipherError::FrameTooLarge { len: plaintext.len(), max: MAX_PLAINTEXT_LEN });
        }
        let nonce = self.0.next_nonce()?;
        let tag = self
            .0
            .key()
            .seal_in_place_separate_tag(nonce, Aad::empty(), plaintext)
            // ring fails only for inputs beyond ChaCha20's 256 GiB block limit.
            .expect("frame within chacha20 limits");
        let mut tag_bytes = [0; TAG_LEN];
        tag_bytes.copy_from_slice(tag.as_ref());
        // plaintext.len() + TAG_LEN <= MAX_FRAME_LEN = u16::MAX.
        Ok((((plaintext.len() + TAG_LEN) as u16).to_be_bytes(), tag_bytes))
    }

    /// Appends one frame carrying `plaintext` to `out`: header, ciphertext,
    /// tag. Copies the plaintext once and allocates only if `out` lacks
    /// capacity. On error `out` is unchanged.
    pub fn encrypt_frame(&mut self, plaintext: &[u8], out: &mut Vec<u8>) -> Result<(), CipherError> {
        if plaintext.len() > MAX_PLAINTEXT_LEN {
            return Err(CipherError::FrameTooLarge { len: plaintext.len(), max: MAX_PLAINTEXT_LEN });
        }
        let start = out.len();
        out.extend_from_slice(&[0; FRAME_HEADER_LEN]);
        out.extend_from_slice(plaintext);
        out.extend_from_slice(&[0; TAG_LEN]);
        let result = self.seal_frame(&mut out[start..]);
        if result.is_err() {
            out.truncate(start);
        }
        result
    }

    /// The nonce the next frame will use (= frames sealed so far).
    pub fn nonce(&self) -> u64 {
        self.0.nonce
    }

    #[cfg(test)]
    pub(crate) fn set_nonce(&mut self, nonce: u64) {
        self.0.nonce = nonce;
    }
}

impl RecvCipher {
    /// A receiver with `key` (from the handshake's split) and nonce 0.
    pub(crate) fn new(key: [u8; 32]) -> Self {
        Self(CipherState::new(key))
    }

    /// Opens one Noise transport message (a frame without its 2-byte
    /// header: ciphertext ‖ tag) in place and returns the plaintext, a
    /// prefix of `message`.
    ///
    /// # Errors
    ///
    /// [`CipherError::FrameTooShort`] below 16 bytes, [`CipherError::Decrypt`]
    /// if the tag does not verify (the nonce still advances: the stream is
    /// unusable after any error), [`CipherError::NonceExhausted`] at the end.
    pub fn open_in_place<'a>(&mut self, message: &'a mut [u8]) -> Result<&'a mut [u8], CipherError> {
        if message.len() < TAG_LEN {
            return Err(CipherError::FrameTooShort { len: message.len() });
        }
        if message.len() > MAX_FRAME_LEN {
            return Err(CipherError::FrameTooLarge { len: message.len() - TAG_LEN, max: MAX_PLAINTEXT_LEN });
        }
        let nonce = self.0.next_nonce()?;
        self.0
            .key()
            .open_in_place(nonce, Aad::empty(), message)
            .map(|p| &mut p[..])
            .map_err(|_| CipherError::Decrypt)
    }

    /// Decrypts one Noise transport message (without header) and appends
    /// the plaintext to `out`. On error `out` is unchanged.
    pub fn decrypt_frame(&mut self, message: &[u8], out: &mut Vec<u8>) -> Result<(), CipherError> {
        let start = out.len();
        out.extend_from_slice(message);
        match self.open_in_place(&mut out[start..]) {
            Ok(plaintext) => {
                let len = plaintext.len();
                out.truncate(start + len);
                Ok(())
            }
            Err(e) => {
                out.truncate(start);
                Err(e)
            }
        }
    }

    /// The nonce the next frame must carry (= frames opened so far).
    pub fn nonce(&self) -> u64 {
        self.0.nonce
    }

    #[cfg(test)]
    pub(crate) fn set_nonce(&mut self, nonce: u64) {
        self.0.nonce = nonce;
    }
}

impl fmt::Debug for SendCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendCipher").field("nonce", &self.0.nonce).finish_non_exhaustive()
    }
}

impl fmt::Debug for RecvCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecvCipher").field("nonce", &self.0.nonce).finish_non_exhaustive()
    }
}

/// Reads a frame header: the length of the Noise message that follows, or
/// `None` if `buf` holds fewer than 2 bytes.
pub fn decode_frame_header(buf: &[u8]) -> Option<usize> {
    match buf {
        [hi, lo, ..] => Some(usize::from(u16::from_be_bytes([*hi, *lo]))),
        _ => None,
    }
}

/// The header of a frame carrying a `len`-byte Noise message.
///
/// # Errors
///
/// [`CipherError::FrameTooLarge`] if `len` exceeds [`MAX_FRAME_LEN`].
pub fn encode_frame_header(len: usize) -> Result<[u8; FRAME_HEADER_LEN], CipherError> {
    u16::try_from(len)
        .map(u16::to_be_bytes)
        .map_err(|_| CipherError::FrameTooLarge { len, max: MAX_FRAME_LEN })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pair() -> (SendCipher, RecvCipher) {
        (SendCipher::new([7; 32]), RecvCipher::new([7; 32]))
    }

    #[test]
    fn frame_header_bytes() {
        assert_eq!(encode_frame_header(0), Ok([0x00, 0x00]));
        assert_eq!(encode_frame_header(0x1234), Ok([0x12, 0x34]));
        assert_eq!(encode_frame_header(65535), Ok([0xff, 0xff]));
        assert_eq!(encode_frame_header(65536), Err(CipherError::FrameTooLarge { len: 65536, max: 65535 }));
        assert_eq!(decode_frame_header(&[0xff]), None);
        assert_eq!(decode_frame_header(&[0x01, 0x02, 0xaa]), Some(0x0102));
    }

    /// Key 07×32, plaintext "hello", nonces 0 and 1 (32 zero bits ‖ the
    /// counter little-endian). The ciphertexts were computed independently
    /// with Python's `cryptography` ChaCha20Poly1305.
    #[test]
    fn sealed_frame_bytes() {
        let (mut tx, mut rx) = pair();
        let mut out = Vec::new();
        tx.encrypt_frame(b"hello", &mut out).unwrap();
        tx.encrypt_frame(b"hello", &mut out).unwrap();
        let expected = concat!(
            "0015", // 5 + 16 bytes, big-endian
            "5fe145600f",
            "713b52169600ba59cc38ed54e2412b48",
            "0015",
            "d2365c0c4a",
            "4837e572827d7cdd6e098edd6fe6a85f",
        );
        assert_eq!(hex::encode(&out), expected);
        let mut plain = Vec::new();
        rx.decrypt_frame(&out[2..23], &mut plain).unwrap();
        rx.decrypt_frame(&out[25..], &mut plain).unwrap();
        assert_eq!(plain, b"hellohello");
        assert_eq!((tx.nonce(), rx.nonce()), (2, 2));
    }

    #[test]
    fn detached_seal_matches_the_framed_one() {
        let (mut framed, _) = pair();
        let (mut detached, _) = pair();
        for len in [0, 5, 1000, MAX_PLAINTEXT_LEN] {
            let plaintext: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut expected = Vec::new();
            framed.encrypt_frame(&plaintext, &mut expected).unwrap();
            let mut body = plaintext.clone();
            let (header, tag) = detached.seal_detached(&mut body).unwrap();
            assert_eq!([&header[..], &body, &tag].concat(), expected, "len {len}");
        }
        let mut too_long = vec![0; MAX_PLAINTEXT_LEN + 1];
        assert!(matches!(detached.seal_detached(&mut too_long), Err(CipherError::FrameTooLarge { .. })));
        assert_eq!(detached.nonce(), 4, "a refused frame uses no nonce");
    }

    #[test]
    fn flipped_tag_byte_is_a_decrypt_error() {
        let (mut tx, mut rx) = pair();
        let mut out = Vec::new();
        tx.encrypt_frame(b"payload", &mut out).unwrap();
        *out.last_mut().unwrap() ^= 0x01;
        let mut plain = Vec::new();
        assert_eq!(rx.decrypt_frame(&out[2..], &mut plain), Err(CipherError::Decrypt));
        assert!(plain.is_empty());
    }

    #[test]
    fn size_limits() {
        let (mut tx, mut rx) = pair();
        let mut out = Vec::new();
        let max = vec![0u8; MAX_PLAINTEXT_LEN];
        tx.encrypt_frame(&max, &mut out).unwrap();
        assert_eq!(out.len(), 2 + 65535);
        assert_eq!(&out[..2], [0xff, 0xff]);
        assert_eq!(
            tx.encrypt_frame(&[0; MAX_PLAINTEXT_LEN + 1], &mut out),
            Err(CipherError::FrameTooLarge { len: 65520, max: 65519 })
        );
        assert_eq!(out.len(), 2 + 65535, "unchanged on error");
        assert_eq!(rx.open_in_place(&mut [0; 15]), Err(CipherError::FrameTooShort { len: 15 }));
        assert_eq!(rx.nonce(), 0, "a short frame does not use a nonce");
        assert_eq!(tx.seal_frame(&mut [0; 17]), Err(CipherError::FrameTooLarge { len: 0, max: 65519 }));
    }

    #[test]
    fn empty_plaintext_is_a_valid_frame() {
        let (mut tx, mut rx) = pair();
        let mut frame = [0u8; 18];
        tx.seal_frame(&mut frame).unwrap();
        assert_eq!(&frame[..2], [0, 16]);
        assert_eq!(rx.open_in_place(&mut frame[2..]).unwrap(), &[] as &[u8]);
    }

    #[test]
    fn nonce_exhaustion_errors_and_never_wraps() {
        let (mut tx, mut rx) = pair();
        tx.set_nonce(u64::MAX - 1);
        rx.set_nonce(u64::MAX - 1);
        let mut out = Vec::new();
        tx.encrypt_frame(b"last", &mut out).unwrap();
        assert_eq!(tx.encrypt_frame(b"one more", &mut out), Err(CipherError::NonceExhausted));
        assert_eq!(tx.nonce(), u64::MAX);
        let mut plain = Vec::new();
        rx.decrypt_frame(&out[2..], &mut plain).unwrap();
        assert_eq!(plain, b"last");
        assert_eq!(rx.open_in_place(&mut [0; 16]), Err(CipherError::NonceExhausted));
    }

    #[test]
    fn frames_must_arrive_in_order() {
        let (mut tx, mut rx) = pair();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        tx.encrypt_frame(b"first", &mut a).unwrap();
        tx.encrypt_frame(b"second", &mut b).unwrap();
        assert_eq!(rx.decrypt_frame(&b[2..], &mut Vec::new()), Err(CipherError::Decrypt));
    }

    #[test]
    fn io_error_kinds() {
        use std::io::ErrorKind;
        assert_eq!(std::io::Error::from(CipherError::Decrypt).kind(), ErrorKind::InvalidData);
        assert_eq!(std::io::Error::from(CipherError::NonceExhausted).kind(), ErrorKind::Other);
    }

    proptest! {
        #[test]
        fn roundtrip(frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..8)) {
            let (mut tx, mut rx) = pair();
            for plaintext in frames {
                let mut out = Vec::new();
                tx.encrypt_frame(&plaintext, &mut out).unwrap();
                prop_assert_eq!(decode_frame_header(&out), Some(out.len() - 2));
                let mut plain = Vec::new();
                rx.decrypt_frame(&out[2..], &mut plain).unwrap();
                prop_assert_eq!(plain, plaintext);
            }
        }

        #[test]
        fn arbitrary_frames_never_panic(message in proptest::collection::vec(any::<u8>(), 0..100)) {
            let (_, mut rx) = pair();
            let mut message = message;
            prop_assert!(rx.open_in_place(&mut message).is_err());
        }
    }
}
