//! [`RustYamux`]: rust-yamux 0.14, the muxer inside rust-libp2p 0.57, over
//! a bare socket, so peerswarm's yamux can be tested without Noise and
//! multistream-select in the way.

use std::io;

use futures::future::poll_fn;
use std::task::Poll;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, Mutex};
use tokio::task::JoinHandle;
use tokio_util::compat::{Compat, FuturesAsyncReadCompatExt, TokioAsyncReadCompatExt};

pub use yamux::Mode;

/// A rust-yamux stream adapted to tokio's `AsyncRead`/`AsyncWrite`.
pub type RustYamuxStream = Compat<yamux::Stream>;

type OpenReply = oneshot::Sender<Result<yamux::Stream, yamux::ConnectionError>>;

/// A rust-yamux connection driven by a background task that stops when the
/// handle is dropped (which drops the connection without a go-away).
#[derive(Debug)]
pub struct RustYamux {
    open: mpsc::Sender<OpenReply>,
    inbound: Mutex<mpsc::UnboundedReceiver<yamux::Stream>>,
    driver: JoinHandle<()>,
}

impl RustYamux {
    /// Runs rust-yamux with its default config over `socket`.
    pub fn new(socket: TcpStream, mode: Mode) -> Self {
        let conn = yamux::Connection::new(socket.compat(), yamux::Config::default(), mode);
        let (open, open_rx) = mpsc::channel(16);
        // Unbounded, but the peer can have at most rust-yamux's
        // `max_num_streams` (512) streams open.
        let (inbound_tx, inbound) = mpsc::unbounded_channel();
        let driver = tokio::spawn(drive(conn, open_rx, inbound_tx));
        Self { open, inbound: Mutex::new(inbound), driver }
    }

    /// Opens a stream (rust-yamux sends the SYN with the first data).
    pub async fn open_stream(&self) -> io::Result<RustYamuxStream> {
        let (reply, rx) = oneshot::channel();
        let gone = || io::Error::new(io::ErrorKind::ConnectionAborted, "rust-yamux driver stopped");
        self.open.send(reply).await.map_err(|_| gone())?;
        let stream = rx.await.map_err(|_| gone())?.map_err(io::Error::other)?;
        Ok(stream.compat())
    }

    /// The next stream the peer opened; `None` once the connection ended.
    pub async fn accept_stream(&self) -> Option<RustYamuxStream> {
        self.inbound.lock().await.recv().await.map(FuturesAsyncReadCompatExt::compat)
    }
}

impl Drop for RustYamux {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// Polls the connection (which is what moves its I/O) until it ends,
/// answering open requests and handing out inbound streams.
async fn drive(
    mut conn: yamux::Connection<Compat<TcpStream>>,
    mut open_rx: mpsc::Receiver<OpenReply>,
    inbound: mpsc::UnboundedSender<yamux::Stream>,
) {
    let mut opening: Option<OpenReply> = None;
    poll_fn(|cx| loop {
        let mut progress = false;
        if opening.is_none() {
            if let Poll::Ready(Some(reply)) = open_rx.poll_recv(cx) {
                opening = Some(reply);
            }
        }
        if opening.is_some() {
            if let Poll::Ready(result) = conn.poll_new_outbound(cx) {
                let reply = opening.take().expect("checked just above");
                let _ = reply.send(result);
                progress = true;
            }
        }
        match conn.poll_next_inbound(cx) {
            Poll::Ready(Some(Ok(stream))) => {
                let _ = inbound.send(stream);
                progress = true;
            }
            Poll::Ready(Some(Err(error))) => {
                tracing::debug!(%error, "rust-yamux connection failed");
                return Poll::Ready(());
            }
            Poll::Ready(None) => return Poll::Ready(()),
            Poll::Pending => {}
        }
        if !progress {
            return Poll::Pending;
        }
    })
    .await;
}
