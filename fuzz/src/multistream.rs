//! multistream-select: the message codec and both state machines.

use arbitrary::Arbitrary;
use peerswarm_proto::multistream::{
    Dialer, Listener, Message, Status, HEADER, MAX_MESSAGE_LEN, MAX_PROPOSALS,
};

/// Protocol names the state machines propose or support.
const NAMES: [&str; 4] = ["/noise", "/yamux/1.0.0", "/a", "/ipfs/id/1.0.0"];

/// `Message::decode` on arbitrary bytes: a decoded message re-encodes to
/// exactly the bytes consumed (the decoder is strict), and "need more" is
/// only answered while fewer than `MAX_MESSAGE_LEN + 2` bytes are buffered.
pub fn multistream_message(data: &[u8]) {
    match Message::decode(data) {
        Ok(Some((message, used))) => {
            assert!(used <= data.len());
            let mut out = Vec::new();
            message.encode(&mut out);
            assert_eq!(out, &data[..used], "{message:?} re-encodes differently");
            assert_eq!(message.encoded_len(), used);
        }
        Ok(None) => {
            assert!(data.len() < MAX_MESSAGE_LEN + 2, "{} bytes buffered without progress", data.len())
        }
        Err(_) => {}
    }
}

/// Which side is fuzzed.
#[derive(Arbitrary, Debug)]
pub enum Side {
    /// A dialer proposing `1 + count % 4` of [`NAMES`].
    Dialer {
        /// How many protocols to propose.
        count: u8,
        /// Optimistic (lazy) mode.
        lazy: bool,
    },
    /// A listener supporting the [`NAMES`] whose bit is set in `supported`.
    Listener {
        /// Bit `i` set: `NAMES[i]` is supported.
        supported: u8,
    },
}

/// A state machine fed the remote's bytes in arbitrary chunks.
#[derive(Arbitrary, Debug)]
pub struct NegotiationInput {
    /// The side under test.
    pub side: Side,
    /// Prepend a valid header, so that the fuzzer reaches the proposals.
    pub valid_header: bool,
    /// What the remote sends, as read by successive socket reads.
    pub chunks: Vec<Vec<u8>>,
}

/// Whatever a state machine transmits is a sequence of well-formed messages.
fn check_transmit(bytes: &[u8]) -> usize {
    let mut at = 0;
    let mut count = 0;
    while at < bytes.len() {
        let (message, used) =
            Message::decode(&bytes[at..]).expect("we send valid messages").expect("we send whole messages");
        if message == Message::NotAvailable {
            count += 1;
        }
        at += used;
    }
    count
}

/// Dialer or listener fed arbitrary chunks: consumption never exceeds the
/// input, at most one partial message stays buffered while negotiating,
/// nothing is consumed once negotiation is over, a selected protocol is one
/// that was proposed (dialer) or supported (listener), the listener refuses
/// at most `MAX_PROPOSALS` times, and everything sent decodes.
pub fn multistream_negotiation(input: NegotiationInput) {
    let mut buf = Vec::new();
    if input.valid_header {
        Message::Header.encode(&mut buf);
    }
    match input.side {
        Side::Dialer { count, lazy } => {
            let protocols = &NAMES[..1 + usize::from(count) % NAMES.len()];
            let mut dialer = Dialer::new(protocols, lazy).expect("valid proposals");
            for chunk in std::iter::once(Vec::new()).chain(input.chunks) {
                if let Some(out) = dialer.poll_transmit() {
                    check_transmit(&out);
                }
                buf.extend_from_slice(&chunk);
                let was_over = matches!(dialer.status(), Status::Selected(_) | Status::Failed);
                let used = match dialer.handle_input(&buf) {
                    Ok(used) => used,
                    Err(_) => return,
                };
                assert!(used <= buf.len());
                if was_over {
                    assert_eq!(used, 0, "input consumed after the negotiation ended");
                }
                buf.drain(..used);
                match dialer.status() {
                    Status::Selected(p) | Status::Optimistic(p) => assert!(protocols.contains(&p)),
                    Status::Negotiating | Status::Failed => {}
                }
                if matches!(dialer.status(), Status::Negotiating | Status::Optimistic(_)) {
                    assert!(buf.len() < MAX_MESSAGE_LEN + 2, "{} bytes buffered", buf.len());
                }
            }
        }
        Side::Listener { supported } => {
            let is_supported =
                |p: &str| NAMES.iter().enumerate().any(|(i, name)| supported & (1 << i) != 0 && *name == p);
            let mut listener = Listener::new();
            let mut refused = 0;
            for chunk in std::iter::once(Vec::new()).chain(input.chunks) {
                if let Some(out) = listener.poll_transmit() {
                    refused += check_transmit(&out);
                }
                buf.extend_from_slice(&chunk);
                let was_over = matches!(listener.status(), Status::Selected(_));
                let used = match listener.handle_input(&buf, is_supported) {
                    Ok(used) => used,
                    Err(_) => return,
                };
                assert!(used <= buf.len());
                if was_over {
                    assert_eq!(used, 0, "input consumed after the negotiation ended");
                }
                buf.drain(..used);
                match listener.status() {
                    Status::Selected(p) => {
                        assert!(is_supported(p) && p != HEADER);
                    }
                    Status::Negotiating => {
                        assert!(buf.len() < MAX_MESSAGE_LEN + 2, "{} bytes buffered", buf.len())
                    }
                    other => panic!("listener in dialer status {other:?}"),
                }
            }
            if let Some(out) = listener.poll_transmit() {
                refused += check_transmit(&out);
            }
            assert!(refused <= MAX_PROPOSALS, "{refused} refusals");
        }
    }
}
