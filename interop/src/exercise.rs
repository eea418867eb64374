//! Stream exercises shared by both stacks: anything tokio `AsyncRead +
//! AsyncWrite` (a peerswarm `Stream`, or a rust-libp2p stream through
//! [`compat`](tokio_util::compat)).

use std::io;

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Size of a `/ipfs/ping/1.0.0` payload.
pub const PING_SIZE: usize = 32;

/// Buffer size of the echo loops.
const ECHO_CHUNK: usize = 64 * 1024;

/// Echoes until EOF, writing each chunk back as soon as it is read (so a
/// peer streaming more than the flow-control window keeps moving), then
/// closes the write half. Returns the number of bytes echoed.
pub async fn echo<S>(mut stream: S) -> io::Result<u64>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf = vec![0; ECHO_CHUNK];
    let mut total = 0;
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        stream.write_all(&buf[..n]).await?;
        total += n as u64;
    }
    stream.shutdown().await?;
    Ok(total)
}

/// Writes `payload` and closes the write half while concurrently reading
/// the peer's answer to EOF; returns what was read.
///
/// Writing and reading at the same time matters: an echoing peer sends the
/// data back as it arrives, and a writer that does not read would stall once
/// both directions' flow-control windows are full.
pub async fn send_and_read_to_end<S>(stream: S, payload: &[u8]) -> io::Result<Vec<u8>>
where
    S: AsyncRead + AsyncWrite,
{
    let (mut reader, mut writer) = tokio::io::split(stream);
    let write = async {
        writer.write_all(payload).await?;
        writer.shutdown().await
    };
    let read = async {
        let mut received = Vec::with_capacity(payload.len());
        reader.read_to_end(&mut received).await?;
        Ok(received)
    };
    let ((), received) = tokio::try_join!(write, read)?;
    Ok(received)
}

/// Like [`send_and_read_to_end`], but closes the write half only once the
/// peer's first bytes have come back, so the FIN never arrives together with
/// data ahead of the peer's protocol confirmation. js-libp2p 3 aborts an
/// inbound stream that receives the FIN of a pipelined request before it
/// has answered the multistream-select proposal (peerswarm, like go-libp2p
/// and rust-libp2p, sends data and FIN without waiting for it).
pub async fn send_and_read_to_end_after_answer<S>(stream: S, payload: &[u8]) -> io::Result<Vec<u8>>
where
    S: AsyncRead + AsyncWrite,
{
    let (mut reader, mut writer) = tokio::io::split(stream);
    let answered = tokio::sync::Notify::new();
    let write = async {
        writer.write_all(payload).await?;
        if !payload.is_empty() {
            answered.notified().await;
        }
        writer.shutdown().await
    };
    let read = async {
        let mut received = Vec::with_capacity(payload.len());
        let mut buf = vec![0; ECHO_CHUNK];
        loop {
            let n = reader.read(&mut buf).await?;
            // `notify_one` keeps the permit if the writer is not waiting yet.
            answered.notify_one();
            if n == 0 {
                return Ok(received);
            }
            received.extend_from_slice(&buf[..n]);
        }
    };
    let ((), received) = tokio::try_join!(write, read)?;
    Ok(received)
}

/// Plays the dialer of `/ipfs/ping/1.0.0` `rounds` times on one stream:
/// writes 32 random bytes, reads 32 back, and fails with `InvalidData` if
/// they differ. Closes the write half at the end.
pub async fn ping_rounds<S>(mut stream: S, rounds: usize) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut rng = rand::thread_rng();
    for round in 0..rounds {
        let mut sent = [0; PING_SIZE];
        rng.fill_bytes(&mut sent);
        stream.write_all(&sent).await?;
        stream.flush().await?;
        let mut received = [0; PING_SIZE];
        stream.read_exact(&mut received).await?;
        if received != sent {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("ping round {round}: sent {sent:02x?}, received {received:02x?}"),
            ));
        }
    }
    stream.shutdown().await
}

/// Plays the listener of `/ipfs/ping/1.0.0`: echoes 32-byte chunks until the
/// dialer closes, then closes. Returns the number of pings answered. EOF in
/// the middle of a chunk is an `UnexpectedEof` error.
pub async fn ping_responder<S>(mut stream: S) -> io::Result<usize>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut pings = 0;
    loop {
        let mut chunk = [0; PING_SIZE];
        let mut filled = 0;
        while filled < PING_SIZE {
            let n = stream.read(&mut chunk[filled..]).await?;
            if n == 0 {
                if filled == 0 {
                    stream.shutdown().await?;
                    return Ok(pings);
                }
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("eof after {filled} bytes of a ping"),
                ));
            }
            filled += n;
        }
        stream.write_all(&chunk).await?;
        stream.flush().await?;
        pings += 1;
    }
}

/// `len` pseudo-random bytes, reproducible from `seed`.
pub fn payload(seed: u64, len: usize) -> Vec<u8> {
    let mut bytes = vec![0; len];
    StdRng::seed_from_u64(seed).fill(&mut bytes[..]);
    bytes
}

/// Asserts `actual == expected`, reporting the first differing offset
/// instead of printing megabytes.
#[track_caller]
pub fn assert_same_bytes(what: &str, expected: &[u8], actual: &[u8]) {
    if let Some(offset) = expected.iter().zip(actual).position(|(a, b)| a != b) {
        let end = (offset + 16).min(expected.len()).min(actual.len());
        panic!(
            "{what}: first difference at byte {offset}: expected {:02x?}, got {:02x?}",
            &expected[offset..end],
            &actual[offset..end],
        );
    }
    assert_eq!(
        expected.len(),
        actual.len(),
        "{what}: lengths differ (the shorter is a prefix of the longer)"
    );
}
