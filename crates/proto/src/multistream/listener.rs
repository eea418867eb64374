//! The responder's side of multistream-select.

use super::message::Message;
use super::{ProtocolError, Status, MAX_PROPOSALS};

/// The responder of a multistream-select negotiation.
///
/// Sends its header without waiting for the dialer's, then answers each
/// proposal: an echo if supported (which ends the negotiation), `na`
/// otherwise. `ls` is answered with `na`. A dialer may pipeline header,
/// proposal and payload in one flight; [`Listener::handle_input`] stops
/// consuming at the end of the accepted proposal, leaving the payload to the
/// caller. See the [module docs](super) for the call protocol.
#[derive(Debug, Clone)]
pub struct Listener {
    header_received: bool,
    refused: usize,
    selected: Option<String>,
    transmit: Vec<u8>,
}

impl Default for Listener {
    fn default() -> Self {
        Self::new()
    }
}

impl Listener {
    /// Starts a negotiation; the header is queued for
    /// [`Listener::poll_transmit`] at once.
    pub fn new() -> Self {
        let mut transmit = Vec::new();
        Message::Header.encode(&mut transmit);
        Self { header_received: false, refused: 0, selected: None, transmit }
    }

    /// Where the negotiation stands: [`Status::Negotiating`] or
    /// [`Status::Selected`].
    pub fn status(&self) -> Status<'_> {
        match &self.selected {
            Some(p) => Status::Selected(p),
            None => Status::Negotiating,
        }
    }

    /// Bytes to send to the dialer, if any.
    ///
    /// What is queued is bounded: the header, at most [`MAX_PROPOSALS`] `na`
    /// and one echo.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        if self.transmit.is_empty() {
            None
        } else {
            Some(std::mem::take(&mut self.transmit))
        }
    }

    /// Feeds bytes received from the dialer; returns how many were consumed.
    ///
    /// `supported` decides each proposal. Consumes whole messages only, and
    /// none after a protocol is selected: the bytes after the accepted
    /// proposal belong to that protocol. An error is final.
    pub fn handle_input(
        &mut self,
        input: &[u8],
        supported: impl Fn(&str) -> bool,
    ) -> Result<usize, ProtocolError> {
        let mut consumed = 0;
        while self.selected.is_none() {
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
            self.handle_message(message, &supported)?;
        }
        Ok(consumed)
    }

    fn handle_message(
        &mut self,
        message: Message,
        supported: impl Fn(&str) -> bool,
    ) -> Result<(), ProtocolError> {
        if !self.header_received {
            if message != Message::Header {
                return Err(ProtocolError::InvalidHeader);
            }
            self.header_received = true;
            return Ok(());
        }
        match message {
            Message::Protocol(p) if supported(&p) => {
                tracing::trace!(protocol = %p, "multistream: accepting proposal");
                Message::Protocol(p.clone()).encode(&mut self.transmit);
                self.selected = Some(p);
            }
            Message::Protocol(_) | Message::ListProtocols => {
                if self.refused == MAX_PROPOSALS {
                    return Err(ProtocolError::TooManyProposals { max: MAX_PROPOSALS });
                }
                self.refused += 1;
                Message::NotAvailable.encode(&mut self.transmit);
            }
            Message::Header | Message::NotAvailable => return Err(ProtocolError::UnexpectedMessage),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::multistream::Dialer;
    use proptest::prelude::*;

    fn msg(m: Message) -> Vec<u8> {
        let mut out = Vec::new();
        m.encode(&mut out);
        out
    }

    fn proto(p: &str) -> Vec<u8> {
        msg(Message::Protocol(p.into()))
    }

    const HEADER_HEX: &str = "132f6d756c746973747265616d2f312e302e300a";

    #[test]
    fn sends_header_before_reading() {
        let mut l = Listener::new();
        assert_eq!(l.poll_transmit(), Some(hex::decode(HEADER_HEX).unwrap()));
        assert_eq!(l.poll_transmit(), None);
        assert_eq!(l.status(), Status::Negotiating);
    }

    #[test]
    fn accepts_pipelined_header_proposal_and_payload() {
        let mut l = Listener::new();
        l.poll_transmit();
        let mut input = msg(Message::Header);
        input.extend(proto("/noise"));
        let end = input.len();
        input.extend_from_slice(b"\x00\x20noise msg 1");
        assert_eq!(l.handle_input(&input, |p| p == "/noise"), Ok(end));
        assert_eq!(l.status(), Status::Selected("/noise"));
        assert_eq!(l.poll_transmit(), Some(hex::decode("072f6e6f6973650a").unwrap()));
        assert_eq!(l.handle_input(&input[end..], |_| true), Ok(0));
    }

    #[test]
    fn refuses_then_accepts() {
        let mut l = Listener::new();
        l.poll_transmit();
        let mut input = msg(Message::Header);
        input.extend(proto("/tls/1.0.0"));
        input.extend(msg(Message::ListProtocols));
        input.extend(proto("/noise"));
        assert_eq!(l.handle_input(&input, |p| p == "/noise"), Ok(input.len()));
        let mut expected = msg(Message::NotAvailable);
        expected.extend(msg(Message::NotAvailable));
        expected.extend(proto("/noise"));
        assert_eq!(l.poll_transmit(), Some(expected));
    }

    #[test]
    fn rejects_garbage_header() {
        let mut l = Listener::new();
        assert_eq!(l.handle_input(&proto("/noise"), |_| true), Err(ProtocolError::InvalidHeader));
        let mut l = Listener::new();
        assert_eq!(l.handle_input(b"\x04GET ", |_| true), Err(ProtocolError::MissingNewline));
        // An HTTP request: 'G' reads as a 71-byte length, which is not the
        // header's: refused without waiting for the other 55 bytes...
        let mut l = Listener::new();
        assert_eq!(l.handle_input(b"GET / HTTP/1.1\r\n", |_| true), Err(ProtocolError::InvalidHeader));
        // ...this one happens to be 72 bytes and end in '\n', so it parses as
        // a (wrong) header...
        let mut l = Listener::new();
        let request = b"GET / HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8.0\r\nAccept: */*\r\n\r\n";
        assert_eq!(l.handle_input(request, |_| true), Err(ProtocolError::InvalidHeader));
        // ...and with one more header line byte 72 is not a newline.
        let request =
            b"GET / HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8.0\r\nAccept: text/html\r\n\r\n";
        assert_eq!(Listener::new().handle_input(request, |_| true), Err(ProtocolError::MissingNewline));
    }

    #[test]
    fn rejects_second_header_and_na() {
        let mut input = msg(Message::Header);
        input.extend(msg(Message::Header));
        assert_eq!(Listener::new().handle_input(&input, |_| true), Err(ProtocolError::UnexpectedMessage));
        let mut input = msg(Message::Header);
        input.extend(msg(Message::NotAvailable));
        assert_eq!(Listener::new().handle_input(&input, |_| true), Err(ProtocolError::UnexpectedMessage));
    }

    #[test]
    fn bounds_refusals() {
        let mut l = Listener::new();
        let mut input = msg(Message::Header);
        for i in 0..MAX_PROPOSALS {
            input.extend(proto(&format!("/p/{i}")));
        }
        assert_eq!(l.handle_input(&input, |_| false), Ok(input.len()));
        assert_eq!(
            l.handle_input(&proto("/one/more"), |_| false),
            Err(ProtocolError::TooManyProposals { max: MAX_PROPOSALS })
        );
    }

    #[test]
    fn byte_at_a_time_against_dialer() {
        let mut d = Dialer::new(["/x", "/y"], false).unwrap();
        let mut l = Listener::new();
        // Bytes in flight, and bytes received but not yet consumed.
        let (mut to_l, mut to_d) = (std::collections::VecDeque::new(), std::collections::VecDeque::new());
        let (mut l_buf, mut d_buf) = (Vec::new(), Vec::new());
        for _ in 0..1000 {
            to_l.extend(d.poll_transmit().unwrap_or_default());
            to_d.extend(l.poll_transmit().unwrap_or_default());
            if let Some(byte) = to_l.pop_front() {
                l_buf.push(byte);
                let used = l.handle_input(&l_buf, |p| p == "/y").unwrap();
                l_buf.drain(..used);
            }
            if let Some(byte) = to_d.pop_front() {
                d_buf.push(byte);
                let used = d.handle_input(&d_buf).unwrap();
                d_buf.drain(..used);
            }
        }
        assert_eq!(l.status(), Status::Selected("/y"));
        assert_eq!(d.status(), Status::Selected("/y"));
        assert!(l_buf.is_empty() && d_buf.is_empty() && to_l.is_empty() && to_d.is_empty());
    }

    proptest! {
        #[test]
        fn arbitrary_input_never_panics(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..8)) {
            let mut l = Listener::new();
            let mut buf = Vec::new();
            for chunk in chunks {
                buf.extend(chunk);
                match l.handle_input(&buf, |p| p.len() % 2 == 0) {
                    Ok(used) => { prop_assert!(used <= buf.len()); buf.drain(..used); }
                    Err(_) => break,
                }
                let _ = l.poll_transmit();
                let _ = l.status();
            }
        }

        #[test]
        fn arbitrary_valid_message_sequences_never_panic(ms in proptest::collection::vec(prop_oneof![
            Just(Message::Header), Just(Message::NotAvailable), Just(Message::ListProtocols),
            "/[a-z]{0,5}".prop_map(Message::Protocol),
        ], 0..10)) {
            let mut input = Vec::new();
            for m in &ms { m.encode(&mut input); }
            let mut l = Listener::new();
            let _ = l.handle_input(&input, |p| p == "/a");
            let mut d = Dialer::new(["/a", "/b"], false).unwrap();
            let _ = d.handle_input(&input);
        }
    }
}
