//! Perf (`/perf/1.0.0`): a throughput measurement protocol.
//!
//! > The client sends the number of bytes it wants to receive as a
//! > big-endian u64, then the bytes it wants to send, then closes its write
//! > side. The server reads to EOF, then sends the requested number of bytes
//! > and closes. (libp2p/specs perf/perf.md)
//!
//! It amplifies work for an unauthenticated requester (8 bytes buy up to
//! 2^64 bytes of output), so servers enable it explicitly and may cap the
//! download size.

/// The perf protocol ID.
pub const PROTOCOL: &str = "/perf/1.0.0";

/// Encodes the request header: the download size.
pub fn encode_request(download_bytes: u64) -> [u8; 8] {
    download_bytes.to_be_bytes()
}

/// Decodes the request header.
pub fn decode_request(header: [u8; 8]) -> u64 {
    u64::from_be_bytes(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_is_a_big_endian_u64() {
        assert_eq!(encode_request(0x0102_0304_0506_0708), [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(decode_request([0, 0, 0, 0, 0, 0, 4, 0]), 1024);
    }
}
