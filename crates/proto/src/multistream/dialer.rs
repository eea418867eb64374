//! The initiator's side of multistream-select.

use super::message::{validate_protocol, InvalidProtocol, Message};
use super::{ProtocolError, Status, MAX_PROPOSALS};

/// Why a list of protocols cannot be proposed. The local caller's fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProposalError {
    /// No protocol to propose.
    #[error("no protocols to propose")]
    Empty,
    /// More than [`MAX_PROPOSALS`] protocols.
    #[error("{count} protocols proposed, more than {max}")]
    TooMany {
        /// How many were given.
        count: usize,
        /// The limit, [`MAX_PROPOSALS`].
        max: usize,
    },
    /// One of the names cannot be sent.
    #[error("protocol {index} cannot be proposed: {reason}")]
    InvalidProtocol {
        /// Its position in the list.
        index: usize,
        /// What is wrong with it.
        #[source]
        reason: InvalidProtocol,
    },
}

/// The initiator of a multistream-select negotiation.
///
/// Proposes its protocols in order of preference, moving to the next one on
/// each `na`. See the [module docs](super) for the call protocol.
///
/// ```
/// use peerswarm_proto::multistream::{Dialer, Listener, Status};
///
/// let mut dialer = Dialer::new(["/a/1", "/b/1"], false).unwrap();
/// let mut listener = Listener::new();
/// // Shuttle bytes until both sides are done.
/// for _ in 0..4 {
///     while let Some(bytes) = dialer.poll_transmit() {
///         listener.handle_input(&bytes, |p| p == "/b/1").unwrap();
///     }
///     while let Some(bytes) = listener.poll_transmit() {
///         dialer.handle_input(&bytes).unwrap();
///     }
/// }
/// assert_eq!(dialer.status(), Status::Selected("/b/1"));
/// assert_eq!(listener.status(), Status::Selected("/b/1"));
/// ```
#[derive(Debug, Clone)]
pub struct Dialer {
    protocols: Vec<String>,
    /// Index of the proposal awaiting an answer.
    current: usize,
    header_received: bool,
    optimistic: bool,
    state: State,
    transmit: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Negotiating,
    Selected,
    Failed,
}

impl Dialer {
    /// Starts a negotiation proposing `protocols`, most preferred first.
    ///
    /// The header and the first proposal are queued for
    /// [`Dialer::poll_transmit`] at once. With `lazy` and exactly one
    /// protocol the dialer is optimistic ([`Status::Optimistic`]); with
    /// several protocols `lazy` has no effect, since the dialer must learn
    /// which one was accepted before sending payload.
    pub fn new<P: AsRef<str>>(
        protocols: impl IntoIterator<Item = P>,
        lazy: bool,
    ) -> Result<Self, ProposalError> {
        let mut list = Vec::new();
        for (index, p) in protocols.into_iter().enumerate() {
            if index == MAX_PROPOSALS {
                // Count the rest without keeping them.
                return Err(ProposalError::TooMany { count: index + 1, max: MAX_PROPOSALS });
            }
            let p = p.as_ref();
            validate_protocol(p).map_err(|reason| ProposalError::InvalidProtocol { index, reason })?;
            list.push(p.to_owned());
        }
        if list.is_empty() {
            return Err(ProposalError::Empty);
        }
        let mut transmit = Vec::new();
        Message::Header.encode(&mut transmit);
        Message::Protocol(list[0].clone()).encode(&mut transmit);
        Ok(Self {
            optimistic: lazy && list.len() == 1,
            protocols: list,
            current: 0,
            header_received: false,
            state: State::Negotiating,
            transmit,
        })
    }

    /// The protocols being proposed, most preferred first.
    pub fn protocols(&self) -> &[String] {
        &self.protocols
    }

    /// Where the negotiation stands.
    pub fn status(&self) -> Status<'_> {
        match self.state {
            State::Selected => Status::Selected(&self.protocols[self.current]),
            State::Failed => Status::Failed,
            State::Negotiating if self.optimistic => Status::Optimistic(&self.protocols[0]),
            State::Negotiating => Status::Negotiating,
        }
    }

    /// Bytes to send to the listener, if any.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        if self.transmit.is_empty() {
            None
        } else {
            Some(std::mem::take(&mut self.transmit))
        }
    }

    /// Feeds bytes received from the listener; returns how many were
    /// consumed.
    ///
    /// Consumes whole messages only, and none once the negotiation has
    /// ended: unconsumed bytes are either the start of a message (pass them
    /// again with more) or, after [`Status::Selected`], the protocol's own
    /// data. An error is final: the stream should be closed.
    pub fn handle_input(&mut self, input: &[u8]) -> Result<usize, ProtocolError> {
        let mut consumed = 0;
        while self.state == State::Negotiating {
            let Some((message, used)) = Message::decode(&input[consumed..])? else {
                // Before the header, an incomplete message that cannot
                // become it is garbage: fail now, not after waiting for the
                // length it announces.
                if !self.header_received && !Message::could_be_header(&input[consumed..]) {
                    return Err(ProtocolError::InvalidHeader);
                }
                break;
            };
            consumed += used;
            self.handle_message(message)?;
        }
        Ok(consumed)
    }

    fn handle_message(&mut self, message: Message) -> Result<(), ProtocolError> {
        if !self.header_received {
            if message != Message::Header {
                return Err(ProtocolError::InvalidHeader);
            }
            self.header_received = true;
            return Ok(());
        }
        match message {
            Message::Protocol(p) if p == self.protocols[self.current] => {
                tracing::trace!(protocol = %p, "multistream: proposal accepted");
                self.state = State::Selected;
            }
            Message::NotAvailable => {
                tracing::trace!(protocol = %self.protocols[self.current], "multistream: proposal refused");
                if self.current + 1 < self.protocols.len() {
                    self.current += 1;
                    Message::Protocol(self.protocols[self.current].clone()).encode(&mut self.transmit);
                } else {
                    self.state = State::Failed;
                }
            }
            _ => return Err(ProtocolError::UnexpectedMessage),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn msg(m: Message) -> Vec<u8> {
        let mut out = Vec::new();
        m.encode(&mut out);
        out
    }

    fn proto(p: &str) -> Vec<u8> {
        msg(Message::Protocol(p.into()))
    }

    #[test]
    fn sends_header_and_first_proposal_at_once() {
        let mut d = Dialer::new(["/noise"], true).unwrap();
        assert_eq!(
            d.poll_transmit().unwrap(),
            hex::decode("132f6d756c746973747265616d2f312e302e300a072f6e6f6973650a").unwrap()
        );
        assert_eq!(d.poll_transmit(), None);
        assert_eq!(d.status(), Status::Optimistic("/noise"));
    }

    #[test]
    fn accepted_on_echo_and_leaves_payload() {
        let mut d = Dialer::new(["/noise"], false).unwrap();
        assert_eq!(d.status(), Status::Negotiating);
        let mut input = msg(Message::Header);
        input.extend(proto("/noise"));
        let payload_at = input.len();
        input.extend_from_slice(b"payload");
        assert_eq!(d.handle_input(&input), Ok(payload_at));
        assert_eq!(d.status(), Status::Selected("/noise"));
        assert_eq!(d.handle_input(b"more"), Ok(0));
    }

    #[test]
    fn falls_back_on_na() {
        let mut d = Dialer::new(["/a", "/b"], true).unwrap();
        assert_eq!(d.status(), Status::Negotiating, "lazy has no effect with two protocols");
        d.poll_transmit();
        let mut input = msg(Message::Header);
        input.extend(msg(Message::NotAvailable));
        assert_eq!(d.handle_input(&input), Ok(input.len()));
        assert_eq!(d.poll_transmit(), Some(proto("/b")));
        assert_eq!(d.handle_input(&proto("/b")), Ok(4));
        assert_eq!(d.status(), Status::Selected("/b"));
    }

    #[test]
    fn fails_when_all_refused() {
        let mut d = Dialer::new(["/a"], true).unwrap();
        let mut input = msg(Message::Header);
        input.extend(msg(Message::NotAvailable));
        d.handle_input(&input).unwrap();
        assert_eq!(d.status(), Status::Failed);
    }

    #[test]
    fn accepts_input_split_anywhere() {
        let mut input = msg(Message::Header);
        input.extend(msg(Message::NotAvailable));
        input.extend(proto("/b"));
        let mut d = Dialer::new(["/a", "/b"], false).unwrap();
        let mut buf = Vec::new();
        for &byte in &input {
            buf.push(byte);
            let used = d.handle_input(&buf).unwrap();
            buf.drain(..used);
        }
        assert!(buf.is_empty());
        assert_eq!(d.status(), Status::Selected("/b"));
    }

    #[test]
    fn rejects_garbage_header() {
        let mut d = Dialer::new(["/a"], false).unwrap();
        assert_eq!(d.handle_input(&proto("/multistream/2.0.0")), Err(ProtocolError::InvalidHeader));
        let mut d = Dialer::new(["/a"], false).unwrap();
        assert_eq!(d.handle_input(b"\x05hello"), Err(ProtocolError::MissingNewline));
        let mut d = Dialer::new(["/a"], false).unwrap();
        assert_eq!(d.handle_input(&msg(Message::NotAvailable)), Err(ProtocolError::InvalidHeader));
        // Incomplete, but its length is not the header's: no waiting for it.
        let mut d = Dialer::new(["/a"], false).unwrap();
        assert_eq!(d.handle_input(b"\x50abc"), Err(ProtocolError::InvalidHeader));
        // A header arriving in pieces is waited for.
        let mut d = Dialer::new(["/a"], false).unwrap();
        assert_eq!(d.handle_input(b"\x13/multi"), Ok(0));
    }

    #[test]
    fn rejects_unexpected_answer() {
        let mut d = Dialer::new(["/a"], false).unwrap();
        let mut input = msg(Message::Header);
        input.extend(proto("/other"));
        assert_eq!(d.handle_input(&input), Err(ProtocolError::UnexpectedMessage));
    }

    #[test]
    fn validates_proposals() {
        assert_eq!(Dialer::new(Vec::<String>::new(), false).unwrap_err(), ProposalError::Empty);
        let many: Vec<String> = (0..40).map(|i| format!("/p/{i}")).collect();
        assert_eq!(
            Dialer::new(&many, false).unwrap_err(),
            ProposalError::TooMany { count: 33, max: MAX_PROPOSALS }
        );
        assert_eq!(
            Dialer::new(["/ok", "ls"], false).unwrap_err(),
            ProposalError::InvalidProtocol { index: 1, reason: InvalidProtocol::Reserved }
        );
    }

    proptest! {
        #[test]
        fn arbitrary_input_never_panics(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..8)) {
            let mut d = Dialer::new(["/a", "/b"], false).unwrap();
            let mut buf = Vec::new();
            for chunk in chunks {
                buf.extend(chunk);
                match d.handle_input(&buf) {
                    Ok(used) => { prop_assert!(used <= buf.len()); buf.drain(..used); }
                    Err(_) => break,
                }
                let _ = d.poll_transmit();
                let _ = d.status();
            }
        }
    }
}
