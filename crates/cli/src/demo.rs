//! The demo: two nodes in one process, go-libp2p's "Hello Friend!" example,
//! a ping, and a short throughput run.

use crate::output::Output;
use crate::Failure;
use peerswarm::host::{Host, HostConfig};
use peerswarm::identity::Keypair;
use peerswarm::swarm::Swarm;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const HELLO: &str = "/hello/1.0.0";
const PERF_BYTES: u64 = 256 << 20;

pub(crate) async fn run(out: &Output) -> Result<(), Failure> {
    let a = Host::new(Swarm::new(Keypair::generate_ed25519()), HostConfig::default().with_perf(true));
    let addr = a.swarm().add_listen_addr(&"/ip4/127.0.0.1/tcp/0".parse()?).await?;
    a.set_stream_handler(HELLO, |mut stream| async move {
        let _ = stream.write_all(b"Hello Friend!").await;
        let _ = stream.close().await;
    });
    out.step(&format!("node A {} listening on {addr}", a.local_peer()));

    let b = Host::new(Swarm::new(Keypair::generate_ed25519()), HostConfig::default());
    let started = std::time::Instant::now();
    b.connect(&a.local_peer(), vec![addr.clone()]).await?;
    out.step(&format!(
        "node B {} connected to A in {:.1} ms (TCP + Noise + yamux)",
        b.local_peer(),
        started.elapsed().as_secs_f64() * 1e3
    ));

    let mut stream = b.new_stream(&a.local_peer(), &[HELLO]).await?;
    let mut greeting = String::new();
    stream.read_to_string(&mut greeting).await?;
    out.step(&format!("B opened {HELLO}; A said: {greeting}"));

    let rtt = b.ping(&a.local_peer()).await?;
    out.step(&format!("B pinged A: {:.3} ms", rtt.as_secs_f64() * 1e3));

    let result = b.perf(&a.local_peer(), PERF_BYTES, PERF_BYTES, None).await?;
    let gbit = |bytes: u64, t: std::time::Duration| bytes as f64 * 8.0 / t.as_secs_f64() / 1e9;
    out.step(&format!(
        "perf: uploaded {} MiB at {:.2} Gbit/s, downloaded {} MiB at {:.2} Gbit/s",
        result.upload_bytes >> 20,
        gbit(result.upload_bytes, result.upload_time),
        result.download_bytes >> 20,
        gbit(result.download_bytes, result.download_time)
    ));
    b.close().await;
    a.close().await;
    Ok(())
}
