use super::*;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::{duplex, DuplexStream, ReadBuf};

const HEADER: &[u8] = b"\x13/multistream/1.0.0\n";

fn proto(p: &str) -> Vec<u8> {
    let mut out = vec![p.len() as u8 + 1];
    out.extend_from_slice(p.as_bytes());
    out.push(b'\n');
    out
}

/// Records every write, and optionally passes on at most one byte per read
/// and per write.
#[derive(Debug)]
struct Probe<S> {
    io: S,
    writes: Arc<Mutex<Vec<Vec<u8>>>>,
    trickle: bool,
}

impl<S> Probe<S> {
    fn new(io: S, trickle: bool) -> (Self, Arc<Mutex<Vec<Vec<u8>>>>) {
        let writes = Arc::new(Mutex::new(Vec::new()));
        (Self { io, writes: writes.clone(), trickle }, writes)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Probe<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.trickle {
            return Pin::new(&mut self.io).poll_read(cx, buf);
        }
        let mut one = [0u8; 1];
        let mut small = ReadBuf::new(&mut one);
        let res = Pin::new(&mut self.io).poll_read(cx, &mut small);
        buf.put_slice(small.filled());
        res
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Probe<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let buf = if self.trickle && !buf.is_empty() { &buf[..1] } else { buf };
        let res = Pin::new(&mut self.io).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = res {
            self.writes.lock().unwrap().push(buf[..n].to_vec());
        }
        res
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

async fn ping_pong<A, B>(mut a: Negotiated<A>, mut b: Negotiated<B>)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    a.write_all(b"ping").await.unwrap();
    a.flush().await.unwrap();
    let mut buf = [0u8; 4];
    b.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping");
    b.write_all(b"pong").await.unwrap();
    b.flush().await.unwrap();
    a.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"pong");
    assert!(!a.is_pending() && !b.is_pending());
}

#[tokio::test]
async fn eager_both_ways() {
    let (a, b) = duplex(1024);
    let (dialed, listened) =
        tokio::join!(dialer_select(a, ["/echo/1.0.0"], false), listener_select(b, |p| p == "/echo/1.0.0"));
    let (p1, a) = dialed.unwrap();
    let (p2, b) = listened.unwrap();
    assert_eq!((p1.as_str(), p2.as_str()), ("/echo/1.0.0", "/echo/1.0.0"));
    assert!(!a.is_pending());
    ping_pong(a, b).await;
}

#[tokio::test]
async fn eager_sends_header_and_proposal_in_one_write() {
    let (a, b) = duplex(1024);
    let (a, writes) = Probe::new(a, false);
    let (dialed, listened) = tokio::join!(dialer_select(a, ["/a"], false), listener_select(b, |p| p == "/a"));
    dialed.unwrap();
    listened.unwrap();
    let mut expected = HEADER.to_vec();
    expected.extend(proto("/a"));
    assert_eq!(*writes.lock().unwrap(), vec![expected]);
}

#[tokio::test]
async fn lazy_returns_without_io_and_pipelines_on_first_write() {
    let (a, mut b) = duplex(1024);
    let (a, writes) = Probe::new(a, false);
    let (protocol, mut a) = dialer_select(a, ["/noise"], true).await.unwrap();
    assert_eq!(protocol, "/noise");
    assert!(a.is_pending());
    assert!(writes.lock().unwrap().is_empty(), "nothing written by dialer_select");

    a.write_all(b"hello").await.unwrap();
    let mut expected = HEADER.to_vec();
    expected.extend(proto("/noise"));
    expected.extend_from_slice(b"hello");
    assert_eq!(*writes.lock().unwrap(), vec![expected.clone()], "one write: header + proposal + payload");

    let mut got = vec![0u8; expected.len()];
    b.read_exact(&mut got).await.unwrap();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn lazy_both_ways() {
    let (a, b) = duplex(1024);
    let (_, a) = dialer_select(a, ["/yamux/1.0.0"], true).await.unwrap();
    let listener = tokio::spawn(listener_select(b, |p| p == "/yamux/1.0.0"));
    let mut a = a;
    a.write_all(b"ping").await.unwrap();
    let (protocol, mut b) = listener.await.unwrap().unwrap();
    assert_eq!(protocol, "/yamux/1.0.0");
    let mut buf = [0u8; 4];
    b.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping", "pipelined payload replayed");
    b.write_all(b"pong").await.unwrap();
    assert!(a.is_pending());
    a.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"pong");
    assert!(!a.is_pending());
}

#[tokio::test]
async fn lazy_flush_sends_the_proposal() {
    let (a, b) = duplex(1024);
    let (_, mut a) = dialer_select(a, ["/p"], true).await.unwrap();
    a.flush().await.unwrap();
    let (protocol, _b) = listener_select(b, |p| p == "/p").await.unwrap();
    assert_eq!(protocol, "/p");
}

#[tokio::test]
async fn lazy_read_first_sends_the_proposal() {
    // A protocol where the listener speaks first.
    let (a, b) = duplex(1024);
    let (_, mut a) = dialer_select(a, ["/greet"], true).await.unwrap();
    let listener = tokio::spawn(async move {
        let (_, mut b) = listener_select(b, |p| p == "/greet").await.unwrap();
        b.write_all(b"hi").await.unwrap();
        b
    });
    let mut buf = [0u8; 2];
    a.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"hi");
    drop(listener.await.unwrap());
}

#[tokio::test]
async fn lazy_shutdown_sends_the_proposal() {
    let (a, b) = duplex(1024);
    let (_, mut a) = dialer_select(a, ["/p"], true).await.unwrap();
    a.shutdown().await.unwrap();
    let (_, mut b) = listener_select(b, |p| p == "/p").await.unwrap();
    let mut rest = Vec::new();
    b.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty());
}

fn negotiation_error(e: &io::Error) -> &NegotiationError {
    e.get_ref().and_then(|e| e.downcast_ref::<NegotiationError>()).expect("NegotiationError inside")
}

#[tokio::test]
async fn lazy_rejection_surfaces_on_read() {
    let (a, b) = duplex(1024);
    let (_, mut a) = dialer_select(a, ["/unknown"], true).await.unwrap();
    let listener = tokio::spawn(listener_select(b, |_| false));
    a.write_all(b"payload").await.unwrap();
    let mut buf = [0u8; 1];
    let err = a.read(&mut buf).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    assert!(matches!(negotiation_error(&err), NegotiationError::Failed));
    // Stays failed.
    assert_eq!(a.read(&mut buf).await.unwrap_err().kind(), io::ErrorKind::ConnectionRefused);
    assert_eq!(a.write(b"x").await.unwrap_err().kind(), io::ErrorKind::ConnectionRefused);
    // The listener refused "/unknown", then treats the payload as garbage
    // (or sees EOF) and fails too.
    drop(a);
    assert!(listener.await.unwrap().is_err());
}

#[tokio::test]
async fn lazy_confirmation_can_be_awaited_before_reading() {
    // Accepted: the answer is checked, and what came behind it stays
    // readable.
    let (a, b) = duplex(1024);
    let (_, mut a) = dialer_select(a, ["/p"], true).await.unwrap();
    let listener = tokio::spawn(async move {
        let (_, mut b) = listener_select(b, |p| p == "/p").await.unwrap();
        b.write_all(b"behind the answer").await.unwrap();
        let mut got = [0u8; 7];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"request");
    });
    a.write_all(b"request").await.unwrap();
    assert!(a.is_pending());
    std::future::poll_fn(|cx| a.poll_confirmed(cx)).await.unwrap();
    assert!(!a.is_pending());
    let mut got = [0u8; 17];
    a.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"behind the answer");
    listener.await.unwrap();
    // Confirmed streams (and eager ones) are ready at once.
    std::future::poll_fn(|cx| a.poll_confirmed(cx)).await.unwrap();

    // Refused: the refusal, before anything is read; it sticks.
    let (a, b) = duplex(1024);
    let (_, mut a) = dialer_select(a, ["/unknown"], true).await.unwrap();
    let _listener = tokio::spawn(listener_select(b, |_| false));
    let err = std::future::poll_fn(|cx| a.poll_confirmed(cx)).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    assert!(matches!(negotiation_error(&err), NegotiationError::Failed));
    assert_eq!(a.read(&mut [0u8; 1]).await.unwrap_err().kind(), io::ErrorKind::ConnectionRefused);
}

#[tokio::test]
async fn lazy_garbage_answer_is_invalid_data() {
    let (a, mut b) = duplex(1024);
    let (_, mut a) = dialer_select(a, ["/p"], true).await.unwrap();
    b.write_all(b"\x05hello").await.unwrap();
    let err = a.read(&mut [0u8; 8]).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    assert!(matches!(negotiation_error(&err), NegotiationError::Protocol(ProtocolError::MissingNewline)));
}

#[tokio::test]
async fn na_falls_back_to_second_protocol() {
    let (a, b) = duplex(1024);
    let (dialed, listened) =
        tokio::join!(dialer_select(a, ["/tls/1.0.0", "/noise"], true), listener_select(b, |p| p == "/noise"));
    let (p, a) = dialed.unwrap();
    assert_eq!(p, "/noise");
    assert_eq!(listened.as_ref().unwrap().0, "/noise");
    ping_pong(a, listened.unwrap().1).await;
}

#[tokio::test]
async fn all_refused_is_failed() {
    let (a, b) = duplex(1024);
    let listener = tokio::spawn(listener_select(b, |_| false));
    let err = dialer_select(a, ["/a", "/b"], false).await.unwrap_err();
    assert!(matches!(err, NegotiationError::Failed), "{err:?}");
    let err = listener.await.unwrap().unwrap_err();
    assert!(matches!(&err, NegotiationError::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof), "{err:?}");
}

#[tokio::test]
async fn ls_is_answered_with_na() {
    let (mut a, b) = duplex(1024);
    let listener = tokio::spawn(listener_select(b, |p| p == "/p"));
    let mut out = HEADER.to_vec();
    out.extend_from_slice(b"\x03ls\n");
    out.extend(proto("/p"));
    a.write_all(&out).await.unwrap();
    let mut expected = HEADER.to_vec();
    expected.extend_from_slice(b"\x03na\n");
    expected.extend(proto("/p"));
    let mut got = vec![0u8; expected.len()];
    a.read_exact(&mut got).await.unwrap();
    assert_eq!(got, expected);
    assert_eq!(listener.await.unwrap().unwrap().0, "/p");
}

#[tokio::test]
async fn listener_keeps_pipelined_payload() {
    let (mut a, b) = duplex(64 * 1024);
    let (b, writes) = Probe::new(b, false);
    let mut out = HEADER.to_vec();
    out.extend(proto("/p"));
    let payload: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
    out.extend_from_slice(&payload);
    a.write_all(&out).await.unwrap();
    a.shutdown().await.unwrap();
    let (_, mut b) = listener_select(b, |p| p == "/p").await.unwrap();
    let mut got = Vec::new();
    b.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, payload);
    // The listener wrote its header first, on its own, then the echo.
    assert_eq!(writes.lock().unwrap()[0], HEADER);
}

#[tokio::test]
async fn dialer_keeps_bytes_after_the_echo() {
    let (a, mut b) = duplex(1024);
    let mut out = HEADER.to_vec();
    out.extend(proto("/p"));
    out.extend_from_slice(b"early");
    b.write_all(&out).await.unwrap();
    let (_, mut a) = dialer_select(a, ["/p"], false).await.unwrap();
    let mut buf = [0u8; 5];
    a.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"early");
}

#[tokio::test]
async fn garbage_header_is_a_typed_error() {
    let (mut a, b) = duplex(1024);
    a.write_all(b"\x07/noise\n").await.unwrap();
    let err = listener_select(b, |_| true).await.unwrap_err();
    assert!(matches!(err, NegotiationError::Protocol(ProtocolError::InvalidHeader)), "{err:?}");

    // Another version of multistream.
    let (a, mut b) = duplex(1024);
    b.write_all(b"\x13/multistream/2.0.0\n").await.unwrap();
    let err = dialer_select(a, ["/p"], false).await.unwrap_err();
    assert!(matches!(err, NegotiationError::Protocol(ProtocolError::InvalidHeader)), "{err:?}");

    // Not multistream at all.
    let (a, mut b) = duplex(1024);
    b.write_all(b"\x0fHTTP/1.1 200 OK").await.unwrap();
    let err = dialer_select(a, ["/p"], false).await.unwrap_err();
    assert!(matches!(err, NegotiationError::Protocol(ProtocolError::MissingNewline)), "{err:?}");
}

#[tokio::test]
async fn oversized_line_is_a_typed_error() {
    let (mut a, b) = duplex(4096);
    let mut out = HEADER.to_vec();
    out.extend_from_slice(&[0x81, 0x08]); // 1025
    out.extend(std::iter::repeat_n(b'a', 1025));
    a.write_all(&out).await.unwrap();
    let err = listener_select(b, |_| true).await.unwrap_err();
    assert!(
        matches!(err, NegotiationError::Protocol(ProtocolError::MessageTooLong { len: 1025, max: 1024 })),
        "{err:?}"
    );
}

#[tokio::test]
async fn eof_mid_negotiation() {
    let (mut a, b) = duplex(1024);
    a.write_all(&HEADER[..5]).await.unwrap();
    drop(a);
    let err = listener_select(b, |_| true).await.unwrap_err();
    // EOF while reading, or a broken pipe while writing the header.
    assert!(matches!(&err, NegotiationError::Io(_)), "{err:?}");

    let (a, mut b) = duplex(1024);
    let dialer = tokio::spawn(dialer_select(a, ["/p"], false));
    b.write_all(&HEADER[..5]).await.unwrap();
    let mut sink = [0u8; 64];
    let _ = b.read(&mut sink).await.unwrap();
    drop(b);
    let err = dialer.await.unwrap().unwrap_err();
    assert!(matches!(&err, NegotiationError::Io(_)), "{err:?}");
}

#[tokio::test]
async fn invalid_proposals_are_rejected_locally() {
    let (a, _b) = duplex(1024);
    let err = dialer_select(a, Vec::<&str>::new(), false).await.unwrap_err();
    assert!(matches!(err, NegotiationError::InvalidProposal(ProposalError::Empty)));
}

async fn negotiate_trickling(lazy: bool) {
    let (a, b) = duplex(1024);
    let (a, _) = Probe::new(a, true);
    let (b, _) = Probe::new(b, true);
    let (dialed, listened) =
        tokio::join!(dialer_select(a, ["/x", "/y"], lazy), listener_select(b, |p| p == "/y"));
    assert_eq!(dialed.as_ref().unwrap().0, "/y");
    assert_eq!(listened.as_ref().unwrap().0, "/y");
    ping_pong(dialed.unwrap().1, listened.unwrap().1).await;

    let (a, b) = duplex(1024);
    let (a, _) = Probe::new(a, true);
    let (b, _) = Probe::new(b, true);
    let listener = tokio::spawn(listener_select(b, |p| p == "/y"));
    let (_, mut a) = dialer_select(a, ["/y"], lazy).await.unwrap();
    assert_eq!(a.is_pending(), lazy);
    a.write_all(b"ping").await.unwrap();
    a.flush().await.unwrap();
    let (_, mut b) = listener.await.unwrap().unwrap();
    let mut buf = [0u8; 4];
    b.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping");
    b.write_all(b"pong").await.unwrap();
    a.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"pong");
}

#[tokio::test]
async fn one_byte_at_a_time_eager() {
    negotiate_trickling(false).await;
}

#[tokio::test]
async fn one_byte_at_a_time_lazy() {
    negotiate_trickling(true).await;
}

#[tokio::test]
async fn passthrough_does_nothing() {
    let (a, mut b) = duplex(1024);
    let mut a = Negotiated::passthrough(a);
    assert!(!a.is_pending());
    a.write_all(b"raw").await.unwrap();
    let mut buf = [0u8; 3];
    b.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"raw");
    let _: &DuplexStream = a.get_ref();
}

#[test]
fn io_error_mapping() {
    let e: io::Error = NegotiationError::Failed.into();
    assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
    let e: io::Error = NegotiationError::Protocol(ProtocolError::InvalidHeader).into();
    assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    let e: io::Error = NegotiationError::Io(io::ErrorKind::BrokenPipe.into()).into();
    assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
    assert!(e.get_ref().is_none());
}

fn _negotiated_is_send<S: Send>(n: Negotiated<S>) -> impl Send {
    n
}

/// A lazy dialer's payload follows its proposal. When the listener refuses
/// the proposal, the payload is no valid message; the listener fails, but
/// its `na` must still reach the dialer, whose first read then reports the
/// refusal (not a bare EOF).
#[tokio::test]
async fn refusal_reaches_a_lazy_dialer_whose_payload_follows() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (a, b) = duplex(64 * 1024);
    let listener =
        tokio::spawn(async move { listener_select(b, |p| p == "/supported/1.0.0").await.map(|_| ()) });
    let (_, mut dialer) = dialer_select(a, ["/unsupported/1.0.0"], true).await.unwrap();
    dialer.write_all(&[0, 0, 0, 0, 0, 0x0f, 0x42, 0x40]).await.unwrap();
    dialer.shutdown().await.unwrap();
    assert!(listener.await.unwrap().is_err());
    let mut buf = [0u8; 8];
    let err = dialer.read(&mut buf).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
    let inner = err.get_ref().and_then(|e| e.downcast_ref::<NegotiationError>());
    assert!(matches!(inner, Some(NegotiationError::Failed)), "{err:?}");
}

/// Every connection and stream keeps its `Negotiated` for life: it must not
/// keep the negotiation's read buffer with it.
#[tokio::test]
async fn negotiated_streams_keep_no_read_buffer() {
    let (a, b) = duplex(64 * 1024);
    let (dialer, listener) =
        tokio::join!(dialer_select(a, ["/a/1.0.0"], false), listener_select(b, |p| p == "/a/1.0.0"));
    let (dialer, listener) = (dialer.unwrap().1, listener.unwrap().1);
    assert_eq!((dialer.replay_capacity(), listener.replay_capacity()), (0, 0));

    // Lazy: the answer is read with the first data; nothing is kept after.
    let (a, b) = duplex(64 * 1024);
    let (_, mut lazy) = dialer_select(a, ["/a/1.0.0"], true).await.unwrap();
    let serve = tokio::spawn(async move {
        let (_, mut io) = listener_select(b, |p| p == "/a/1.0.0").await.unwrap();
        io.write_all(b"x").await.unwrap();
        io
    });
    lazy.flush().await.unwrap();
    let mut one = [0u8; 1];
    lazy.read_exact(&mut one).await.unwrap();
    assert_eq!(lazy.replay_capacity(), 0);
    assert_eq!(serve.await.unwrap().replay_capacity(), 0);
}

/// The coalesced listener writes nothing before the dialer's first bytes;
/// with payload pipelined behind the proposal, its header and echo go out
/// in the same write as its first payload.
#[tokio::test]
async fn coalesced_listener_answers_with_its_first_write() {
    let (a, b) = duplex(1024);
    let (b, writes) = Probe::new(b, false);
    let listener = tokio::spawn(listener_select_coalesced(b, |p| p == "/noise"));
    tokio::task::yield_now().await;
    assert!(writes.lock().unwrap().is_empty(), "nothing said before the dialer speaks");
    let (_, mut a) = dialer_select(a, ["/noise"], true).await.unwrap();
    a.write_all(b"msg1").await.unwrap();
    a.flush().await.unwrap();
    let (protocol, mut b) = listener.await.unwrap().unwrap();
    assert_eq!(protocol, "/noise");
    assert!(writes.lock().unwrap().is_empty(), "answer held back");
    let mut buf = [0u8; 4];
    b.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"msg1");
    b.write_all(b"msg2").await.unwrap();
    b.flush().await.unwrap();
    let mut expected = HEADER.to_vec();
    expected.extend(proto("/noise"));
    expected.extend_from_slice(b"msg2");
    assert_eq!(*writes.lock().unwrap(), vec![expected], "header + echo + payload in one write");
    a.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"msg2");
    assert!(!a.is_pending());
}

/// A held-back answer goes out before a read that has to wait (the dialer
/// may wait for it), and on flush and shutdown; an eager dialer (nothing
/// pipelined) gets header and echo in one write at once.
#[tokio::test]
async fn coalesced_listener_never_sits_on_its_answer() {
    // Read past the replayed payload: the answer goes out first.
    let (a, b) = duplex(1024);
    let (_, mut a) = dialer_select(a, ["/p"], true).await.unwrap();
    a.write_all(b"x").await.unwrap();
    let (_, mut b) = listener_select_coalesced(b, |p| p == "/p").await.unwrap();
    let mut one = [0u8; 1];
    b.read_exact(&mut one).await.unwrap();
    let reader = tokio::spawn(async move {
        b.read_exact(&mut one).await.unwrap();
        one
    });
    // The dialer's first read needs the echo, which only a flushed answer
    // provides; then it answers.
    a.flush().await.unwrap();
    let mut got = [0u8; 1];
    let early = tokio::time::timeout(std::time::Duration::from_millis(50), a.read_exact(&mut got)).await;
    assert!(early.is_err(), "no payload from the listener yet");
    a.write_all(b"y").await.unwrap();
    a.flush().await.unwrap();
    assert_eq!(&reader.await.unwrap(), b"y");

    // Flush and shutdown send it too.
    for shutdown in [false, true] {
        let (a, b) = duplex(1024);
        let (_, mut a) = dialer_select(a, ["/p"], true).await.unwrap();
        a.write_all(b"x").await.unwrap();
        let (_, mut b) = listener_select_coalesced(b, |p| p == "/p").await.unwrap();
        if shutdown {
            b.shutdown().await.unwrap();
        } else {
            b.flush().await.unwrap();
        }
        // The dialer confirms the echo on its first read.
        let mut rest = Vec::new();
        if shutdown {
            a.read_to_end(&mut rest).await.unwrap();
            assert!(rest.is_empty());
        } else {
            let r = tokio::time::timeout(std::time::Duration::from_millis(50), a.read(&mut [0u8; 1])).await;
            assert!(r.is_err(), "confirmed, then waiting for payload");
            assert!(!a.is_pending());
        }
    }

    // Eager dialer: header and echo together, right away.
    let (a, b) = duplex(1024);
    let (b, writes) = Probe::new(b, false);
    let (dialed, listened) =
        tokio::join!(dialer_select(a, ["/p"], false), listener_select_coalesced(b, |p| p == "/p"));
    let (mut a, mut b) = (dialed.unwrap().1, listened.unwrap().1);
    let mut expected = HEADER.to_vec();
    expected.extend(proto("/p"));
    assert_eq!(*writes.lock().unwrap(), vec![expected]);
    ping_pong_ref(&mut a, &mut b).await;
}

/// Refusals still go out at once, header first, before the next proposal.
#[tokio::test]
async fn coalesced_listener_refuses_then_selects() {
    let (a, b) = duplex(1024);
    let (dialed, listened) = tokio::join!(
        dialer_select(a, ["/tls/1.0.0", "/noise"], true),
        listener_select_coalesced(b, |p| p == "/noise")
    );
    let (p, a) = dialed.unwrap();
    let (q, b) = listened.unwrap();
    assert_eq!((p.as_str(), q.as_str()), ("/noise", "/noise"));
    ping_pong(a, b).await;
}

async fn ping_pong_ref<A, B>(a: &mut Negotiated<A>, b: &mut Negotiated<B>)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    a.write_all(b"ping").await.unwrap();
    a.flush().await.unwrap();
    let mut buf = [0u8; 4];
    b.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping");
}
