//! Ping: echo 32-byte payloads; measure round trips.

use super::{Host, HostError};
use crate::stream::Stream;
use peerswarm_proto::identity::PeerId;
use peerswarm_proto::ping::{PAYLOAD_LEN, PROTOCOL};
use rand::RngCore;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub(super) fn install(host: &Host) {
    host.set_stream_handler(PROTOCOL, serve);
}

/// Echoes payloads until the dialer closes its side.
async fn serve(mut stream: Stream) {
    let mut payload = [0u8; PAYLOAD_LEN];
    while stream.read_exact(&mut payload).await.is_ok() {
        if stream.write_all(&payload).await.is_err() || stream.flush().await.is_err() {
            return;
        }
    }
    let _ = stream.close().await;
}

/// An open ping stream: repeated pings reuse it.
#[derive(Debug)]
pub struct Pinger {
    stream: Stream,
}

impl Pinger {
    /// Sends one random payload and waits for its echo.
    pub async fn ping(&mut self) -> Result<Duration, HostError> {
        let mut payload = [0u8; PAYLOAD_LEN];
        rand::thread_rng().fill_bytes(&mut payload);
        let started = Instant::now();
        self.stream.write_all(&payload).await?;
        self.stream.flush().await?;
        let mut echoed = [0u8; PAYLOAD_LEN];
        self.stream.read_exact(&mut echoed).await?;
        let rtt = started.elapsed();
        if echoed != payload {
            self.stream.reset();
            return Err(HostError::Protocol("ping payload echoed wrongly".into()));
        }
        Ok(rtt)
    }

    /// Closes the stream.
    pub async fn close(mut self) {
        let _ = self.stream.close().await;
    }
}

impl Host {
    /// Opens a ping stream to `peer` for repeated pings.
    pub async fn pinger(&self, peer: &PeerId) -> Result<Pinger, HostError> {
        Ok(Pinger { stream: self.new_stream(peer, &[PROTOCOL]).await? })
    }
}

pub(super) async fn ping(host: &Host, peer: &PeerId) -> Result<Duration, HostError> {
    let mut pinger = host.pinger(peer).await?;
    let rtt = pinger.ping().await?;
    pinger.close().await;
    Ok(rtt)
}
