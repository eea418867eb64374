//! DNS messages (RFC 1035 §4), just enough for the TXT lookups of
//! `/dnsaddr` resolution.
//!
//! The multiaddr DNSADDR spec: "the domain name in the value section must
//! first be prefixed with `_dnsaddr.`. Then a DNS query to lookup TXT records
//! for the domain must be made. [...] Valid `dnsaddr` TXT records begin with
//! `dnsaddr=`, followed by a single multiaddr."
//!
//! Sans-IO: [`Query`] encodes a question ([`Query::encode`] for UDP,
//! [`Query::encode_tcp`] with the two-byte length prefix of RFC 1035
//! §4.2.2) and checks a reply with [`Query::handle_response`]. The async
//! resolver in `peerswarm` moves the bytes. No EDNS(0): a UDP reply is at
//! most 512 bytes, and a truncated one (`TC`) is retried over TCP.
//!
//! # Hostile input
//!
//! [`Message::decode`] never panics and does bounded work: every length is
//! checked against the buffer; a compression pointer must point strictly
//! backwards and at most [`MAX_POINTER_HOPS`] are followed per name; a
//! decoded name is at most [`MAX_NAME_LEN`] octets; record data must fill
//! exactly its `RDLENGTH`. Only the header, question and answer sections are
//! decoded; authority and additional records are ignored.
//!
//! ```
//! use peerswarm_proto::dns::{Message, Query, RData, Record, Reply, CLASS_IN, TYPE_TXT};
//!
//! let query = Query::txt(0x1234, "_dnsaddr.example.com").unwrap();
//! let mut reply = Message::response_to(&query);
//! reply.answers.push(Record {
//!     name: query.question().name.clone(),
//!     rtype: TYPE_TXT,
//!     class: CLASS_IN,
//!     ttl: 60,
//!     data: RData::Txt(vec![b"dnsaddr=/ip4/1.2.3.4/tcp/1".to_vec()]),
//! });
//! let Reply::Answers(answers) = query.handle_response(&reply.encode()).unwrap() else { panic!() };
//! assert_eq!(query.txt_data(&answers), vec![b"dnsaddr=/ip4/1.2.3.4/tcp/1".to_vec()]);
//! ```

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use thiserror::Error;

/// Record type A (an IPv4 address).
pub const TYPE_A: u16 = 1;
/// Record type CNAME (an alias).
pub const TYPE_CNAME: u16 = 5;
/// Record type TXT (character strings).
pub const TYPE_TXT: u16 = 16;
/// Record type AAAA (an IPv6 address).
pub const TYPE_AAAA: u16 = 28;
/// Class IN (the Internet).
pub const CLASS_IN: u16 = 1;
/// Most octets in a name in wire form, length octets and the root included
/// (RFC 1035 §2.3.4).
pub const MAX_NAME_LEN: usize = 255;
/// Most octets in one label.
pub const MAX_LABEL_LEN: usize = 63;
/// Most compression pointers followed while decoding one name.
pub const MAX_POINTER_HOPS: usize = 64;
/// Length of the fixed message header.
pub const HEADER_LEN: usize = 12;
/// Largest DNS message (the TCP length prefix is 16 bits).
pub const MAX_MESSAGE_LEN: usize = 65_535;

const FLAG_QR: u16 = 0x8000;
const FLAG_TC: u16 = 0x0200;
const FLAG_RD: u16 = 0x0100;
const OPCODE_MASK: u16 = 0x7800;
const RCODE_MASK: u16 = 0x000f;
/// RCODE 3: the name does not exist.
pub const RCODE_NXDOMAIN: u8 = 3;

/// Why a name could not be encoded or a message decoded or accepted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DnsError {
    /// The name cannot be put in a query.
    #[error("invalid name {name:?}: {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The message ends inside a field that starts at `at`.
    #[error("message ends inside a field at byte {at}")]
    UnexpectedEnd {
        /// Offset of the incomplete field.
        at: usize,
    },
    /// A label length octet uses the reserved `01`/`10` prefixes.
    #[error("reserved label type at byte {at}")]
    BadLabel {
        /// Offset of the length octet.
        at: usize,
    },
    /// A compression pointer does not point backwards, or too many were
    /// chained.
    #[error("bad compression pointer at byte {at}")]
    BadPointer {
        /// Offset of the pointer.
        at: usize,
    },
    /// A decoded name is longer than [`MAX_NAME_LEN`].
    #[error("name longer than 255 octets")]
    NameTooLong,
    /// Record data does not match its type or its `RDLENGTH`.
    #[error("malformed record data at byte {at}")]
    BadRdata {
        /// Offset of the record data.
        at: usize,
    },
    /// The message is longer than [`MAX_MESSAGE_LEN`] (encoding only).
    #[error("message longer than 65535 bytes")]
    MessageTooLong,
    /// The reply's ID is not the query's.
    #[error("reply id {got:#06x}, expected {expected:#06x}")]
    IdMismatch {
        /// The query's ID.
        expected: u16,
        /// The reply's ID.
        got: u16,
    },
    /// The message is a query, or not a standard query's reply.
    #[error("not a reply to a standard query")]
    NotResponse,
    /// The reply's question is not the query's.
    #[error("reply is for another question")]
    QuestionMismatch,
    /// The server answered with an error RCODE other than NXDOMAIN.
    #[error("server error (rcode {rcode})")]
    Rcode {
        /// The response code.
        rcode: u8,
    },
}

/// A domain name in uncompressed wire form: length-prefixed labels ending
/// with the empty root label. Compared case-insensitively (RFC 4343).
#[derive(Clone, Eq)]
pub struct Name(Vec<u8>);

impl Name {
    /// The root name `.`.
    pub fn root() -> Self {
        Name(vec![0])
    }

    /// Parses dotted text (`example.com`, a trailing dot optional). Each
    /// label is 1 to 63 bytes, the whole at most 255 octets in wire form;
    /// label bytes are taken as is (no `\` escapes).
    pub fn parse(text: &str) -> Result<Self, DnsError> {
        let invalid = |reason| DnsError::InvalidName { name: text.to_owned(), reason };
        let trimmed = text.strip_suffix('.').unwrap_or(text);
        if trimmed.is_empty() {
            return if text.is_empty() { Err(invalid("empty")) } else { Ok(Self::root()) };
        }
        let mut wire = Vec::with_capacity(trimmed.len() + 2);
        for label in trimmed.split('.') {
            if label.is_empty() {
                return Err(invalid("empty label"));
            }
            if label.len() > MAX_LABEL_LEN {
                return Err(invalid("label longer than 63 bytes"));
            }
            wire.push(label.len() as u8);
            wire.extend_from_slice(label.as_bytes());
        }
        wire.push(0);
        if wire.len() > MAX_NAME_LEN {
            return Err(invalid("longer than 255 octets"));
        }
        Ok(Name(wire))
    }

    /// The name in wire form (uncompressed).
    pub fn as_wire(&self) -> &[u8] {
        &self.0
    }

    /// The labels, root excluded.
    pub fn labels(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let mut rest = &self.0[..];
        std::iter::from_fn(move || {
            let (&len, tail) = rest.split_first()?;
            // Invariant: `Name` only holds well-formed wire names.
            let label = tail.get(..len as usize)?;
            rest = &tail[label.len()..];
            (len > 0).then_some(label)
        })
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Self) -> bool {
        // Length octets are ≤ 63, below 'A', so folding them is harmless.
        self.0.eq_ignore_ascii_case(&other.0)
    }
}

impl std::hash::Hash for Name {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        for b in &self.0 {
            state.write_u8(b.to_ascii_lowercase());
        }
    }
}

/// Dotted text; bytes other than printable ASCII, and `.` or `\` inside a
/// label, are written `\DDD`.
impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut any = false;
        for label in self.labels() {
            if any {
                f.write_str(".")?;
            }
            any = true;
            for &b in label {
                if b.is_ascii_graphic() && b != b'.' && b != b'\\' {
                    write!(f, "{}", b as char)?;
                } else {
                    write!(f, "\\{b:03}")?;
                }
            }
        }
        if !any {
            f.write_str(".")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Name({self})")
    }
}

/// A question: which records of which name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// The name asked about.
    pub name: Name,
    /// The record type (`QTYPE`), e.g. [`TYPE_TXT`].
    pub qtype: u16,
    /// The class (`QCLASS`), normally [`CLASS_IN`].
    pub qclass: u16,
}

/// The data of a resource record, decoded for the types used here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RData {
    /// TXT: one or more character strings (each at most 255 bytes).
    Txt(Vec<Vec<u8>>),
    /// CNAME: the canonical name.
    Cname(Name),
    /// A: an IPv4 address.
    A(Ipv4Addr),
    /// AAAA: an IPv6 address.
    Aaaa(Ipv6Addr),
    /// Any other type, raw (compressed names inside are not expanded).
    Other(Vec<u8>),
}

/// A resource record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The owner name.
    pub name: Name,
    /// The record type (`TYPE`). For [`RData::Txt`], [`RData::Cname`],
    /// [`RData::A`] and [`RData::Aaaa`] it must be the matching constant.
    pub rtype: u16,
    /// The class.
    pub class: u16,
    /// Time to live, seconds.
    pub ttl: u32,
    /// The decoded data.
    pub data: RData,
}

/// A DNS message: header, questions, answers. Authority and additional
/// sections are skipped on decode and left empty on encode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Message ID.
    pub id: u16,
    /// The second header word: QR, opcode, AA, TC, RD, RA, Z, RCODE.
    pub flags: u16,
    /// The question section.
    pub questions: Vec<Question>,
    /// The answer section.
    pub answers: Vec<Record>,
}

impl Message {
    /// An empty, successful, recursion-available reply to `query` (echoing
    /// its ID and question). For servers and tests.
    pub fn response_to(query: &Query) -> Self {
        Message {
            id: query.id,
            flags: FLAG_QR | FLAG_RD | 0x0080,
            questions: vec![query.question.clone()],
            answers: Vec::new(),
        }
    }

    /// Whether this is a reply (QR set).
    pub fn is_response(&self) -> bool {
        self.flags & FLAG_QR != 0
    }

    /// Whether the reply was truncated (TC set).
    pub fn is_truncated(&self) -> bool {
        self.flags & FLAG_TC != 0
    }

    /// The opcode (0 for a standard query).
    pub fn opcode(&self) -> u8 {
        ((self.flags & OPCODE_MASK) >> 11) as u8
    }

    /// The response code (0 for no error).
    pub fn rcode(&self) -> u8 {
        (self.flags & RCODE_MASK) as u8
    }

    /// Encodes without name compression.
    ///
    /// # Panics
    ///
    /// If a character string in a TXT record is longer than 255 bytes, or
    /// the message is longer than [`MAX_MESSAGE_LEN`]: callers build messages
    /// locally. [`Message::try_encode`] reports these instead.
    pub fn encode(&self) -> Vec<u8> {
        // Documented panic: local construction error, not network input.
        self.try_encode().expect("encodable DNS message")
    }

    /// Encodes without name compression; errors if a TXT string is longer
    /// than 255 bytes, a record's data longer than 65535 bytes, or the
    /// message longer than [`MAX_MESSAGE_LEN`].
    pub fn try_encode(&self) -> Result<Vec<u8>, DnsError> {
        let count = |n: usize| u16::try_from(n).map_err(|_| DnsError::MessageTooLong);
        let mut out = Vec::with_capacity(512);
        out.extend_from_slice(&self.id.to_be_bytes());
        out.extend_from_slice(&self.flags.to_be_bytes());
        out.extend_from_slice(&count(self.questions.len())?.to_be_bytes());
        out.extend_from_slice(&count(self.answers.len())?.to_be_bytes());
        out.extend_from_slice(&[0, 0, 0, 0]);
        for q in &self.questions {
            out.extend_from_slice(q.name.as_wire());
            out.extend_from_slice(&q.qtype.to_be_bytes());
            out.extend_from_slice(&q.qclass.to_be_bytes());
        }
        for r in &self.answers {
            out.extend_from_slice(r.name.as_wire());
            out.extend_from_slice(&r.rtype.to_be_bytes());
            out.extend_from_slice(&r.class.to_be_bytes());
            out.extend_from_slice(&r.ttl.to_be_bytes());
            let len_at = out.len();
            out.extend_from_slice(&[0, 0]);
            match &r.data {
                RData::Txt(strings) => {
                    for s in strings {
                        let len = u8::try_from(s.len()).map_err(|_| DnsError::BadRdata { at: out.len() })?;
                        out.push(len);
                        out.extend_from_slice(s);
                    }
                }
                RData::Cname(name) => out.extend_from_slice(name.as_wire()),
                RData::A(ip) => out.extend_from_slice(&ip.octets()),
                RData::Aaaa(ip) => out.extend_from_slice(&ip.octets()),
                RData::Other(raw) => out.extend_from_slice(raw),
            }
            let rdlen =
                u16::try_from(out.len() - len_at - 2).map_err(|_| DnsError::BadRdata { at: len_at })?;
            out[len_at..len_at + 2].copy_from_slice(&rdlen.to_be_bytes());
        }
        if out.len() > MAX_MESSAGE_LEN {
            return Err(DnsError::MessageTooLong);
        }
        Ok(out)
    }

    /// Decodes the header alone.
    pub fn decode_header(bytes: &[u8]) -> Result<(u16, u16), DnsError> {
        let mut r = Reader { msg: bytes, pos: 0 };
        Ok((r.u16()?, r.u16()?))
    }

    /// Decodes header, questions and answers (see the module docs for the
    /// limits). Bytes after the answer section are ignored.
    pub fn decode(bytes: &[u8]) -> Result<Self, DnsError> {
        let mut r = Reader { msg: bytes, pos: 0 };
        let id = r.u16()?;
        let flags = r.u16()?;
        let qdcount = r.u16()?;
        let ancount = r.u16()?;
        r.u16()?; // NSCOUNT
        r.u16()?; // ARCOUNT
                  // Counts are untrusted: no preallocation from them; each entry
                  // consumes at least 5 bytes, so the work is bounded by the length.
        let mut questions = Vec::new();
        for _ in 0..qdcount {
            let name = r.name()?;
            questions.push(Question { name, qtype: r.u16()?, qclass: r.u16()? });
        }
        let mut answers = Vec::new();
        for _ in 0..ancount {
            answers.push(r.record()?);
        }
        Ok(Message { id, flags, questions, answers })
    }
}

/// A bounds-checked cursor over a whole message (names may point back into
/// it).
struct Reader<'a> {
    msg: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], DnsError> {
        let at = self.pos;
        let bytes = self.msg.get(at..at.saturating_add(n)).ok_or(DnsError::UnexpectedEnd { at })?;
        self.pos += n;
        Ok(bytes)
    }

    fn u16(&mut self) -> Result<u16, DnsError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, DnsError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Reads a possibly compressed name and moves past it.
    fn name(&mut self) -> Result<Name, DnsError> {
        let (name, end) = read_name(self.msg, self.pos)?;
        self.pos = end;
        Ok(name)
    }

    fn record(&mut self) -> Result<Record, DnsError> {
        let name = self.name()?;
        let rtype = self.u16()?;
        let class = self.u16()?;
        let ttl = self.u32()?;
        let rdlen = self.u16()? as usize;
        let start = self.pos;
        let rdata = self.take(rdlen)?;
        let bad = DnsError::BadRdata { at: start };
        let data = match rtype {
            TYPE_TXT => {
                let mut strings = Vec::new();
                let mut rest = rdata;
                while let Some((&len, tail)) = rest.split_first() {
                    let s = tail.get(..len as usize).ok_or(bad.clone())?;
                    strings.push(s.to_vec());
                    rest = &tail[s.len()..];
                }
                RData::Txt(strings)
            }
            TYPE_CNAME => {
                let (target, end) = read_name(self.msg, start)?;
                if end != start + rdlen {
                    return Err(bad);
                }
                RData::Cname(target)
            }
            TYPE_A => RData::A(<[u8; 4]>::try_from(rdata).map_err(|_| bad)?.into()),
            TYPE_AAAA => RData::Aaaa(<[u8; 16]>::try_from(rdata).map_err(|_| bad)?.into()),
            _ => RData::Other(rdata.to_vec()),
        };
        Ok(Record { name, rtype, class, ttl, data })
    }
}

/// Decodes the name at `pos`; returns it and the offset just past it in the
/// original (not the pointed-to) data.
fn read_name(msg: &[u8], mut pos: usize) -> Result<(Name, usize), DnsError> {
    let mut wire = Vec::with_capacity(32);
    let mut end = None;
    let mut hops = 0;
    loop {
        let len = *msg.get(pos).ok_or(DnsError::UnexpectedEnd { at: pos })?;
        match len & 0xc0 {
            0x00 if len == 0 => {
                wire.push(0);
                return Ok((Name(wire), end.unwrap_or(pos + 1)));
            }
            0x00 => {
                let len = len as usize;
                let label = msg.get(pos + 1..pos + 1 + len).ok_or(DnsError::UnexpectedEnd { at: pos })?;
                // Room for this label and the root octet.
                if wire.len() + 1 + len + 1 > MAX_NAME_LEN {
                    return Err(DnsError::NameTooLong);
                }
                wire.push(len as u8);
                wire.extend_from_slice(label);
                pos += 1 + len;
            }
            0xc0 => {
                let low = *msg.get(pos + 1).ok_or(DnsError::UnexpectedEnd { at: pos })?;
                let target = (usize::from(len & 0x3f) << 8) | usize::from(low);
                hops += 1;
                // Strictly backwards, and a bounded number of hops: no loops.
                if target >= pos || hops > MAX_POINTER_HOPS {
                    return Err(DnsError::BadPointer { at: pos });
                }
                end.get_or_insert(pos + 2);
                pos = target;
            }
            _ => return Err(DnsError::BadLabel { at: pos }),
        }
    }
}

/// What a well-formed reply to a [`Query`] said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// NOERROR: the answer records (possibly none).
    Answers(Vec<Record>),
    /// NXDOMAIN: the name does not exist.
    NxDomain,
    /// TC: the reply did not fit; ask again over TCP.
    Truncated,
}

/// One outstanding question: its ID and what was asked.
///
/// Call protocol: [`Query::encode`] (or [`Query::encode_tcp`]), send, then
/// feed every datagram that arrives to [`Query::handle_response`] until it
/// returns `Ok`. `Err(IdMismatch | NotResponse | QuestionMismatch)` and
/// decode errors mean "not our reply"; over UDP keep waiting for the real one
/// (an off-path spoofer must guess the ID).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    id: u16,
    question: Question,
}

impl Query {
    /// A query for `qtype` records of `name` (class IN), recursion desired.
    pub fn new(id: u16, name: &str, qtype: u16) -> Result<Self, DnsError> {
        Ok(Query { id, question: Question { name: Name::parse(name)?, qtype, qclass: CLASS_IN } })
    }

    /// A query for the TXT records of `name`.
    pub fn txt(id: u16, name: &str) -> Result<Self, DnsError> {
        Self::new(id, name, TYPE_TXT)
    }

    /// The message ID.
    pub fn id(&self) -> u16 {
        self.id
    }

    /// The question.
    pub fn question(&self) -> &Question {
        &self.question
    }

    /// The query message, as sent over UDP.
    pub fn encode(&self) -> Vec<u8> {
        let message =
            Message { id: self.id, flags: FLAG_RD, questions: vec![self.question.clone()], answers: vec![] };
        // Invariant: one question whose name `Name::parse` bounded to 255
        // octets; no TXT data. Always encodable.
        message.try_encode().unwrap_or_default()
    }

    /// The query message with the two-byte length prefix used over TCP.
    pub fn encode_tcp(&self) -> Vec<u8> {
        let message = self.encode();
        let mut out = Vec::with_capacity(message.len() + 2);
        // A query is at most 12 + 255 + 4 bytes.
        out.extend_from_slice(&(message.len() as u16).to_be_bytes());
        out.extend_from_slice(&message);
        out
    }

    /// Checks and decodes a reply: ID, QR, opcode and question must match;
    /// a truncated reply is reported before its (possibly cut) body is
    /// decoded; RCODE 3 is [`Reply::NxDomain`], any other non-zero RCODE an
    /// error.
    pub fn handle_response(&self, bytes: &[u8]) -> Result<Reply, DnsError> {
        let (id, flags) = Message::decode_header(bytes)?;
        if id != self.id {
            return Err(DnsError::IdMismatch { expected: self.id, got: id });
        }
        if flags & FLAG_QR == 0 || flags & OPCODE_MASK != 0 {
            return Err(DnsError::NotResponse);
        }
        if flags & FLAG_TC != 0 {
            return Ok(Reply::Truncated);
        }
        let message = Message::decode(bytes)?;
        if message.questions.len() != 1 || message.questions[0] != self.question {
            return Err(DnsError::QuestionMismatch);
        }
        match message.rcode() {
            0 => Ok(Reply::Answers(message.answers)),
            RCODE_NXDOMAIN => Ok(Reply::NxDomain),
            rcode => Err(DnsError::Rcode { rcode }),
        }
    }

    /// The TXT records among `answers` for the question's name or an alias
    /// of it (CNAMEs followed in answer order), in order, each record's
    /// strings concatenated (as go's `net.LookupTXT` does).
    pub fn txt_data(&self, answers: &[Record]) -> Vec<Vec<u8>> {
        let mut names = vec![&self.question.name];
        let mut out = Vec::new();
        for record in answers {
            if record.class != CLASS_IN || !names.contains(&&record.name) {
                continue;
            }
            match &record.data {
                // Each CNAME adds one name: bounded by the answer count.
                RData::Cname(target) => names.push(target),
                RData::Txt(strings) if record.rtype == TYPE_TXT => out.push(strings.concat()),
                _ => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `Query::txt(0xbeef, "_dnsaddr.example.com")`, as `dig` would send it
    /// (RD set, no EDNS).
    const TXT_QUERY_BYTES: &[u8] = &[
        0xbe, 0xef, // ID
        0x01, 0x00, // RD
        0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // QD=1
        8, b'_', b'd', b'n', b's', b'a', b'd', b'd', b'r', //
        7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', //
        3, b'c', b'o', b'm', 0, //
        0x00, 0x10, // TXT
        0x00, 0x01, // IN
    ];

    /// A reply to [`TXT_QUERY_BYTES`] as a recursive server sends it: the
    /// answers' owner names compressed to the question (pointer 0xc00c), a
    /// CNAME to `b.example.com` (compressed against "example.com" at 21),
    /// then a TXT record of two strings for the alias, and an authority
    /// record that is ignored.
    const TXT_REPLY_BYTES: &[u8] = &[
        0xbe, 0xef, // ID
        0x81, 0x80, // QR RD RA, NOERROR
        0x00, 0x01, 0x00, 0x02, 0x00, 0x01, 0x00, 0x00, // QD=1 AN=2 NS=1
        // question (offset 12)
        8, b'_', b'd', b'n', b's', b'a', b'd', b'd', b'r', //
        7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', // offset 21
        3, b'c', b'o', b'm', 0, //
        0x00, 0x10, 0x00, 0x01, //
        // answer 1 (offset 38): CNAME
        0xc0, 0x0c, 0x00, 0x05, 0x00, 0x01, 0x00, 0x00, 0x0e, 0x10, // TTL 3600
        0x00, 0x04, 1, b'b', 0xc0, 21, // "b" at 50
        // answer 2 (offset 54): TXT for b.example.com (pointer to 50)
        0xc0, 50, 0x00, 0x10, 0x00, 0x01, 0x00, 0x00, 0x00, 0x3c, // TTL 60
        0x00, 0x1f, //
        25, b'd', b'n', b's', b'a', b'd', b'd', b'r', b'=', b'/', b'i', b'p', b'4', b'/', b'1', b'.', b'2',
        b'.', b'3', b'.', b'4', b'/', b't', b'c', b'p', b'/', //
        4, b'4', b'0', b'0', b'1', //
        // authority: garbage that must not be read
        0xff, 0xff,
    ];

    #[test]
    fn txt_query_bytes() {
        let query = Query::txt(0xbeef, "_dnsaddr.example.com").unwrap();
        assert_eq!(query.encode(), TXT_QUERY_BYTES);
        let tcp = query.encode_tcp();
        assert_eq!(&tcp[..2], &[0, TXT_QUERY_BYTES.len() as u8]);
        assert_eq!(&tcp[2..], TXT_QUERY_BYTES);
        // A trailing dot is the same name; case does not matter.
        assert_eq!(Query::txt(0xbeef, "_DNSADDR.Example.COM.").unwrap().question(), query.question());
    }

    #[test]
    fn known_txt_reply() {
        let query = Query::txt(0xbeef, "_dnsaddr.example.com").unwrap();
        let message = Message::decode(TXT_REPLY_BYTES).unwrap();
        assert_eq!(message.answers.len(), 2);
        assert_eq!(message.answers[0].data, RData::Cname(Name::parse("b.example.com").unwrap()));
        assert_eq!(message.answers[1].name.to_string(), "b.example.com");
        assert_eq!(message.answers[1].ttl, 60);
        let Reply::Answers(answers) = query.handle_response(TXT_REPLY_BYTES).unwrap() else { panic!() };
        assert_eq!(query.txt_data(&answers), vec![b"dnsaddr=/ip4/1.2.3.4/tcp/4001".to_vec()]);
    }

    #[test]
    fn rejects_replies_that_are_not_ours() {
        let query = Query::txt(0xbeef, "_dnsaddr.example.com").unwrap();
        let mut other_id = TXT_REPLY_BYTES.to_vec();
        other_id[1] = 0xee;
        assert_eq!(
            query.handle_response(&other_id),
            Err(DnsError::IdMismatch { expected: 0xbeef, got: 0xbeee })
        );
        assert_eq!(query.handle_response(TXT_QUERY_BYTES), Err(DnsError::NotResponse));
        let other = Query::txt(0xbeef, "_dnsaddr.example.org").unwrap();
        assert_eq!(other.handle_response(TXT_REPLY_BYTES), Err(DnsError::QuestionMismatch));
        let mut nx = Message::response_to(&query);
        nx.flags |= u16::from(RCODE_NXDOMAIN);
        assert_eq!(query.handle_response(&nx.encode()), Ok(Reply::NxDomain));
        let mut servfail = Message::response_to(&query);
        servfail.flags |= 2;
        assert_eq!(query.handle_response(&servfail.encode()), Err(DnsError::Rcode { rcode: 2 }));
        // Truncated: reported from the header, the cut body is not decoded.
        let mut tc = TXT_REPLY_BYTES[..50].to_vec();
        tc[2] |= 0x02;
        assert_eq!(query.handle_response(&tc), Ok(Reply::Truncated));
        assert_eq!(query.handle_response(&TXT_REPLY_BYTES[..50]), Err(DnsError::UnexpectedEnd { at: 50 }));
    }

    #[test]
    fn hostile_names() {
        let header = |an: u8| vec![0, 1, 0x80, 0, 0, 0, 0, an, 0, 0, 0, 0];
        // A pointer to itself.
        let mut m = header(1);
        m.extend_from_slice(&[0xc0, 12]);
        assert_eq!(Message::decode(&m), Err(DnsError::BadPointer { at: 12 }));
        // A forward pointer.
        let mut m = header(1);
        m.extend_from_slice(&[0xc0, 14, 0]);
        assert_eq!(Message::decode(&m), Err(DnsError::BadPointer { at: 12 }));
        // A backward loop through a label: label "a" at 12, pointer at 14 → 12.
        let mut m = header(1);
        m.extend_from_slice(&[1, b'a', 0xc0, 12]);
        assert_eq!(Message::decode(&m), Err(DnsError::BadPointer { at: 14 }));
        // The same loop with 63-byte labels hits the name length first.
        let mut m = header(1);
        m.push(63);
        m.extend_from_slice(&[b'a'; 63]);
        m.extend_from_slice(&[0xc0, 12]);
        assert_eq!(Message::decode(&m), Err(DnsError::NameTooLong));
        // A pointer past the end of the message.
        let mut m = header(1);
        m.extend_from_slice(&[0xc0]);
        assert_eq!(Message::decode(&m), Err(DnsError::UnexpectedEnd { at: 12 }));
        // Reserved label types.
        let mut m = header(1);
        m.extend_from_slice(&[0x40, 0]);
        assert_eq!(Message::decode(&m), Err(DnsError::BadLabel { at: 12 }));
        // A label longer than the message.
        let mut m = header(1);
        m.extend_from_slice(&[10, b'a']);
        assert_eq!(Message::decode(&m), Err(DnsError::UnexpectedEnd { at: 12 }));
        // A huge count with no data.
        let mut m = vec![0, 1, 0x80, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0];
        assert_eq!(Message::decode(&m), Err(DnsError::UnexpectedEnd { at: 12 }));
        m.truncate(5);
        assert_eq!(Message::decode(&m), Err(DnsError::UnexpectedEnd { at: 4 }));
    }

    #[test]
    fn hostile_rdata() {
        let record = |rtype: u16, rdata: &[u8]| {
            let mut m = vec![0, 1, 0x80, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0];
            m.extend_from_slice(&rtype.to_be_bytes());
            m.extend_from_slice(&[0, 1, 0, 0, 0, 0]);
            m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            m.extend_from_slice(rdata);
            m
        };
        // A TXT string running past RDLENGTH.
        assert_eq!(Message::decode(&record(TYPE_TXT, &[5, b'a'])), Err(DnsError::BadRdata { at: 23 }));
        // An A record of the wrong size.
        assert_eq!(Message::decode(&record(TYPE_A, &[1, 2, 3])), Err(DnsError::BadRdata { at: 23 }));
        // A CNAME whose name runs past RDLENGTH.
        assert_eq!(
            Message::decode(&record(TYPE_CNAME, &[1, b'a', 0, 0])),
            Err(DnsError::BadRdata { at: 23 })
        );
        // RDLENGTH past the end.
        let mut m = record(TYPE_TXT, &[1, b'a']);
        m.pop();
        assert_eq!(Message::decode(&m), Err(DnsError::UnexpectedEnd { at: 23 }));
        // Empty TXT data is zero strings, not an error.
        let m = Message::decode(&record(TYPE_TXT, &[])).unwrap();
        assert_eq!(m.answers[0].data, RData::Txt(vec![]));
    }

    #[test]
    fn name_limits() {
        assert!(Name::parse("").is_err());
        assert!(Name::parse("a..b").is_err());
        assert!(Name::parse(&"a".repeat(64)).is_err());
        assert!(Name::parse(&"a".repeat(63)).is_ok());
        // 4 × (1 + 62) + 1 = 253 octets: fine; one more label byte over 255.
        let long = vec!["b".repeat(62); 4].join(".");
        assert_eq!(Name::parse(&long).unwrap().as_wire().len(), 253);
        assert!(Name::parse(&format!("{long}.cc")).is_err());
        assert_eq!(Name::parse(".").unwrap(), Name::root());
        assert_eq!(Name::root().to_string(), ".");
        let mut m = vec![0, 1, 0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, b'a', b'.', 0xff, 0, 0, 1, 0, 1];
        assert_eq!(Message::decode(&m).unwrap().questions[0].name.to_string(), "a\\046\\255");
        m[12] = 2;
        assert!(Message::decode(&m).is_err());
    }

    #[test]
    fn txt_data_ignores_unrelated_records() {
        let query = Query::txt(1, "x.example").unwrap();
        let rec = |name: &str, rtype, data| Record {
            name: Name::parse(name).unwrap(),
            rtype,
            class: CLASS_IN,
            ttl: 0,
            data,
        };
        let answers = vec![
            rec("other.example", TYPE_TXT, RData::Txt(vec![b"no".to_vec()])),
            rec("X.Example", TYPE_TXT, RData::Txt(vec![b"a".to_vec(), b"b".to_vec()])),
            rec("x.example", TYPE_A, RData::A(Ipv4Addr::LOCALHOST)),
        ];
        assert_eq!(query.txt_data(&answers), vec![b"ab".to_vec()]);
    }

    fn arb_name() -> impl Strategy<Value = Name> {
        proptest::collection::vec("[a-zA-Z0-9_-]{1,20}", 1..5)
            .prop_map(|labels| Name::parse(&labels.join(".")).unwrap())
    }

    fn arb_record() -> impl Strategy<Value = Record> {
        let data = prop_oneof![
            proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..4)
                .prop_map(|s| (TYPE_TXT, RData::Txt(s))),
            arb_name().prop_map(|n| (TYPE_CNAME, RData::Cname(n))),
            any::<[u8; 4]>().prop_map(|b| (TYPE_A, RData::A(b.into()))),
            any::<[u8; 16]>().prop_map(|b| (TYPE_AAAA, RData::Aaaa(b.into()))),
            proptest::collection::vec(any::<u8>(), 0..20).prop_map(|b| (99, RData::Other(b))),
        ];
        (arb_name(), data, any::<u16>(), any::<u32>()).prop_map(|(name, (rtype, data), class, ttl)| Record {
            name,
            rtype,
            class,
            ttl,
            data,
        })
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = Message::decode(&bytes);
            let query = Query::txt(u16::from_be_bytes([bytes.first().copied().unwrap_or(0), bytes.get(1).copied().unwrap_or(0)]), "a.b").unwrap();
            if let Ok(Reply::Answers(answers)) = query.handle_response(&bytes) {
                let _ = query.txt_data(&answers);
            }
        }

        #[test]
        fn decode_mutated_reply_never_panics(flips in proptest::collection::vec((0..TXT_REPLY_BYTES.len(), any::<u8>()), 1..8), cut in 0..=TXT_REPLY_BYTES.len()) {
            let mut bytes = TXT_REPLY_BYTES.to_vec();
            for (at, b) in flips {
                bytes[at] = b;
            }
            bytes.truncate(cut);
            let _ = Message::decode(&bytes);
            let query = Query::txt(0xbeef, "_dnsaddr.example.com").unwrap();
            let _ = query.handle_response(&bytes);
        }

        #[test]
        fn encode_decode_identity(
            id in any::<u16>(),
            flags in any::<u16>(),
            questions in proptest::collection::vec((arb_name(), any::<u16>(), any::<u16>()), 0..3),
            answers in proptest::collection::vec(arb_record(), 0..6),
        ) {
            let questions = questions.into_iter().map(|(name, qtype, qclass)| Question { name, qtype, qclass }).collect();
            let message = Message { id, flags, questions, answers };
            prop_assert_eq!(Message::decode(&message.encode()), Ok(message));
        }
    }
}
