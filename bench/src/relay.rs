//! A loopback relay that turns loopback into a long, fat link: each
//! direction is delayed by half the round-trip time and paced to a rate
//! cap, with a bottleneck buffer of two bandwidth-delay products.
//!
//! The relay terminates TCP on both sides, so kernel windows never limit a
//! flow (as on a link whose hosts are tuned for its BDP, like the test-plans
//! perf machines); what limits a flow is the relay's buffer and, for the
//! libp2p stacks, their muxer's flow-control windows, whose updates cross
//! the delayed link. The TCP handshake is emulated: bytes from the dialer
//! count as sent no earlier than one RTT after it connected, and the relay
//! connects to the target only after 1.5 RTT, as the target would accept.

use crate::{BenchError, CHUNK};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;

/// The emulated link.
#[derive(Debug, Clone, Copy)]
pub struct Link {
    /// Round-trip time added by the relay.
    pub rtt: Duration,
    /// Rate cap of each direction, in bits per second.
    pub rate_bps: f64,
}

impl Link {
    /// Bytes the bottleneck may buffer per direction: two BDPs (the pipe
    /// plus one BDP of queue), at least 1 MiB.
    pub fn buffer_bytes(&self) -> usize {
        let bdp = self.rate_bps / 8.0 * self.rtt.as_secs_f64();
        ((2.0 * bdp) as usize).max(1 << 20)
    }
}

/// Listens on `127.0.0.1:0` and relays every connection to `target` over
/// `link`; returns the port.
pub async fn start(target: SocketAddr, link: Link) -> Result<u16, BenchError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            tokio::spawn(relay(client, target, link));
        }
    });
    Ok(port)
}

/// One chunk in flight: when it entered the link, and its bytes (`None`
/// for the sender's half-close).
type Chunk = (Instant, Option<Vec<u8>>);

async fn relay(client: TcpStream, target: SocketAddr, link: Link) {
    let connected = Instant::now();
    let _ = client.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let budget = link.buffer_bytes();
    let upstream = Arc::new(Semaphore::new(budget));
    let (up_tx, up_rx) = mpsc::unbounded_channel();
    // The dialer's first flight leaves after its SYN/SYN-ACK round trip.
    tokio::spawn(pump_in(client_read, up_tx, upstream.clone(), connected + link.rtt));
    tokio::time::sleep_until(connected + link.rtt * 3 / 2).await;
    let Ok(server) = TcpStream::connect(target).await else { return };
    let _ = server.set_nodelay(true);
    let (server_read, server_write) = server.into_split();
    let downstream = Arc::new(Semaphore::new(budget));
    let (down_tx, down_rx) = mpsc::unbounded_channel();
    tokio::spawn(pump_out(server_write, up_rx, upstream, link));
    tokio::spawn(pump_in(server_read, down_tx, downstream.clone(), Instant::now()));
    tokio::spawn(pump_out(client_write, down_rx, downstream, link));
}

/// Reads chunks into the link; stalls while the bottleneck buffer is full.
async fn pump_in(
    mut from: OwnedReadHalf,
    to: mpsc::UnboundedSender<Chunk>,
    budget: Arc<Semaphore>,
    not_before: Instant,
) {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => {
                let _ = to.send((Instant::now().max(not_before), None));
                return;
            }
            Ok(n) => n,
        };
        // n ≤ 64 KiB fits u32; the semaphore is never closed.
        let Ok(permit) = budget.acquire_many(n as u32).await else { return };
        permit.forget();
        if to.send((Instant::now().max(not_before), Some(buf[..n].to_vec()))).is_err() {
            return;
        }
    }
}

/// Delivers chunks one-way delay after they entered, no faster than the
/// rate cap; frees their buffer space once written.
async fn pump_out(
    mut to: OwnedWriteHalf,
    mut from: mpsc::UnboundedReceiver<Chunk>,
    budget: Arc<Semaphore>,
    link: Link,
) {
    let one_way = link.rtt / 2;
    let mut link_free = Instant::now();
    while let Some((entered, bytes)) = from.recv().await {
        let due = (entered + one_way).max(link_free);
        // Timers tick in milliseconds: sleep only when well ahead, and
        // let the virtual clock keep the average rate exact.
        if due > Instant::now() + Duration::from_millis(1) {
            tokio::time::sleep_until(due).await;
        }
        let Some(bytes) = bytes else {
            let _ = to.shutdown().await;
            return;
        };
        link_free = due + Duration::from_secs_f64(bytes.len() as f64 * 8.0 / link.rate_bps);
        if to.write_all(&bytes).await.is_err() {
            return;
        }
        budget.add_permits(bytes.len());
    }
}
