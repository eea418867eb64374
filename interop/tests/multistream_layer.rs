//! peerswarm's multistream-select against rust-libp2p's (`multistream-select`
//! 0.14) over an in-memory pipe: optimistic and round-trip proposals,
//! fallback after `na`, data pipelined behind the proposal, and failure
//! when nothing is in common.

use std::time::Duration;

use multistream_select::{dialer_select_proto, listener_select_proto, Version};
use peerswarm::multistream::{dialer_select, listener_select, NegotiationError};
use peerswarm_interop::within;
use tokio::io::{duplex, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio_util::compat::{FuturesAsyncReadCompatExt, TokioAsyncReadCompatExt};

const STEP: Duration = Duration::from_secs(10);
const ECHO: &str = "/echo/1.0.0";
const NOPE: &str = "/nope/1.0.0";

fn pipe() -> (DuplexStream, DuplexStream) {
    duplex(64 * 1024)
}

/// After negotiation: the dialer's side writes first (so an optimistic
/// proposal goes out), then both read the other's message.
async fn exchange<D, L>(mut dialer: D, mut listener: L)
where
    D: AsyncRead + AsyncWrite + Unpin,
    L: AsyncRead + AsyncWrite + Unpin,
{
    let dialer_side = async {
        dialer.write_all(b"from the dialer").await.expect("dialer writes");
        dialer.flush().await.expect("dialer flushes");
        let mut reply = [0; 17];
        dialer.read_exact(&mut reply).await.expect("dialer reads");
        assert_eq!(&reply, b"from the listener");
    };
    let listener_side = async {
        let mut request = [0; 15];
        listener.read_exact(&mut request).await.expect("listener reads");
        assert_eq!(&request, b"from the dialer");
        listener.write_all(b"from the listener").await.expect("listener writes");
        listener.flush().await.expect("listener flushes");
    };
    within(STEP, "exchange", async { tokio::join!(dialer_side, listener_side) }).await;
}

#[tokio::test]
async fn peerswarm_optimistic_dialer() {
    let (a, b) = pipe();
    // Optimistic: returns at once, without I/O; the proposal rides on the
    // first write.
    let (protocol, dialer) = dialer_select(a, [ECHO], true).await.expect("optimistic dialer");
    assert_eq!(protocol, ECHO);
    let listen = async {
        let (protocol, io) = listener_select_proto(b.compat(), [NOPE, ECHO]).await.expect("rust listener");
        assert_eq!(protocol, ECHO);
        io.compat()
    };
    // rust's listener completes once it has read the proposal, which the
    // exchange's first write carries; so negotiate and exchange together.
    let dialer_side = async move {
        let mut dialer = dialer;
        dialer.write_all(b"from the dialer").await.expect("dialer writes");
        dialer.flush().await.expect("dialer flushes");
        let mut reply = [0; 17];
        dialer.read_exact(&mut reply).await.expect("dialer reads the confirmation and the reply");
        assert_eq!(&reply, b"from the listener");
    };
    let listener_side = async move {
        let mut listener = listen.await;
        let mut request = [0; 15];
        listener.read_exact(&mut request).await.expect("listener reads");
        assert_eq!(&request, b"from the dialer");
        listener.write_all(b"from the listener").await.expect("listener writes");
        listener.flush().await.expect("listener flushes");
    };
    within(STEP, "negotiate and exchange", async { tokio::join!(dialer_side, listener_side) }).await;
}

#[tokio::test]
async fn peerswarm_dialer_falls_back_after_na() {
    let (a, b) = pipe();
    let (dialed, listened) = within(STEP, "negotiate", async {
        tokio::join!(dialer_select(a, [NOPE, ECHO], false), listener_select_proto(b.compat(), [ECHO]))
    })
    .await;
    let (protocol, dialer) = dialed.expect("peerswarm dialer");
    let (rust_protocol, listener) = listened.expect("rust listener");
    assert_eq!(protocol, ECHO);
    assert_eq!(rust_protocol, ECHO);
    exchange(dialer, listener.compat()).await;
}

/// rust-libp2p dials with `proposals`; peerswarm supports only [`ECHO`].
///
/// The dialer writes right after its select returns: with `V1Lazy`, rust
/// returns without waiting (or even flushing) once it proposes its last
/// protocol, so the proposal and the data go out together and peerswarm
/// must replay the data after its confirmation.
async fn rust_dialer(version: Version, proposals: &'static [&'static str]) {
    let (a, b) = pipe();
    let (dialed, listened) = within(STEP, "negotiate", async {
        tokio::join!(
            async {
                let (protocol, io) = dialer_select_proto(a.compat(), proposals.iter().copied(), version)
                    .await
                    .expect("rust dialer");
                let mut io = io.compat();
                io.write_all(b"from the dialer").await.expect("rust dialer writes");
                io.flush().await.expect("rust dialer flushes");
                (protocol, io)
            },
            listener_select(b, |p| p == ECHO)
        )
    })
    .await;
    let (rust_protocol, mut dialer) = dialed;
    assert_eq!(rust_protocol, ECHO);
    let (protocol, mut listener) = listened.expect("peerswarm listener");
    assert_eq!(protocol, ECHO);
    let mut request = [0; 15];
    within(STEP, "peerswarm reads", listener.read_exact(&mut request)).await.expect("read");
    assert_eq!(&request, b"from the dialer");
    listener.write_all(b"from the listener").await.expect("write");
    listener.flush().await.expect("flush");
    let mut reply = [0; 17];
    within(STEP, "rust reads", dialer.read_exact(&mut reply)).await.expect("read");
    assert_eq!(&reply, b"from the listener");
}

#[tokio::test]
async fn rust_v1_dialer() {
    rust_dialer(Version::V1, &[ECHO]).await;
}

#[tokio::test]
async fn rust_v1_dialer_falls_back_after_na() {
    rust_dialer(Version::V1, &[NOPE, ECHO]).await;
}

#[tokio::test]
async fn rust_v1_lazy_dialer() {
    rust_dialer(Version::V1Lazy, &[ECHO]).await;
}

#[tokio::test]
async fn rust_v1_lazy_dialer_falls_back_after_na() {
    rust_dialer(Version::V1Lazy, &[NOPE, ECHO]).await;
}

#[tokio::test]
async fn nothing_in_common_peerswarm_dials() {
    let (a, b) = pipe();
    let (dialed, listened) = within(STEP, "negotiate", async {
        tokio::join!(
            async {
                // Dropping the pipe on failure lets the rust listener see EOF.
                dialer_select(a, [NOPE], false).await.map(|(p, _)| p)
            },
            listener_select_proto(b.compat(), [ECHO])
        )
    })
    .await;
    assert!(matches!(dialed, Err(NegotiationError::Failed)), "peerswarm dialer: {dialed:?}");
    assert!(listened.is_err(), "rust listener should fail");
}

#[tokio::test]
async fn nothing_in_common_rust_dials() {
    let (a, b) = pipe();
    let (dialed, listened) = within(STEP, "negotiate", async {
        tokio::join!(
            async { dialer_select_proto(a.compat(), [NOPE], Version::V1).await.map(|(p, _)| p) },
            listener_select(b, |p| p == ECHO)
        )
    })
    .await;
    assert!(matches!(dialed, Err(multistream_select::NegotiationError::Failed)), "rust dialer: {dialed:?}");
    assert!(listened.is_err(), "peerswarm listener should fail");
}
