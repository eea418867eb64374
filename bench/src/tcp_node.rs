//! Raw TCP with perf's framing (a big-endian u64 request, the upload, a
//! half-close, then the download): the physical reference. No security,
//! no muxer; "streams" are separate connections.

use crate::proc_stat::own_cpu_ticks;
use crate::scenario::{split, Scenario};
use crate::wire::{perf, serve_perf};
use crate::BenchError;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Instant;
use tokio::net::{TcpListener, TcpStream};

/// Starts a listener on `127.0.0.1`; returns the address as a multiaddr
/// (`/ip4/127.0.0.1/tcp/P`).
pub async fn listen() -> Result<String, BenchError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = socket.set_nodelay(true);
                let _ = serve_perf(socket).await;
            });
        }
    });
    Ok(format!("/ip4/127.0.0.1/tcp/{port}"))
}

/// The socket address in a `/ip4/A/tcp/P` multiaddr string.
pub fn socket_addr(target: &str) -> Result<SocketAddr, BenchError> {
    let parts: Vec<&str> = target.split('/').collect();
    match parts.as_slice() {
        ["", "ip4", ip, "tcp", port, ..] => Ok(format!("{ip}:{port}").parse()?),
        _ => Err(format!("{target} is not /ip4/A/tcp/P").into()),
    }
}

async fn connect(addr: SocketAddr) -> Result<TcpStream, BenchError> {
    let socket = TcpStream::connect(addr).await?;
    socket.set_nodelay(true)?;
    Ok(socket)
}

/// Runs `scenario` ([`Scenario::Perf`] or [`Scenario::FirstByte`]).
pub async fn run(target: &str, scenario: &Scenario) -> Result<Value, BenchError> {
    let addr = socket_addr(target)?;
    match *scenario {
        Scenario::Perf { upload, download, streams } => {
            let cpu_before = own_cpu_ticks().unwrap_or(0);
            let started = Instant::now();
            let runs = split(upload, streams)
                .into_iter()
                .zip(split(download, streams))
                .map(|(up, down)| async move { perf(connect(addr).await?, up, down).await });
            for result in futures::future::join_all(runs).await {
                result?;
            }
            let secs = started.elapsed().as_secs_f64();
            let cpu = own_cpu_ticks().unwrap_or(0).saturating_sub(cpu_before);
            Ok(json!({ "secs": secs, "bytes": upload + download, "cpu_ticks": cpu }))
        }
        Scenario::FirstByte => {
            let started = Instant::now();
            perf(connect(addr).await?, 1, 1).await?;
            Ok(json!({ "secs": started.elapsed().as_secs_f64() }))
        }
        _ => Err("the tcp reference runs perf and first-byte only".into()),
    }
}
