//! Perf (`/perf/1.0.0`): the server side, and a client that measures.

use super::{Host, HostError};
use crate::stream::Stream;
use peerswarm_proto::identity::PeerId;
use peerswarm_proto::perf::{decode_request, encode_request, PROTOCOL};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CHUNK: usize = 64 * 1024;

pub(super) fn install(host: &Host) {
    let max = host.config().perf_max_bytes;
    host.set_stream_handler(PROTOCOL, move |stream| serve(stream, max));
}

async fn serve(mut stream: Stream, max: u64) {
    let mut header = [0u8; 8];
    if stream.read_exact(&mut header).await.is_err() {
        return;
    }
    let download = decode_request(header);
    if download > max {
        stream.reset();
        return;
    }
    // The upload is only counted: take it without copying.
    loop {
        match stream.read_chunk(CHUNK).await {
            Ok(None) => break,
            Ok(Some(_)) => {}
            Err(_) => return,
        }
    }
    if send_zeros(&mut stream, download, None).await.is_ok() {
        let _ = stream.close().await;
    }
}

async fn send_zeros(
    stream: &mut Stream,
    mut remaining: u64,
    progress: Option<&AtomicU64>,
) -> std::io::Result<()> {
    let buf = vec![0u8; CHUNK];
    while remaining > 0 {
        let n = remaining.min(CHUNK as u64) as usize;
        stream.write_all(&buf[..n]).await?;
        remaining -= n as u64;
        if let Some(p) = progress {
            p.fetch_add(n as u64, Ordering::Relaxed);
        }
    }
    Ok(())
}

/// Byte counters a perf run updates as it goes (for progress display).
#[derive(Debug, Default)]
pub struct PerfProgress {
    /// Bytes sent so far.
    pub sent: AtomicU64,
    /// Bytes received so far.
    pub received: AtomicU64,
}

/// The outcome of a perf run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PerfResult {
    /// Bytes uploaded.
    pub upload_bytes: u64,
    /// Time from the first byte written to the write side closed.
    pub upload_time: Duration,
    /// Bytes downloaded.
    pub download_bytes: u64,
    /// Time from the write side closed to EOF.
    pub download_time: Duration,
    /// The whole run, stream open included.
    pub total_time: Duration,
}

impl Host {
    /// Runs perf against `peer`: uploads `upload` bytes, then downloads
    /// `download` bytes.
    pub async fn perf(
        &self,
        peer: &PeerId,
        upload: u64,
        download: u64,
        progress: Option<&PerfProgress>,
    ) -> Result<PerfResult, HostError> {
        let started = Instant::now();
        let mut stream = self.new_stream(peer, &[PROTOCOL]).await?;
        stream.write_all(&encode_request(download)).await?;
        let upload_started = Instant::now();
        send_zeros(&mut stream, upload, progress.map(|p| &p.sent)).await?;
        stream.close_write().await?;
        let upload_time = upload_started.elapsed();
        let download_started = Instant::now();
        let mut received = 0u64;
        while let Some(chunk) = stream.read_chunk(CHUNK).await? {
            let n = chunk.len();
            received += n as u64;
            if let Some(p) = progress {
                p.received.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
        if received != download {
            return Err(HostError::Protocol(format!("perf: asked for {download} bytes, got {received}")));
        }
        let _ = stream.close().await;
        Ok(PerfResult {
            upload_bytes: upload,
            upload_time,
            download_bytes: received,
            download_time: download_started.elapsed(),
            total_time: started.elapsed(),
        })
    }
}
