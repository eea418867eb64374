//! `/perf/1.0.0` for a [`RustNode`](crate::RustNode): the server as a
//! rust-libp2p behaviour (a task per inbound stream, like the echo
//! service), and the client half as a function over any stream.
//!
//! The exchange (libp2p/specs `perf/perf.md`, paraphrased): the client
//! sends the number of bytes it wants back as a big-endian `u64`, then the
//! bytes it uploads, and closes its write side; the server reads to EOF,
//! sends the requested bytes and closes.

use std::io;

use futures::FutureExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The perf protocol ID.
pub const PERF_PROTOCOL: &str = "/perf/1.0.0";

/// Chunk size for sending and discarding perf bytes.
const CHUNK: usize = 64 * 1024;

/// Writes `count` zero bytes.
async fn send_zeros<W: AsyncWrite + Unpin>(writer: &mut W, mut count: u64) -> io::Result<()> {
    let chunk = [0u8; CHUNK];
    while count > 0 {
        let n = count.min(CHUNK as u64) as usize;
        writer.write_all(&chunk[..n]).await?;
        count -= n as u64;
    }
    Ok(())
}

/// Reads to EOF, discarding; returns the number of bytes read.
async fn drain<R: AsyncRead + Unpin>(reader: &mut R) -> io::Result<u64> {
    tokio::io::copy(reader, &mut tokio::io::sink()).await
}

/// The server side of one perf stream: reads the requested size and the
/// upload (to EOF), sends the requested bytes and closes. Returns
/// `(uploaded, downloaded)` as seen by the client.
pub async fn perf_server<S>(mut stream: S) -> io::Result<(u64, u64)>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let requested = stream.read_u64().await?;
    let uploaded = drain(&mut stream).await?;
    send_zeros(&mut stream, requested).await?;
    stream.shutdown().await?;
    Ok((uploaded, requested))
}

/// The client side of one perf stream: asks for `download` bytes, uploads
/// `upload` bytes and closes its write side, then reads the answer to EOF.
/// Returns the number of bytes received.
pub async fn perf_client<S>(mut stream: S, upload: u64, download: u64) -> io::Result<u64>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    stream.write_u64(download).await?;
    send_zeros(&mut stream, upload).await?;
    stream.shutdown().await?;
    drain(&mut stream).await
}

/// Serves `/perf/1.0.0` on every connection.
pub(crate) fn behaviour() -> crate::stream_service::Behaviour {
    crate::stream_service::Behaviour::new(PERF_PROTOCOL, |stream| {
        perf_server(stream).map(|r| r.map(drop)).boxed()
    })
}
