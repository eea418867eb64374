//! The three protocols over any tokio byte stream, for the stacks that
//! have no built-in server or client (raw TCP, rust-libp2p). Every read and
//! write is a [`CHUNK`] (64 KiB) block.

use crate::scenario::PING_LEN;
use crate::{BenchError, CHUNK};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Serves one perf exchange on `io`.
pub async fn serve_perf<S: AsyncRead + AsyncWrite + Unpin>(mut io: S) -> std::io::Result<()> {
    let mut header = [0u8; 8];
    io.read_exact(&mut header).await?;
    let mut buf = vec![0u8; CHUNK];
    while io.read(&mut buf).await? != 0 {}
    write_zeros(&mut io, u64::from_be_bytes(header)).await?;
    io.shutdown().await
}

/// Writes `n` zero bytes in [`CHUNK`] blocks.
pub async fn write_zeros<S: AsyncWrite + Unpin>(io: &mut S, mut n: u64) -> std::io::Result<()> {
    let buf = vec![0u8; CHUNK];
    while n > 0 {
        let len = n.min(CHUNK as u64) as usize;
        io.write_all(&buf[..len]).await?;
        n -= len as u64;
    }
    Ok(())
}

/// Runs the client side of one perf exchange on `io`.
pub async fn perf<S: AsyncRead + AsyncWrite + Unpin>(
    mut io: S,
    upload: u64,
    download: u64,
) -> Result<(), BenchError> {
    io.write_all(&download.to_be_bytes()).await?;
    write_zeros(&mut io, upload).await?;
    io.shutdown().await?;
    let mut buf = vec![0u8; CHUNK];
    let mut received = 0u64;
    loop {
        let n = io.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        received += n as u64;
    }
    if received != download {
        return Err(format!("perf: asked for {download} bytes, got {received}").into());
    }
    Ok(())
}

/// Echoes everything until EOF, then closes.
pub async fn serve_echo<S: AsyncRead + AsyncWrite + Unpin>(mut io: S) -> std::io::Result<()> {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = io.read(&mut buf).await?;
        if n == 0 {
            return io.shutdown().await;
        }
        io.write_all(&buf[..n]).await?;
        io.flush().await?;
    }
}

/// Echoes 32-byte ping payloads until EOF, then closes.
pub async fn serve_ping<S: AsyncRead + AsyncWrite + Unpin>(mut io: S) -> std::io::Result<()> {
    let mut payload = [0u8; PING_LEN];
    while io.read_exact(&mut payload).await.is_ok() {
        io.write_all(&payload).await?;
        io.flush().await?;
    }
    io.shutdown().await
}

/// Sends one ping payload on `io` and waits for its echo.
pub async fn ping<S: AsyncRead + AsyncWrite + Unpin>(io: &mut S, seq: u64) -> Result<(), BenchError> {
    let mut payload = [0u8; PING_LEN];
    payload[..8].copy_from_slice(&seq.to_be_bytes());
    io.write_all(&payload).await?;
    io.flush().await?;
    let mut echoed = [0u8; PING_LEN];
    io.read_exact(&mut echoed).await?;
    if echoed != payload {
        return Err("ping payload echoed wrongly".into());
    }
    Ok(())
}

/// Sends one byte on `io`, waits for its echo, and closes.
pub async fn echo_one_byte<S: AsyncRead + AsyncWrite + Unpin>(mut io: S) -> Result<(), BenchError> {
    io.write_all(&[7]).await?;
    io.flush().await?;
    let mut byte = [0u8; 1];
    io.read_exact(&mut byte).await?;
    io.shutdown().await?;
    Ok(())
}
