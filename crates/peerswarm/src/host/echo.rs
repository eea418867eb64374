//! Echo (`/echo/1.0.0`): write back every byte read, until EOF, then close.

use super::Host;
use crate::stream::Stream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The echo protocol ID.
pub const PROTOCOL: &str = "/echo/1.0.0";

pub(super) fn install(host: &Host) {
    host.set_stream_handler(PROTOCOL, serve);
}

/// Streams the data back as it arrives (bounded: one buffer), so a client
/// may send more than fits in memory.
async fn serve(mut stream: Stream) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => {
                if stream.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
            Err(_) => return,
        }
    }
    let _ = stream.close().await;
}
