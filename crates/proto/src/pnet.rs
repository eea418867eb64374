//! Private networks with a pre-shared key (libp2p/specs
//! `pnet/Private-Networks-PSK-V1.md`): the key, its file format and the
//! XSalsa20 keystream.
//!
//! > A private network is defined by the 256-bit secret key, which has to
//! > be known and used by all members inside the network. [...] The file
//! > uses a path-based multicodec where, for now, the codec that is defined
//! > and used is `/key/swarm/psk/1.0.0/`. The codec expects the next
//! > path-based multicodec to define the base encoding for the rest of the
//! > file (`/bin/`, `/base16/`, `/base64/`), which is the 256-bit PSK.
//!
//! A key file (`swarm.key` in go-ipfs / kubo) therefore reads
//!
//! ```text
//! /key/swarm/psk/1.0.0/
//! /base16/
//! 6189c5cf0b87fb800c1a9feeda73c6ab5e998db48fb9e6a978575c770ceef683
//! ```
//!
//! [`PreSharedKey::from_key_file`] accepts all three encodings, `\n` or
//! `\r\n` line ends, whitespace around the key and at the end of each line,
//! and trailing blank lines; anything else is a typed [`PskParseError`].
//! Errors never quote the file, which may hold the secret.
//!
//! # The wire protocol
//!
//! > New nonce is created, it is cross-shared with the other party and
//! > XSalsa20 stream is initialized. After 24 bytes of random data (nonce),
//! > all traffic is encrypted using XSalsa20.
//!
//! Each side sends [`NONCE_LEN`] random bytes first, then everything it
//! writes XORed with XSalsa20(psk, its own nonce); it decrypts what it
//! reads with XSalsa20(psk, the remote's nonce). Nothing authenticates the
//! key: with different keys both sides simply read garbage, which the
//! security handshake above then rejects. [`PnetCipher`] is one direction's
//! keystream; the async layer (`peerswarm`'s upgrader) moves the bytes.

use std::fmt;
use std::str::FromStr;

use salsa20::cipher::{KeyIvInit, StreamCipher};
use salsa20::{Salsa20, XSalsa20};
use shake::{ExtendableOutput, Shake128, Update, XofReader};

/// The key-file header naming the codec.
pub const KEY_FILE_CODEC: &str = "/key/swarm/psk/1.0.0/";
/// Length of a pre-shared key, in bytes.
pub const KEY_LEN: usize = 32;
/// Length of the nonce each side sends before any other byte.
pub const NONCE_LEN: usize = 24;
/// Length of a [`PskFingerprint`], in bytes.
pub const FINGERPRINT_LEN: usize = 16;

/// How the key is written in a key file, on the line after the codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PskEncoding {
    /// `/base16/`: 64 hex digits (either case on input, lower case on
    /// output). What go-libp2p and rust-libp2p write.
    Base16,
    /// `/base64/`: the standard alphabet (RFC 4648 §4), padding optional on
    /// input.
    Base64,
    /// `/bin/`: the 32 raw bytes.
    Bin,
}

impl PskEncoding {
    /// The key-file line naming this encoding (`/base16/`, ...).
    pub fn header(self) -> &'static str {
        match self {
            PskEncoding::Base16 => "/base16/",
            PskEncoding::Base64 => "/base64/",
            PskEncoding::Bin => "/bin/",
        }
    }

    fn from_header(line: &[u8]) -> Option<Self> {
        [PskEncoding::Base16, PskEncoding::Base64, PskEncoding::Bin]
            .into_iter()
            .find(|e| e.header().as_bytes() == line)
    }
}

impl fmt::Display for PskEncoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.header())
    }
}

/// Why a key file was rejected. The messages never include the file's
/// contents, since any line may be the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PskParseError {
    /// The first line is not [`KEY_FILE_CODEC`] (or the file is empty).
    #[error("not a pre-shared key file: the first line must be {KEY_FILE_CODEC}")]
    UnknownCodec,
    /// The file ends after the codec line.
    #[error("key file ends before the encoding line (/base16/, /base64/ or /bin/)")]
    MissingEncoding,
    /// The second line is not `/base16/`, `/base64/` or `/bin/`.
    #[error("unknown key encoding: the second line must be /base16/, /base64/ or /bin/")]
    UnknownEncoding,
    /// The key does not decode to [`KEY_LEN`] bytes.
    #[error("{encoding} key of {len} characters does not decode to {KEY_LEN} bytes")]
    InvalidLength {
        /// The file's encoding.
        encoding: PskEncoding,
        /// The length of the key text (for `/bin/`, of everything after
        /// the encoding line).
        len: usize,
    },
    /// The key text holds a character its encoding does not allow.
    #[error("invalid {encoding} character at offset {offset} of the key")]
    InvalidCharacter {
        /// The file's encoding.
        encoding: PskEncoding,
        /// Byte offset in the (trimmed) key text.
        offset: usize,
    },
    /// Something other than whitespace follows the key.
    #[error("unexpected data after the key")]
    TrailingData,
}

/// A private network's 32-byte pre-shared key.
///
/// `Debug` shows the [fingerprint](Self::fingerprint), never the key; there
/// is no `Display`, so the secret only leaves through
/// [`to_key_file`](Self::to_key_file) and [`as_bytes`](Self::as_bytes).
#[derive(Clone, PartialEq, Eq)]
pub struct PreSharedKey([u8; KEY_LEN]);

impl PreSharedKey {
    /// The key with these bytes.
    pub fn new(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// A fresh random key from the operating system's generator.
    pub fn generate() -> Self {
        Self(rand::random())
    }

    /// The raw key. Secret.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// Parses a key file (see the [module docs](self) for what is accepted).
    pub fn from_key_file(file: &[u8]) -> Result<Self, PskParseError> {
        let (codec, rest) = split_line(file);
        if trim_end(codec) != KEY_FILE_CODEC.as_bytes() {
            return Err(PskParseError::UnknownCodec);
        }
        let Some(rest) = rest else { return Err(PskParseError::MissingEncoding) };
        let (encoding, body) = split_line(rest);
        let encoding = PskEncoding::from_header(trim_end(encoding)).ok_or(PskParseError::UnknownEncoding)?;
        let body = body.unwrap_or_default();
        let (key, trailing) = match encoding {
            PskEncoding::Bin => {
                if body.len() < KEY_LEN {
                    return Err(PskParseError::InvalidLength { encoding, len: body.len() });
                }
                let (key, trailing) = body.split_at(KEY_LEN);
                // Infallible: `key` is exactly KEY_LEN bytes.
                (<[u8; KEY_LEN]>::try_from(key).map_err(|_| PskParseError::TrailingData)?, trailing)
            }
            PskEncoding::Base16 | PskEncoding::Base64 => {
                let (line, trailing) = split_line(trim_start(body));
                let text = trim_end(line);
                let key = match encoding {
                    PskEncoding::Base16 => decode_base16(text)?,
                    _ => decode_base64(text)?,
                };
                (key, trailing.unwrap_or_default())
            }
        };
        if !trailing.iter().all(u8::is_ascii_whitespace) {
            return Err(PskParseError::TrailingData);
        }
        Ok(Self(key))
    }

    /// The key file in the canonical form, as go-libp2p and rust-libp2p
    /// write it: the codec line, `/base16/`, 64 lower-case hex digits, each
    /// line ending in `\n`. Secret.
    pub fn to_key_file(&self) -> String {
        let mut out = String::with_capacity(KEY_FILE_CODEC.len() + 10 + 2 * KEY_LEN);
        out.push_str(KEY_FILE_CODEC);
        out.push('\n');
        out.push_str(PskEncoding::Base16.header());
        out.push('\n');
        push_hex(&mut out, &self.0);
        out.push('\n');
        out
    }

    /// The key file with the key in `encoding`. Secret.
    pub fn to_key_file_with(&self, encoding: PskEncoding) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        out.extend_from_slice(KEY_FILE_CODEC.as_bytes());
        out.push(b'\n');
        out.extend_from_slice(encoding.header().as_bytes());
        out.push(b'\n');
        match encoding {
            PskEncoding::Base16 => {
                let mut hex = String::with_capacity(2 * KEY_LEN);
                push_hex(&mut hex, &self.0);
                out.extend_from_slice(hex.as_bytes());
                out.push(b'\n');
            }
            PskEncoding::Base64 => {
                encode_base64(&self.0, &mut out);
                out.push(b'\n');
            }
            // No newline: it would read as part of the key in other parsers.
            PskEncoding::Bin => out.extend_from_slice(&self.0),
        }
        out
    }

    /// A public digest of the key, for checking that two nodes hold the
    /// same key without showing it. Not in the spec; computed as go-libp2p
    /// and rust-libp2p do (SHAKE128 of 64 bytes of Salsa20 keystream under
    /// the key and the nonce `finprint`, first 16 bytes), so the three print
    /// the same fingerprint.
    pub fn fingerprint(&self) -> PskFingerprint {
        let mut block = [0u8; 64];
        Salsa20::new(&self.0.into(), b"finprint".into()).apply_keystream(&mut block);
        let mut hasher = Shake128::default();
        hasher.update(&block);
        let mut out = [0u8; FINGERPRINT_LEN];
        hasher.finalize_xof().read(&mut out);
        PskFingerprint(out)
    }
}

impl FromStr for PreSharedKey {
    type Err = PskParseError;

    /// [`PreSharedKey::from_key_file`] on the text's bytes.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_key_file(s.as_bytes())
    }
}

impl fmt::Debug for PreSharedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PreSharedKey").field("fingerprint", &self.fingerprint()).finish()
    }
}

/// A pre-shared key's public [fingerprint](PreSharedKey::fingerprint);
/// `Display` is 32 lower-case hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PskFingerprint([u8; FINGERPRINT_LEN]);

impl PskFingerprint {
    /// The fingerprint's bytes.
    pub fn as_bytes(&self) -> &[u8; FINGERPRINT_LEN] {
        &self.0
    }
}

impl fmt::Display for PskFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut hex = String::with_capacity(2 * FINGERPRINT_LEN);
        push_hex(&mut hex, &self.0);
        f.write_str(&hex)
    }
}

impl fmt::Debug for PskFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PskFingerprint({self})")
    }
}

/// One direction's XSalsa20 keystream: `apply` XORs it over the bytes in
/// place, continuing where the previous call stopped. Encryption and
/// decryption are the same operation.
pub struct PnetCipher(XSalsa20);

/// The keystream ran out: 2⁷⁰ bytes went through one connection direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("private network keystream exhausted")]
pub struct KeystreamExhausted;

impl PnetCipher {
    /// The keystream for `psk` and the sending side's `nonce`.
    pub fn new(psk: &PreSharedKey, nonce: &[u8; NONCE_LEN]) -> Self {
        Self(XSalsa20::new(&psk.0.into(), nonce.into()))
    }

    /// XORs the next `buf.len()` keystream bytes into `buf`. Fails, leaving
    /// `buf` untouched, only past 2⁷⁰ bytes (the 64-bit block counter of
    /// Salsa20 wraps), which no connection reaches.
    pub fn apply(&mut self, buf: &mut [u8]) -> Result<(), KeystreamExhausted> {
        self.0.try_apply_keystream(buf).map_err(|_| KeystreamExhausted)
    }
}

impl fmt::Debug for PnetCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PnetCipher").finish_non_exhaustive()
    }
}

/// Splits at the first `\n`: the line without it, and what follows it
/// (`None` when there is no `\n`).
fn split_line(bytes: &[u8]) -> (&[u8], Option<&[u8]>) {
    match bytes.iter().position(|&b| b == b'\n') {
        Some(i) => (&bytes[..i], Some(&bytes[i + 1..])),
        None => (bytes, None),
    }
}

fn trim_end(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(0, |i| i + 1);
    &bytes[..end]
}

/// Skips leading whitespace, including blank lines.
fn trim_start(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(bytes.len());
    &bytes[start..]
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
}

fn decode_base16(text: &[u8]) -> Result<[u8; KEY_LEN], PskParseError> {
    let encoding = PskEncoding::Base16;
    let nibble = |offset: usize| -> Result<u8, PskParseError> {
        match text[offset] {
            c @ b'0'..=b'9' => Ok(c - b'0'),
            c @ b'a'..=b'f' => Ok(c - b'a' + 10),
            c @ b'A'..=b'F' => Ok(c - b'A' + 10),
            _ => Err(PskParseError::InvalidCharacter { encoding, offset }),
        }
    };
    for offset in 0..text.len() {
        nibble(offset)?;
    }
    if text.len() != 2 * KEY_LEN {
        return Err(PskParseError::InvalidLength { encoding, len: text.len() });
    }
    let mut key = [0u8; KEY_LEN];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = nibble(2 * i)? << 4 | nibble(2 * i + 1)?;
    }
    Ok(key)
}

const BASE64_ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn decode_base64(text: &[u8]) -> Result<[u8; KEY_LEN], PskParseError> {
    let encoding = PskEncoding::Base64;
    // Padding: only at the end, and only as much as completes a 4-char group.
    let data_len = text.iter().rposition(|&c| c != b'=').map_or(0, |i| i + 1);
    let padding = text.len() - data_len;
    if padding > 2 || (padding > 0 && text.len() % 4 != 0) {
        return Err(PskParseError::InvalidCharacter { encoding, offset: data_len });
    }
    let mut out = Vec::with_capacity(data_len * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for (offset, &c) in text[..data_len].iter().enumerate() {
        let value = BASE64_ALPHABET
            .iter()
            .position(|&a| a == c)
            .ok_or(PskParseError::InvalidCharacter { encoding, offset })?;
        // `value` < 64: the alphabet's length.
        acc = (acc << 6 | value as u32) & 0xff_ffff;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    let wrong_length = PskParseError::InvalidLength { encoding, len: text.len() };
    // One char past the last group (6 bits) is not a whole byte.
    if bits >= 6 {
        return Err(wrong_length);
    }
    // Two or three leave 4 or 2 bits, zero in canonical base64.
    if acc & ((1 << bits) - 1) != 0 {
        return Err(PskParseError::InvalidCharacter { encoding, offset: data_len - 1 });
    }
    <[u8; KEY_LEN]>::try_from(out.as_slice()).map_err(|_| wrong_length)
}

fn encode_base64(bytes: &[u8], out: &mut Vec<u8>) {
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(BASE64_ALPHABET[(n >> (18 - 6 * i) & 0x3f) as usize]);
            } else {
                out.push(b'=');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The key and fingerprint of rust-libp2p's `libp2p-pnet` fingerprint
    /// test ("checked against go-ipfs output").
    const GO_KEY_HEX: &str = "6189c5cf0b87fb800c1a9feeda73c6ab5e998db48fb9e6a978575c770ceef683";
    const GO_FINGERPRINT: &str = "45fc986bbc9388a11d939df26f730f0c";

    fn go_key_file() -> String {
        format!("/key/swarm/psk/1.0.0/\n/base16/\n{GO_KEY_HEX}\n")
    }

    fn key_bytes() -> [u8; KEY_LEN] {
        hex::decode(GO_KEY_HEX).unwrap().try_into().unwrap()
    }

    #[test]
    fn parses_the_canonical_base16_file() {
        let key: PreSharedKey = go_key_file().parse().unwrap();
        assert_eq!(key.as_bytes(), &key_bytes());
        assert_eq!(key.to_key_file(), go_key_file());
    }

    #[test]
    fn fingerprint_matches_go_libp2p() {
        let key: PreSharedKey = go_key_file().parse().unwrap();
        assert_eq!(key.fingerprint().to_string(), GO_FINGERPRINT);
    }

    #[test]
    fn debug_shows_the_fingerprint_not_the_key() {
        let key = PreSharedKey::new(key_bytes());
        let debug = format!("{key:?}");
        assert!(debug.contains(GO_FINGERPRINT), "{debug}");
        assert!(!debug.contains(&GO_KEY_HEX[..8]), "{debug}");
        assert!(!debug.to_lowercase().contains(&GO_KEY_HEX[..8]), "{debug}");
    }

    #[test]
    fn accepts_liberal_whitespace_and_other_encodings() {
        let upper = GO_KEY_HEX.to_uppercase();
        let base64 = "YYnFzwuH+4AMGp/u2nPGq16ZjbSPueapeFdcdwzu9oM=";
        let mut bin = b"/key/swarm/psk/1.0.0/\n/bin/\n".to_vec();
        bin.extend_from_slice(&key_bytes());
        let mut bin_newline = bin.clone();
        bin_newline.extend_from_slice(b"\n");
        let texts: Vec<Vec<u8>> = vec![
            // no final newline
            format!("/key/swarm/psk/1.0.0/\n/base16/\n{GO_KEY_HEX}").into(),
            // CRLF, trailing spaces, blank lines
            format!("/key/swarm/psk/1.0.0/\r\n/base16/ \r\n{GO_KEY_HEX}\r\n\r\n").into(),
            format!("/key/swarm/psk/1.0.0/\n/base16/\n\n  {upper}\t\n\n").into(),
            format!("/key/swarm/psk/1.0.0/\n/base64/\n{base64}\n").into(),
            format!("/key/swarm/psk/1.0.0/\n/base64/\n{}\n", base64.trim_end_matches('=')).into(),
            bin,
            bin_newline,
        ];
        for text in texts {
            let key = PreSharedKey::from_key_file(&text)
                .unwrap_or_else(|e| panic!("{:?}: {e}", String::from_utf8_lossy(&text)));
            assert_eq!(key.as_bytes(), &key_bytes(), "{:?}", String::from_utf8_lossy(&text));
        }
    }

    #[test]
    fn rejects_malformed_files_with_typed_errors() {
        use PskEncoding::*;
        use PskParseError::*;
        let k = GO_KEY_HEX;
        let cases: Vec<(String, PskParseError)> = vec![
            (String::new(), UnknownCodec),
            ("\n".into(), UnknownCodec),
            (k.into(), UnknownCodec),
            (format!("/key/swarm/psk/2.0.0/\n/base16/\n{k}"), UnknownCodec),
            (format!(" /key/swarm/psk/1.0.0/\n/base16/\n{k}"), UnknownCodec),
            ("/key/swarm/psk/1.0.0/".into(), MissingEncoding),
            ("/key/swarm/psk/1.0.0/\n".into(), UnknownEncoding),
            (format!("/key/swarm/psk/1.0.0/\n/base32/\n{k}"), UnknownEncoding),
            (format!("/key/swarm/psk/1.0.0/\n{k}\n"), UnknownEncoding),
            ("/key/swarm/psk/1.0.0/\n/base16/".into(), InvalidLength { encoding: Base16, len: 0 }),
            ("/key/swarm/psk/1.0.0/\n/base16/\n".into(), InvalidLength { encoding: Base16, len: 0 }),
            (
                format!("/key/swarm/psk/1.0.0/\n/base16/\n{}", &k[..62]),
                InvalidLength { encoding: Base16, len: 62 },
            ),
            (format!("/key/swarm/psk/1.0.0/\n/base16/\n{k}00"), InvalidLength { encoding: Base16, len: 66 }),
            (format!("/key/swarm/psk/1.0.0/\n/base16/\n{k}0"), InvalidLength { encoding: Base16, len: 65 }),
            (
                format!("/key/swarm/psk/1.0.0/\n/base16/\n{}g", &k[..63]),
                InvalidCharacter { encoding: Base16, offset: 63 },
            ),
            (
                format!("/key/swarm/psk/1.0.0/\n/base16/\n{} {}", &k[..32], &k[32..]),
                InvalidCharacter { encoding: Base16, offset: 32 },
            ),
            (format!("/key/swarm/psk/1.0.0/\n/base16/\n{k}\n{k}\n"), TrailingData),
            (
                "/key/swarm/psk/1.0.0/\n/base64/\nYYnFzwuH+4AMGp/u2nPGq16ZjbSPueap".into(),
                InvalidLength { encoding: Base64, len: 32 },
            ),
            (
                "/key/swarm/psk/1.0.0/\n/base64/\nYYnFzwuH+4AMGp/u2nPGq16ZjbSPueapeFdcdwzu9oM=A".into(),
                InvalidCharacter { encoding: Base64, offset: 43 },
            ),
            (
                "/key/swarm/psk/1.0.0/\n/base64/\nYYnFzwuH+4AMGp/u2nPGq16ZjbSPueapeFdcdwzu9".into(),
                InvalidLength { encoding: Base64, len: 41 },
            ),
            (
                "/key/swarm/psk/1.0.0/\n/base64/\nYYnFzwuH+4AMGp/u2nPGq16ZjbSPuea*eFdcdwzu9oM=".into(),
                InvalidCharacter { encoding: Base64, offset: 31 },
            ),
            // non-zero bits after the last byte: not the canonical encoding
            (
                "/key/swarm/psk/1.0.0/\n/base64/\nYYnFzwuH+4AMGp/u2nPGq16ZjbSPueapeFdcdwzu9oN=".into(),
                InvalidCharacter { encoding: Base64, offset: 42 },
            ),
            (
                "/key/swarm/psk/1.0.0/\n/base64/\nYYnFzwuH+4AMGp/u2nPGq16ZjbSPueapeFdcdwzu9oM===".into(),
                InvalidCharacter { encoding: Base64, offset: 43 },
            ),
            ("/key/swarm/psk/1.0.0/\n/bin/\nshort".into(), InvalidLength { encoding: Bin, len: 5 }),
            (format!("/key/swarm/psk/1.0.0/\n/bin/\n{}x", &k[..32]), TrailingData),
        ];
        for (text, expected) in cases {
            assert_eq!(text.parse::<PreSharedKey>(), Err(expected), "{text:?}");
        }
    }

    #[test]
    fn errors_never_quote_the_file() {
        let text = format!("/key/swarm/psk/1.0.0/\n{GO_KEY_HEX}\n");
        let error = text.parse::<PreSharedKey>().unwrap_err().to_string();
        assert!(!error.contains(&GO_KEY_HEX[..8]), "{error}");
    }

    /// XSalsa20 keystream for the key and nonce of NaCl's `tests/stream3.c`
    /// (libsodium `test/default/stream3.c`, whose `.exp` holds the first 32
    /// bytes); bytes 32..64 from Wei Dai's XSalsa20 vectors in Crypto++
    /// (`TestVectors/salsa.txt`, made with naclcrypto-20090308).
    #[test]
    fn keystream_matches_the_nacl_vector() {
        let key = PreSharedKey::new(
            hex::decode("1b27556473e985d462cd51197a9a46c76009549eac6474f206c4ee0844f68389")
                .unwrap()
                .try_into()
                .unwrap(),
        );
        let nonce: [u8; NONCE_LEN] =
            hex::decode("69696ee955b62b73cd62bda875fc73d68219e0036b7a0b37").unwrap().try_into().unwrap();
        let expected = hex::decode(concat!(
            "eea6a7251c1e72916d11c2cb214d3c252539121d8e234e652d651fa4c8cff880",
            "309e645a74e9e0a60d8243acd9177ab51a1beb8d5a2f5d700c093c5e55855796",
        ))
        .unwrap();
        let mut stream = [0u8; 64];
        PnetCipher::new(&key, &nonce).apply(&mut stream).unwrap();
        assert_eq!(stream.as_slice(), expected.as_slice());

        // Applied in uneven pieces, the keystream continues where it stopped.
        let mut cipher = PnetCipher::new(&key, &nonce);
        let mut pieces = [0u8; 64];
        for range in [0..1, 1..7, 7..7, 7..40, 40..64] {
            cipher.apply(&mut pieces[range]).unwrap();
        }
        assert_eq!(pieces, stream);
    }

    #[test]
    fn apply_twice_is_the_identity() {
        let key = PreSharedKey::generate();
        let nonce = [7u8; NONCE_LEN];
        let mut data = b"hello private network".to_vec();
        PnetCipher::new(&key, &nonce).apply(&mut data).unwrap();
        assert_ne!(data, b"hello private network");
        PnetCipher::new(&key, &nonce).apply(&mut data).unwrap();
        assert_eq!(data, b"hello private network");
    }

    proptest! {
        #[test]
        fn key_file_roundtrip(bytes in any::<[u8; KEY_LEN]>()) {
            let key = PreSharedKey::new(bytes);
            prop_assert_eq!(&key.to_key_file().parse::<PreSharedKey>().unwrap(), &key);
            for encoding in [PskEncoding::Base16, PskEncoding::Base64, PskEncoding::Bin] {
                let file = key.to_key_file_with(encoding);
                prop_assert_eq!(&PreSharedKey::from_key_file(&file).unwrap(), &key);
            }
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = PreSharedKey::from_key_file(&bytes);
        }

        #[test]
        fn parse_never_panics_on_near_valid_files(
            encoding in prop_oneof![Just("/base16/"), Just("/base64/"), Just("/bin/"), Just("/x/")],
            body in proptest::collection::vec(
                prop_oneof![Just(b'a'), Just(b'F'), Just(b'0'), Just(b'='), Just(b'+'), Just(b'\n'),
                            Just(b' '), Just(b'\r'), any::<u8>()],
                0..100,
            ),
        ) {
            let mut file = format!("{KEY_FILE_CODEC}\n{encoding}\n").into_bytes();
            file.extend_from_slice(&body);
            let _ = PreSharedKey::from_key_file(&file);
        }
    }
}
