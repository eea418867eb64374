//! `--metrics HOST:PORT`: Prometheus text exposition at `/metrics`, served
//! by a deliberately tiny HTTP/1.1 responder (one request per connection,
//! bounded request size, short timeouts).

use crate::Failure;
use peerswarm::host::Host;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MAX_REQUEST: usize = 8 * 1024;

/// Renders the current metrics of `host`.
fn render(host: &Host) -> String {
    let mut registry = Registry::with_prefix("peerswarm");
    let swarm = host.swarm();
    let gauge = |registry: &mut Registry, name: &str, help: &str, value: i64| {
        let g: Gauge = Gauge::default();
        g.set(value);
        registry.register(name, help, g);
    };
    gauge(&mut registry, "connections", "Open connections", swarm.conns().len() as i64);
    gauge(&mut registry, "peers", "Connected peers", swarm.peers().len() as i64);
    gauge(
        &mut registry,
        "streams",
        "Open streams",
        swarm.conns().iter().map(|c| c.stat().num_streams).sum::<usize>() as i64,
    );
    if let Some(bw) = swarm.bandwidth() {
        let totals = bw.totals();
        let counter = |registry: &mut Registry, name: &str, help: &str, value: u64| {
            let g: Gauge<u64, AtomicU64> = Gauge::default();
            g.set(value);
            registry.register(name, help, g);
        };
        counter(&mut registry, "bytes_received", "Stream bytes received", totals.total_in);
        counter(&mut registry, "bytes_sent", "Stream bytes sent", totals.total_out);
    }
    let mut text = String::new();
    let _ = encode(&mut text, &registry);
    text
}

pub(crate) async fn serve(addr: SocketAddr, host: Host) -> Result<SocketAddr, Failure> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot serve metrics on {addr}: {e}"))?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let host = host.clone();
            tokio::spawn(async move {
                let respond = async {
                    let mut buf = vec![0u8; MAX_REQUEST];
                    let mut len = 0;
                    while !buf[..len].windows(4).any(|w| w == b"\r\n\r\n") && len < MAX_REQUEST {
                        let n = socket.read(&mut buf[len..]).await?;
                        if n == 0 {
                            break;
                        }
                        len += n;
                    }
                    let request = String::from_utf8_lossy(&buf[..len]);
                    let (status, body) = if request.starts_with("GET /metrics ") {
                        ("200 OK", render(&host))
                    } else {
                        ("404 Not Found", "not found\n".to_owned())
                    };
                    let head = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    socket.write_all(head.as_bytes()).await?;
                    socket.write_all(body.as_bytes()).await?;
                    socket.shutdown().await
                };
                let _ = tokio::time::timeout(Duration::from_secs(5), respond).await;
            });
        }
    });
    Ok(bound)
}
