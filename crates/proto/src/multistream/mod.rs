//! multistream-select 1.0: agreeing on the protocol a byte stream speaks.
//!
//! > The dialer and listener both send the multistream protocol ID
//! > (`/multistream/1.0.0`) as a header. The dialer then proposes a protocol;
//! > the listener echoes it to accept, or answers `na`, after which the
//! > dialer may propose another.
//! > (libp2p/specs `connections/README.md`, "Protocol Negotiation")
//!
//! This module is sans-IO: [`Dialer`] and [`Listener`] take the bytes read
//! from the stream and hand back the bytes to write. The async layer
//! (`peerswarm::multistream`) drives them over a socket or a yamux stream.
//!
//! # Call protocol
//!
//! For either side:
//!
//! 1. Create it. The header (and, for the dialer, the first proposal) is
//!    queued at once: neither side waits for the other's header.
//! 2. Send whatever [`Dialer::poll_transmit`] / [`Listener::poll_transmit`]
//!    returns.
//! 3. Feed received bytes to `handle_input`. It returns how many bytes it
//!    consumed; keep the rest and pass it again, with more, next time.
//!    It only consumes whole messages, and stops consuming once the
//!    negotiation is over, so the bytes left over after success belong to
//!    the negotiated protocol (a pipelining dialer sends its first payload
//!    right behind the proposal).
//! 4. Repeat 2–3 until `status()` says [`Status::Selected`] (or
//!    [`Status::Failed`]), or `handle_input` returns a [`ProtocolError`].
//!
//! # Optimistic (lazy) mode
//!
//! When the dialer proposes exactly one protocol it may treat it as agreed
//! straight away and send its first payload behind the proposal, saving a
//! round trip ([`Status::Optimistic`]). The listener's header and echo are
//! still read and checked later, before the first payload byte from the
//! listener. This is rust-libp2p's `V1Lazy`.
//!
//! # Limits
//!
//! * A message is at most [`MAX_MESSAGE_LEN`] bytes (text plus newline), so
//!   a peer can make us buffer at most `MAX_MESSAGE_LEN + 2` bytes of an
//!   incomplete message.
//! * A dialer proposes at most [`MAX_PROPOSALS`] protocols and a listener
//!   refuses at most that many proposals (`ls` requests included) before it
//!   gives up with [`ProtocolError::TooManyProposals`].
//!
//! `ls` is optional in the spec (go-multistream removed it); the listener
//! answers it with `na`, and the dialer never sends it. The deprecated
//! simultaneous-open extension is not implemented.

mod dialer;
mod listener;
mod message;

pub use dialer::{Dialer, ProposalError};
pub use listener::Listener;
pub use message::{validate_protocol, InvalidProtocol, Message};

/// The multistream-select 1.0 protocol ID, sent as the header.
pub const HEADER: &str = "/multistream/1.0.0";

/// The longest message accepted or sent, in bytes, counting the newline but
/// not the length prefix.
///
/// Protocol IDs are short paths (`/ipfs/kad/1.0.0`); 1 KiB leaves ample room
/// while keeping what an unauthenticated peer can make us buffer small.
/// js-libp2p uses the same bound; rust-libp2p allows up to 16 KiB and old
/// go-multistream 64 KiB, but only for `ls` listings, which peerswarm does not
/// decode.
pub const MAX_MESSAGE_LEN: usize = 1024;

/// The most protocols a dialer may propose, and the most proposals a
/// listener refuses before giving up on the stream.
///
/// Real dialers propose one to three protocols. 32 rounds of `na` bound the
/// work an inbound stream can make us do before it is selected.
pub const MAX_PROPOSALS: usize = 32;

/// Where a negotiation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status<'a> {
    /// Waiting for the remote.
    Negotiating,
    /// Optimistic dialer only: the single proposal is assumed accepted and
    /// payload may be sent, but the listener's header and echo have not been
    /// read yet. Keep feeding input until [`Status::Selected`].
    Optimistic(&'a str),
    /// The protocol both sides agreed on. Any further input belongs to it.
    Selected(&'a str),
    /// Dialer only: the listener answered `na` to every proposal.
    Failed,
}

/// The remote broke multistream-select. The stream should be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The length prefix is not a valid, minimal uvarint.
    #[error("invalid message length prefix")]
    InvalidLength,
    /// The length prefix announces more than [`MAX_MESSAGE_LEN`] bytes.
    #[error("message of {len} bytes exceeds the limit of {max}")]
    MessageTooLong {
        /// The announced length.
        len: u64,
        /// The limit, [`MAX_MESSAGE_LEN`].
        max: usize,
    },
    /// The message does not end with `'\n'` (or is empty).
    #[error("message does not end with a newline")]
    MissingNewline,
    /// The message is not UTF-8.
    #[error("message is not valid utf-8")]
    InvalidUtf8,
    /// The first message is not `/multistream/1.0.0`: the remote speaks
    /// another version, or something else entirely.
    #[error("expected the multistream header")]
    InvalidHeader,
    /// A well-formed message that makes no sense here (a dialer receiving an
    /// echo of a protocol it did not propose, a listener receiving `na`, a
    /// second header, ...).
    #[error("unexpected message")]
    UnexpectedMessage,
    /// The dialer made more than [`MAX_PROPOSALS`] proposals.
    #[error("more than {max} proposals refused")]
    TooManyProposals {
        /// The limit, [`MAX_PROPOSALS`].
        max: usize,
    },
}
