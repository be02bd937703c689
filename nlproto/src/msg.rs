//! Whole messages: generic-netlink requests and replies, acks, errors with
//! extended-ack TLVs, and `NLMSG_DONE`.
//!
//! Every message type implements [`Emit`], which appends the message to a
//! buffer, so several can be packed into one datagram. [`Message::parse`]
//! decodes any message a client may receive.
//!
//! The netlink header is netlink-packet-core's [`NetlinkHeader`]; the error
//! and done payloads are its [`ErrorMessage`] and [`DoneMessage`]. The
//! extended-ack TLVs after them, which that crate leaves as raw bytes, are
//! encoded and decoded here.

use crate::attr::{align4, decode_attrs_with, emit_attrs, Attr, AttrError, AttrsExt, Unknown};
use crate::spec::{AttrKind, AttrSpec};
use netlink_packet_core::{
    DoneBuffer, DoneMessage, Emitable, ErrorBuffer, ErrorMessage, NetlinkBuffer, NetlinkHeader,
    Parseable,
};
use netlink_packet_generic::GenlHeader;
use std::num::NonZeroI32;

pub use netlink_packet_core::{
    NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP, NLMSG_OVERRUN, NLM_F_ACK, NLM_F_ACK_TLVS, NLM_F_CAPPED,
    NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_ECHO, NLM_F_MATCH, NLM_F_REQUEST, NLM_F_ROOT,
};
pub use netlink_packet_generic::constants::GENL_HDRLEN;

/// `NLM_F_MULTI`: part of a multi-part reply (netlink-packet-core calls it
/// `NLM_F_MULTIPART`).
pub const NLM_F_MULTI: u16 = netlink_packet_core::NLM_F_MULTIPART;
/// Size of `struct nlmsghdr`.
pub const NLMSG_HDRLEN: usize = 16;
/// Message types below this value are netlink control messages.
pub const NLMSG_MIN_TYPE: u16 = 0x10;
/// Offset of the attributes of a genetlink message whose family has no
/// header of its own.
pub const GENL_ATTRS_OFFSET: usize = NLMSG_HDRLEN + GENL_HDRLEN;

/// Extended-ack TLV: a NUL-terminated message for a person.
pub const NLMSGERR_ATTR_MSG: u16 = 1;
/// Extended-ack TLV: u32 offset of the offending attribute from the start of
/// the request's nlmsghdr.
pub const NLMSGERR_ATTR_OFFS: u16 = 2;

/// The TLVs that may follow an error or done payload. Unknown ones (Linux
/// also defines COOKIE, POLICY, MISS_TYPE, MISS_NEST) are kept as bytes.
const EXTACK_POLICY: &[AttrSpec] = &[
    AttrSpec::new(
        NLMSGERR_ATTR_MSG,
        "NLMSGERR_ATTR_MSG",
        AttrKind::Str {
            max: crate::attr::ATTR_VALUE_MAX,
        },
        "error message",
    ),
    AttrSpec::new(
        NLMSGERR_ATTR_OFFS,
        "NLMSGERR_ATTR_OFFS",
        AttrKind::U32,
        "offending attribute's offset",
    ),
];

/// A message that can be written to the wire.
pub trait Emit {
    /// Appends the message to `out`, first padding `out` to 4 bytes.
    fn emit_into(&self, out: &mut Vec<u8>);

    /// The message on its own.
    fn emit(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.emit_into(&mut out);
        out
    }
}

/// A message could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MsgError {
    /// The bytes are not a well-formed message of the expected kind.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// An attribute failed its policy.
    #[error(transparent)]
    Attr(#[from] AttrError),
}

fn malformed(text: impl Into<String>) -> MsgError {
    MsgError::Malformed(text.into())
}

fn pad4(out: &mut Vec<u8>) {
    out.resize(align4(out.len()), 0);
}

/// Splits one message into its checked header and payload.
pub(crate) fn split_header(raw: &[u8]) -> Result<(NetlinkHeader, &[u8]), MsgError> {
    if raw.len() < NLMSG_HDRLEN {
        return Err(malformed(format!(
            "{} bytes is shorter than the 16-byte netlink header",
            raw.len()
        )));
    }
    let buf = NetlinkBuffer::new(raw);
    let len = buf.length() as usize;
    if len < NLMSG_HDRLEN || len > raw.len() {
        return Err(malformed(format!(
            "nlmsg_len {len} does not fit the {} bytes received",
            raw.len()
        )));
    }
    // Length checked: NetlinkHeader::parse only reads the five fixed fields.
    let header = NetlinkHeader::parse(&buf).map_err(|e| malformed(e.to_string()))?;
    Ok((header, &raw[NLMSG_HDRLEN..len]))
}

fn emit_header(out: &mut Vec<u8>, len: usize, kind: u16, flags: u16, seq: u32, pid: u32) -> usize {
    pad4(out);
    let start = out.len();
    let mut h = NetlinkHeader::default();
    h.length = u32::try_from(len).expect("message shorter than 4 GiB");
    h.message_type = kind;
    h.flags = flags;
    h.sequence_number = seq;
    h.port_number = pid;
    out.resize(start + NLMSG_HDRLEN, 0);
    h.emit(&mut out[start..]);
    start
}

/// A generic-netlink message: request, reply or dump part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenlMsg {
    /// Family id (`nlmsg_type`).
    pub family: u16,
    /// `nlmsg_flags`.
    pub flags: u16,
    /// `nlmsg_seq`.
    pub seq: u32,
    /// `nlmsg_pid`.
    pub pid: u32,
    /// Genetlink command.
    pub cmd: u8,
    /// Genetlink version.
    pub version: u8,
    /// Attributes.
    pub attrs: Vec<Attr>,
}

impl GenlMsg {
    /// Bytes the message takes on the wire.
    pub fn encoded_len(&self) -> usize {
        GENL_ATTRS_OFFSET + self.attrs.as_slice().buffer_len()
    }

    /// The message's netlink header.
    pub fn header(&self) -> NetlinkHeader {
        let mut h = NetlinkHeader::default();
        h.length = self.encoded_len() as u32;
        h.message_type = self.family;
        h.flags = self.flags;
        h.sequence_number = self.seq;
        h.port_number = self.pid;
        h
    }

    /// Decodes a genetlink message strictly against `policy` (a family
    /// without a header of its own, as all of this protocol's are).
    pub fn parse(raw: &[u8], policy: &'static [AttrSpec]) -> Result<GenlMsg, MsgError> {
        GenlMsg::parse_with(raw, policy, Unknown::Reject)
    }

    /// Decodes a genetlink message against `policy`, choosing what happens to
    /// unknown attribute types.
    pub fn parse_with(
        raw: &[u8],
        policy: &'static [AttrSpec],
        unknown: Unknown,
    ) -> Result<GenlMsg, MsgError> {
        let (h, payload) = split_header(raw)?;
        if h.message_type < NLMSG_MIN_TYPE {
            return Err(malformed(format!(
                "message type {} is a netlink control type, not a family",
                h.message_type
            )));
        }
        let genl = GenlHeader::parse(payload).map_err(|_| {
            malformed(format!(
                "payload of {} bytes is shorter than the 4-byte genetlink header",
                payload.len()
            ))
        })?;
        let attrs = decode_attrs_with(policy, &payload[GENL_HDRLEN..], GENL_ATTRS_OFFSET, unknown)?;
        Ok(GenlMsg {
            family: h.message_type,
            flags: h.flags,
            seq: h.sequence_number,
            pid: h.port_number,
            cmd: genl.cmd,
            version: genl.version,
            attrs,
        })
    }
}

impl Emit for GenlMsg {
    /// # Panics
    ///
    /// If an attribute does not fit in a 16-bit `nla_len` (see
    /// [`Attr::fits`]).
    fn emit_into(&self, out: &mut Vec<u8>) {
        let start = emit_header(
            out,
            self.encoded_len(),
            self.family,
            self.flags,
            self.seq,
            self.pid,
        );
        out.resize(start + GENL_ATTRS_OFFSET, 0);
        GenlHeader {
            cmd: self.cmd,
            version: self.version,
        }
        .emit(&mut out[start + NLMSG_HDRLEN..]);
        emit_attrs(&self.attrs, out);
    }
}

fn extack_tlvs(message: &Option<String>, offset: Option<u32>) -> Vec<Attr> {
    let mut tlvs = Vec::new();
    if let Some(m) = message {
        tlvs.push(Attr::str(NLMSGERR_ATTR_MSG, m.as_str()));
    }
    if let Some(o) = offset {
        tlvs.push(Attr::u32(NLMSGERR_ATTR_OFFS, o));
    }
    tlvs
}

fn parse_extack(bytes: &[u8], base: usize) -> Result<(Option<String>, Option<u32>), MsgError> {
    let tlvs = decode_attrs_with(EXTACK_POLICY, bytes, base, Unknown::Keep)?;
    Ok((
        tlvs.get_str(NLMSGERR_ATTR_MSG).map(str::to_string),
        tlvs.get_u32(NLMSGERR_ATTR_OFFS),
    ))
}

/// `NLMSG_ERROR`: an ack (`errno` 0) or an error, with the echoed request
/// header and the extended-ack TLVs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorMsg {
    /// `nlmsg_seq` (the request's).
    pub seq: u32,
    /// `nlmsg_pid` (the handle's PID).
    pub pid: u32,
    /// Positive errno; 0 for an ack.
    pub errno: i32,
    /// The request's header, echoed (only the header: the reply is capped).
    pub request: NetlinkHeader,
    /// `NLMSGERR_ATTR_MSG`.
    pub message: Option<String>,
    /// `NLMSGERR_ATTR_OFFS`.
    pub offset: Option<u32>,
}

impl ErrorMsg {
    /// Whether this is an ack (error 0).
    pub fn is_ack(&self) -> bool {
        self.errno == 0
    }

    /// The flags the message carries: `NLM_F_CAPPED`, plus `NLM_F_ACK_TLVS`
    /// when there are TLVs.
    pub fn flags(&self) -> u16 {
        if self.message.is_some() || self.offset.is_some() {
            NLM_F_CAPPED | NLM_F_ACK_TLVS
        } else {
            NLM_F_CAPPED
        }
    }

    /// Decodes an `NLMSG_ERROR` message.
    pub fn parse(raw: &[u8]) -> Result<ErrorMsg, MsgError> {
        let (h, payload) = split_header(raw)?;
        if h.message_type != NLMSG_ERROR {
            return Err(malformed(format!(
                "message type {} is not NLMSG_ERROR",
                h.message_type
            )));
        }
        let buf = ErrorBuffer::new_checked(&payload).map_err(|e| malformed(e.to_string()))?;
        let em = ErrorMessage::parse(&buf).map_err(|e| malformed(e.to_string()))?;
        let code = em.raw_code();
        if code > 0 {
            return Err(malformed(format!("positive error code {code}")));
        }
        let rest = em.header.as_slice();
        if rest.len() < NLMSG_HDRLEN {
            return Err(malformed("the echoed request header is truncated"));
        }
        // 16 bytes present: the header accessors read fixed fields only.
        let request = NetlinkHeader::parse(&NetlinkBuffer::new(&rest[..NLMSG_HDRLEN]))
            .map_err(|e| malformed(e.to_string()))?;
        let echoed = if h.flags & NLM_F_CAPPED != 0 {
            NLMSG_HDRLEN
        } else {
            align4(request.length as usize).max(NLMSG_HDRLEN)
        };
        let (message, offset) = if h.flags & NLM_F_ACK_TLVS != 0 {
            let tlvs = rest.get(echoed..).unwrap_or(&[]);
            parse_extack(tlvs, NLMSG_HDRLEN + 4 + echoed)?
        } else {
            (None, None)
        };
        Ok(ErrorMsg {
            seq: h.sequence_number,
            pid: h.port_number,
            errno: code.checked_neg().unwrap_or(i32::MAX),
            request,
            message,
            offset,
        })
    }
}

impl Emit for ErrorMsg {
    fn emit_into(&self, out: &mut Vec<u8>) {
        let mut body = vec![0u8; NLMSG_HDRLEN];
        self.request.emit(&mut body);
        emit_attrs(&extack_tlvs(&self.message, self.offset), &mut body);
        let mut payload = ErrorMessage::default();
        payload.code = NonZeroI32::new(self.errno.wrapping_neg());
        payload.header = body;
        let len = NLMSG_HDRLEN + payload.buffer_len();
        let start = emit_header(out, len, NLMSG_ERROR, self.flags(), self.seq, self.pid);
        out.resize(start + len, 0);
        payload.emit(&mut out[start + NLMSG_HDRLEN..]);
    }
}

/// `NLMSG_DONE`: the end of a dump. A failed dump may carry a negative errno
/// and extended-ack TLVs, as Linux does; this protocol's daemon ends dumps
/// with 0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DoneMsg {
    /// `nlmsg_seq` (the dump request's).
    pub seq: u32,
    /// `nlmsg_pid` (the handle's PID).
    pub pid: u32,
    /// Positive errno of a failed dump; 0 normally.
    pub errno: i32,
    /// `NLMSGERR_ATTR_MSG`.
    pub message: Option<String>,
    /// `NLMSGERR_ATTR_OFFS`.
    pub offset: Option<u32>,
    /// `NLM_F_DUMP_INTR`: the table being dumped changed while the dump ran.
    pub intr: bool,
}

impl DoneMsg {
    /// The flags the message carries: `NLM_F_MULTI`, plus `NLM_F_ACK_TLVS`
    /// when there are TLVs and `NLM_F_DUMP_INTR` when the dump was
    /// interrupted.
    pub fn flags(&self) -> u16 {
        let mut flags = NLM_F_MULTI;
        if self.message.is_some() || self.offset.is_some() {
            flags |= NLM_F_ACK_TLVS;
        }
        if self.intr {
            flags |= NLM_F_DUMP_INTR;
        }
        flags
    }

    /// Decodes an `NLMSG_DONE` message (an empty payload counts as 0).
    pub fn parse(raw: &[u8]) -> Result<DoneMsg, MsgError> {
        let (h, payload) = split_header(raw)?;
        if h.message_type != NLMSG_DONE {
            return Err(malformed(format!(
                "message type {} is not NLMSG_DONE",
                h.message_type
            )));
        }
        let (code, message, offset) = if payload.is_empty() {
            (0, None, None)
        } else {
            let buf = DoneBuffer::new_checked(&payload).map_err(|e| malformed(e.to_string()))?;
            let dm = DoneMessage::parse(&buf).map_err(|e| malformed(e.to_string()))?;
            let (m, o) = if h.flags & NLM_F_ACK_TLVS != 0 {
                parse_extack(&dm.extended_ack, NLMSG_HDRLEN + 4)?
            } else {
                (None, None)
            };
            (dm.code, m, o)
        };
        if code > 0 {
            return Err(malformed(format!("positive done code {code}")));
        }
        Ok(DoneMsg {
            seq: h.sequence_number,
            pid: h.port_number,
            errno: code.checked_neg().unwrap_or(i32::MAX),
            message,
            offset,
            intr: h.flags & NLM_F_DUMP_INTR != 0,
        })
    }
}

impl Emit for DoneMsg {
    fn emit_into(&self, out: &mut Vec<u8>) {
        let mut payload = DoneMessage::default();
        payload.code = self.errno.wrapping_neg();
        emit_attrs(
            &extack_tlvs(&self.message, self.offset),
            &mut payload.extended_ack,
        );
        let len = NLMSG_HDRLEN + payload.buffer_len();
        let start = emit_header(out, len, NLMSG_DONE, self.flags(), self.seq, self.pid);
        out.resize(start + len, 0);
        payload.emit(&mut out[start + NLMSG_HDRLEN..]);
    }
}

/// Any message a peer may send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A genetlink message of some family.
    Genl(GenlMsg),
    /// An ack or an error.
    Error(ErrorMsg),
    /// The end of a dump.
    Done(DoneMsg),
    /// `NLMSG_NOOP`, to be ignored.
    Noop {
        /// `nlmsg_seq`.
        seq: u32,
        /// `nlmsg_pid`.
        pid: u32,
    },
}

impl Message {
    /// The message's sequence number.
    pub fn seq(&self) -> u32 {
        match self {
            Message::Genl(m) => m.seq,
            Message::Error(m) => m.seq,
            Message::Done(m) => m.seq,
            Message::Noop { seq, .. } => *seq,
        }
    }

    /// Decodes one message; genetlink messages are decoded against `policy`.
    pub fn parse(
        raw: &[u8],
        policy: &'static [AttrSpec],
        unknown: Unknown,
    ) -> Result<Message, MsgError> {
        let (h, _) = split_header(raw)?;
        match h.message_type {
            NLMSG_ERROR => ErrorMsg::parse(raw).map(Message::Error),
            NLMSG_DONE => DoneMsg::parse(raw).map(Message::Done),
            NLMSG_NOOP => Ok(Message::Noop {
                seq: h.sequence_number,
                pid: h.port_number,
            }),
            t if t < NLMSG_MIN_TYPE => {
                Err(malformed(format!("unexpected control message type {t}")))
            }
            _ => GenlMsg::parse_with(raw, policy, unknown).map(Message::Genl),
        }
    }
}

impl Emit for Message {
    fn emit_into(&self, out: &mut Vec<u8>) {
        match self {
            Message::Genl(m) => m.emit_into(out),
            Message::Error(m) => m.emit_into(out),
            Message::Done(m) => m.emit_into(out),
            Message::Noop { seq, pid } => {
                emit_header(out, NLMSG_HDRLEN, NLMSG_NOOP, 0, *seq, *pid);
            }
        }
    }
}

impl From<GenlMsg> for Message {
    fn from(m: GenlMsg) -> Message {
        Message::Genl(m)
    }
}

impl From<ErrorMsg> for Message {
    fn from(m: ErrorMsg) -> Message {
        Message::Error(m)
    }
}

impl From<DoneMsg> for Message {
    fn from(m: DoneMsg) -> Message {
        Message::Done(m)
    }
}

/// The ack of a request: `NLMSG_ERROR` with error 0 and the request's header
/// echoed.
pub fn ack(req: &NetlinkHeader, pid: u32) -> ErrorMsg {
    error(req, 0, None, None, pid)
}

/// An error answering a request: `NLMSG_ERROR` with `-errno` (`errno` is
/// positive), the request's header echoed, and the TLVs that are given.
pub fn error(
    req: &NetlinkHeader,
    errno: i32,
    msg: Option<&str>,
    offset: Option<u32>,
    pid: u32,
) -> ErrorMsg {
    ErrorMsg {
        seq: req.sequence_number,
        pid,
        errno,
        request: *req,
        message: msg.map(str::to_string),
        offset,
    }
}

/// The end of a successful dump: `NLMSG_DONE`, `NLM_F_MULTI`, payload i32 0.
pub fn done(seq: u32, pid: u32) -> DoneMsg {
    DoneMsg {
        seq,
        pid,
        errno: 0,
        message: None,
        offset: None,
        intr: false,
    }
}

/// The `NLMSG_ERROR` telling a subscriber that notifications were dropped
/// because it did not read them fast enough: `-ENOBUFS`, `nlmsg_seq` 0,
/// `nlmsg_pid` 0 and an all-zero echoed header, since no request caused it.
/// Linux reports the same condition as `ENOBUFS` from `recvmsg()`; a Unix
/// socket cannot, so it travels as a message.
pub fn overrun() -> ErrorMsg {
    ErrorMsg {
        seq: 0,
        pid: 0,
        errno: libc::ENOBUFS,
        request: NetlinkHeader::default(),
        message: Some(
            "notifications were dropped because this handle did not read them in time; resynchronise with a dump"
                .to_string(),
        ),
        offset: None,
    }
}

/// Concatenates messages into one datagram.
pub fn pack<'a, M: Emit + 'a>(messages: impl IntoIterator<Item = &'a M>) -> Vec<u8> {
    let mut out = Vec::new();
    for m in messages {
        m.emit_into(&mut out);
    }
    out
}

#[cfg(test)]
mod tests;
