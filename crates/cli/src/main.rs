//! The `peerswarm` command-line node.
//!
//! With no arguments it runs the demo: two nodes in one process, connected
//! over loopback TCP with Noise and yamux, exchanging a greeting and then a
//! short bulk transfer.

use peerswarm::identity::Keypair;
use peerswarm::{Endpoint, EndpointConfig};
use std::process::ExitCode;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const HELLO: &str = "/hello/1.0.0";
const BULK: &str = "/bulk/1.0.0";
const BULK_BYTES: u64 = 256 * 1024 * 1024;

#[tokio::main]
async fn main() -> ExitCode {
    match demo().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("peerswarm: demo failed: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    let server = Endpoint::new(EndpointConfig::new(Keypair::generate_ed25519()));
    let mut listener = server.listen(&"/ip4/127.0.0.1/tcp/0".parse()?).await?;
    let addr = listener.local_addr().clone();
    println!("node A {} listening on {addr}", server.local_peer_id());

    // Node A answers every greeting and swallows bulk streams.
    tokio::spawn(async move {
        while let Some(conn) = listener.accept().await {
            tokio::spawn(async move {
                while let Ok(mut stream) = conn.accept_stream(&[HELLO, BULK]).await {
                    tokio::spawn(async move {
                        if stream.protocol() == Some(HELLO) {
                            let _ = stream.write_all(b"Hello Friend!").await;
                            let _ = stream.close_write().await;
                        } else {
                            let _ = tokio::io::copy(&mut stream, &mut tokio::io::sink()).await;
                            let _ = stream.close_write().await;
                        }
                    });
                }
            });
        }
    });

    let client = Endpoint::new(EndpointConfig::new(Keypair::generate_ed25519()));
    let started = Instant::now();
    let conn = client.dial(&addr, Some(server.local_peer_id())).await?;
    println!("node B {} connected in {:.1?} (noise + yamux)", client.local_peer_id(), started.elapsed());

    let mut stream = conn.open_stream(&[HELLO]).await?;
    stream.close_write().await?;
    let mut greeting = String::new();
    stream.read_to_string(&mut greeting).await?;
    println!("B opened {HELLO} and read: {greeting}");

    let mut stream = conn.open_stream(&[BULK]).await?;
    let chunk = vec![0x5a; 64 * 1024];
    let started = Instant::now();
    let mut sent = 0;
    while sent < BULK_BYTES {
        stream.write_all(&chunk).await?;
        sent += chunk.len() as u64;
    }
    stream.close_write().await?;
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).await?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "B sent {} MiB in {secs:.2} s: {:.2} Gbit/s",
        BULK_BYTES >> 20,
        (BULK_BYTES * 8) as f64 / secs / 1e9
    );
    conn.close().await;
    Ok(())
}
