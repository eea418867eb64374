//! Private networks (libp2p/specs `pnet/Private-Networks-PSK-V1.md`): a
//! pre-shared-key layer under everything else on the connection.
//!
//! > On Writing side: `N = randomNonce(24); write(out, N); S20 =
//! > newXSalsa20Stream(SS, N); for data { write(out, data ⊕ S20) }`.
//! > On reading side: `read(in, N); S20 = newXSalsa20Stream(SS, N); for
//! > data = read(in) { process(data ⊕ S20) }`.
//!
//! [`PnetStream`] wraps the raw transport stream before multistream-select
//! negotiates the security protocol:
//!
//! * **No round trip.** Our nonce is queued at construction and leaves with
//!   the first write, so a dialer's nonce, multistream header and first Noise
//!   message share one TCP segment. A read also sends it first, so a
//!   listener (which reads before it writes) never keeps a peer waiting that
//!   wants our nonce before it says anything (rust-libp2p's `libp2p-pnet`
//!   does). Nothing waits for the remote's nonce except reading.
//! * **Bounded.** At most [`WRITE_BUFFER`] bytes of ciphertext wait for the
//!   socket; beyond that `poll_write` returns `Pending`. Reads decrypt in
//!   place in the caller's buffer. The remote nonce is read exactly
//!   (24 bytes, in as many pieces as it arrives), never past it.
//! * **Hostile input.** EOF inside the remote nonce is
//!   [`PnetError::TruncatedNonce`] (`UnexpectedEof`). With a different key
//!   both sides read garbage and the security handshake above fails; the
//!   upgrader then says a key mismatch is the likely cause
//!   ([`UpgradeError::PrivateNetwork`](crate::upgrade::UpgradeError::PrivateNetwork)).
//!   A peer that stalls is bounded by the upgrader's handshake timeout.

use peerswarm_proto::pnet::{PnetCipher, PreSharedKey, NONCE_LEN};
use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The most ciphertext held back while the socket is full, in bytes.
pub(crate) const WRITE_BUFFER: usize = 64 * 1024;

/// A write buffer larger than this is released once it drains after a
/// small write, so an idle connection holds none.
const KEEP_CAPACITY: usize = WRITE_BUFFER / 4;

/// Why the private-network layer failed a read or write. Carried inside the
/// `io::Error` (see [`io::Error::get_ref`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PnetError {
    /// The remote closed the connection before sending its whole nonce: it
    /// is not in the private network, or gave up. The remote's fault.
    #[error("private network: connection closed after {received} of the {NONCE_LEN} nonce bytes")]
    TruncatedNonce {
        /// Nonce bytes received before EOF.
        received: usize,
    },
    /// 2⁷⁰ bytes went one way through one connection.
    #[error("private network keystream exhausted")]
    KeystreamExhausted,
}

impl From<PnetError> for io::Error {
    fn from(e: PnetError) -> Self {
        let kind = match e {
            PnetError::TruncatedNonce { .. } => io::ErrorKind::UnexpectedEof,
            PnetError::KeystreamExhausted => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}

enum ReadState {
    /// Reading the remote's nonce; `filled` bytes of it so far.
    Nonce { psk: PreSharedKey, nonce: [u8; NONCE_LEN], filled: usize },
    /// Decrypting with the remote's keystream.
    Open(PnetCipher),
}

/// A byte stream encrypted with a private network's pre-shared key; see the
/// [module docs](self).
pub(crate) struct PnetStream<S> {
    io: S,
    read: ReadState,
    send: PnetCipher,
    /// Ciphertext not yet written, from `out_pos` on: our nonce first, then
    /// encrypted data. At most [`WRITE_BUFFER`] bytes of data.
    out: Vec<u8>,
    out_pos: usize,
    /// Bytes of our nonce not yet written.
    nonce_unsent: usize,
}

impl<S> PnetStream<S> {
    /// Wraps `io`, choosing a random nonce. Nothing is sent until the first
    /// read, write or flush.
    pub(crate) fn new(io: S, psk: &PreSharedKey) -> Self {
        Self::with_nonce(io, psk, rand::random())
    }

    fn with_nonce(io: S, psk: &PreSharedKey, nonce: [u8; NONCE_LEN]) -> Self {
        Self {
            io,
            read: ReadState::Nonce { psk: psk.clone(), nonce: [0; NONCE_LEN], filled: 0 },
            send: PnetCipher::new(psk, &nonce),
            out: nonce.to_vec(),
            out_pos: 0,
            nonce_unsent: NONCE_LEN,
        }
    }

    fn pending(&self) -> usize {
        self.out.len() - self.out_pos
    }
}

impl<S: AsyncWrite + Unpin> PnetStream<S> {
    /// Writes one chunk of pending ciphertext.
    fn poll_write_some(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.out[self.out_pos..]))?;
        if n == 0 {
            return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
        }
        self.out_pos += n;
        self.nonce_unsent = self.nonce_unsent.saturating_sub(n);
        if self.out_pos == self.out.len() {
            if self.out.capacity() > KEEP_CAPACITY && self.out.len() < KEEP_CAPACITY {
                // A small write drained: likely going idle.
                self.out = Vec::new();
            } else {
                self.out.clear();
            }
            self.out_pos = 0;
        }
        Poll::Ready(Ok(()))
    }

    /// Writes all pending ciphertext.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.pending() > 0 {
            ready!(self.poll_write_some(cx))?;
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for PnetStream<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.nonce_unsent > 0 {
            // Send our nonce before waiting for theirs (see the module docs).
            // If the socket cannot take it now, this task's waker is
            // registered for writing too and the read goes on. (So the
            // stream must not be split between tasks before the nonce is
            // out; the upgrader and the yamux driver each own it whole.) A
            // write error is the write side's to report, at the next write
            // or flush; what the remote sent can still be read.
            let _ = this.poll_drain(cx);
        }
        loop {
            match &mut this.read {
                ReadState::Open(cipher) => {
                    let before = buf.filled().len();
                    ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
                    cipher
                        .apply(&mut buf.filled_mut()[before..])
                        .map_err(|_| PnetError::KeystreamExhausted)?;
                    return Poll::Ready(Ok(()));
                }
                ReadState::Nonce { psk, nonce, filled } => {
                    if buf.remaining() == 0 {
                        return Poll::Ready(Ok(()));
                    }
                    let mut rest = ReadBuf::new(&mut nonce[*filled..]);
                    ready!(Pin::new(&mut this.io).poll_read(cx, &mut rest))?;
                    let n = rest.filled().len();
                    if n == 0 {
                        return Poll::Ready(Err(PnetError::TruncatedNonce { received: *filled }.into()));
                    }
                    *filled += n;
                    if *filled == NONCE_LEN {
                        this.read = ReadState::Open(PnetCipher::new(psk, nonce));
                    }
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for PnetStream<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        // Our nonce sits in front of the data and does not count.
        while this.pending() - this.nonce_unsent >= WRITE_BUFFER {
            ready!(this.poll_write_some(cx))?;
        }
        if this.out_pos > 0 {
            // Left over from a partial write: move it to the front.
            this.out.drain(..this.out_pos);
            this.out_pos = 0;
        }
        let room = WRITE_BUFFER - (this.pending() - this.nonce_unsent);
        let n = data.len().min(room);
        let start = this.out.len();
        this.out.extend_from_slice(&data[..n]);
        this.send.apply(&mut this.out[start..]).map_err(|_| PnetError::KeystreamExhausted)?;
        // Start sending now; what the socket does not take waits for the
        // next write or flush.
        if let Poll::Ready(Err(e)) = this.poll_drain(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

impl<S> fmt::Debug for PnetStream<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PnetStream")
            .field("remote_nonce_received", &matches!(self.read, ReadState::Open(_)))
            .field("nonce_unsent", &self.nonce_unsent)
            .field("unsent", &self.pending())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt, DuplexStream};

    fn psk() -> PreSharedKey {
        PreSharedKey::new([0x42; 32])
    }

    /// What a peer with `psk` and `nonce` sends for `plaintext`.
    fn wire(psk: &PreSharedKey, nonce: [u8; NONCE_LEN], plaintext: &[u8]) -> Vec<u8> {
        let mut body = plaintext.to_vec();
        PnetCipher::new(psk, &nonce).apply(&mut body).unwrap();
        [nonce.as_slice(), &body].concat()
    }

    #[tokio::test]
    async fn wire_format_is_nonce_then_xsalsa20_ciphertext() {
        let (a, mut raw) = duplex(1024);
        let nonce = [9u8; NONCE_LEN];
        let mut pnet = PnetStream::with_nonce(a, &psk(), nonce);
        pnet.write_all(b"/multistream/1.0.0\n").await.unwrap();
        pnet.flush().await.unwrap();
        let mut got = vec![0u8; NONCE_LEN + 19];
        raw.read_exact(&mut got).await.unwrap();
        assert_eq!(got, wire(&psk(), nonce, b"/multistream/1.0.0\n"));
    }

    #[tokio::test]
    async fn nonce_rides_in_the_first_write() {
        /// Records the size of every write that reaches the socket.
        struct Recorder(Vec<usize>);
        impl AsyncWrite for Recorder {
            fn poll_write(
                mut self: Pin<&mut Self>,
                _: &mut Context<'_>,
                b: &[u8],
            ) -> Poll<io::Result<usize>> {
                self.0.push(b.len());
                Poll::Ready(Ok(b.len()))
            }
            fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(Ok(()))
            }
            fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(Ok(()))
            }
        }
        let mut pnet = PnetStream::new(Recorder(Vec::new()), &psk());
        pnet.write_all(&[1; 100]).await.unwrap();
        pnet.write_all(&[2; 10]).await.unwrap();
        assert_eq!(pnet.io.0, [NONCE_LEN + 100, 10]);
    }

    #[tokio::test]
    async fn a_read_sends_our_nonce_first() {
        // rust-libp2p's handshake waits for our nonce before it sends
        // anything; a listener that only reads must still send it.
        let (a, mut raw) = duplex(1024);
        let nonce = [3u8; NONCE_LEN];
        let mut pnet = PnetStream::with_nonce(a, &psk(), nonce);
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 5];
            pnet.read_exact(&mut buf).await.map(|_| buf)
        });
        let mut got = [0u8; NONCE_LEN];
        raw.read_exact(&mut got).await.unwrap();
        assert_eq!(got, nonce);
        raw.write_all(&wire(&psk(), [4; NONCE_LEN], b"hello")).await.unwrap();
        assert_eq!(&reader.await.unwrap().unwrap(), b"hello");
    }

    #[tokio::test]
    async fn remote_nonce_may_arrive_byte_by_byte() {
        let (a, mut raw) = duplex(1024);
        let mut pnet = PnetStream::new(a, &psk());
        let bytes = wire(&psk(), [5; NONCE_LEN], b"split nonce");
        let writer = tokio::spawn(async move {
            for b in bytes {
                raw.write_all(&[b]).await.unwrap();
                tokio::task::yield_now().await;
            }
            raw
        });
        let mut got = [0u8; 11];
        pnet.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"split nonce");
        drop(writer.await.unwrap());
        assert_eq!(pnet.read(&mut got).await.unwrap(), 0, "clean EOF after the nonce");
    }

    #[tokio::test]
    async fn eof_inside_the_nonce_is_a_typed_error() {
        for sent in [0, 1, 10, NONCE_LEN - 1] {
            let (a, mut raw) = duplex(1024);
            let mut pnet = PnetStream::new(a, &psk());
            raw.write_all(&vec![7; sent]).await.unwrap();
            drop(raw);
            let err = pnet.read(&mut [0u8; 64]).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
            let inner = err.get_ref().and_then(|e| e.downcast_ref::<PnetError>());
            assert_eq!(inner, Some(&PnetError::TruncatedNonce { received: sent }), "{err}");
        }
    }

    #[tokio::test]
    async fn write_buffer_is_bounded() {
        /// A socket that never takes a byte.
        struct Stuck;
        impl AsyncWrite for Stuck {
            fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, _: &[u8]) -> Poll<io::Result<usize>> {
                Poll::Pending
            }
            fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Pending
            }
            fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Pending
            }
        }
        let mut pnet = PnetStream::new(Stuck, &psk());
        let data = vec![0u8; 3 * WRITE_BUFFER];
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        let mut accepted = 0;
        while let Poll::Ready(n) = Pin::new(&mut pnet).poll_write(&mut cx, &data[accepted..]) {
            accepted += n.unwrap();
        }
        assert_eq!(accepted, WRITE_BUFFER);
        assert_eq!(pnet.pending(), NONCE_LEN + WRITE_BUFFER);
    }

    async fn pair(
        a_psk: &PreSharedKey,
        b_psk: &PreSharedKey,
        capacity: usize,
    ) -> (PnetStream<DuplexStream>, PnetStream<DuplexStream>) {
        let (a, b) = duplex(capacity);
        (PnetStream::new(a, a_psk), PnetStream::new(b, b_psk))
    }

    #[tokio::test]
    async fn same_key_carries_bulk_data_both_ways() {
        // A small pipe forces partial writes and back-pressure.
        let (mut a, mut b) = pair(&psk(), &psk(), 1000).await;
        let data: Vec<u8> = (0..(1 << 20) + 17).map(|i| (i * 31 % 251) as u8).collect();
        let expected = data.clone();
        let (from_a, from_b) = tokio::join!(
            async move {
                a.write_all(&data).await.unwrap();
                a.shutdown().await.unwrap();
                let mut got = Vec::new();
                a.read_to_end(&mut got).await.unwrap();
                got
            },
            async move {
                let mut got = Vec::new();
                b.read_to_end(&mut got).await.unwrap();
                b.write_all(&got).await.unwrap();
                b.shutdown().await.unwrap();
                got
            }
        );
        assert!(from_b == expected, "b read what a wrote");
        assert!(from_a == expected, "a read b's echo");
    }

    #[tokio::test]
    async fn different_keys_read_garbage() {
        let (mut a, mut b) = pair(&psk(), &PreSharedKey::new([0x43; 32]), 1024).await;
        a.write_all(b"/multistream/1.0.0\n").await.unwrap();
        a.flush().await.unwrap();
        let mut got = [0u8; 19];
        b.read_exact(&mut got).await.unwrap();
        assert_ne!(&got, b"/multistream/1.0.0\n");
    }
}
