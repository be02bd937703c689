//! The daemon's side of the wire, without I/O: splitting datagrams,
//! validating requests against the families, building replies, and the
//! complete nlctrl handler.
//!
//! A datagram is handled as
//!
//! ```text
//! for item in split_datagram(&datagram) {
//!     match item.and_then(|raw| parse_request(raw.bytes, raw.offset)) {
//!         Ok(None) => {}                                   // NLMSG_NOOP
//!         Ok(Some(req)) if req.family.id == GENL_ID_CTRL => replies.extend(ctrl_reply(&req, pid)),
//!         Ok(Some(req)) => replies.extend(handle(&req)),   // see Request::respond
//!         Err(e) => replies.push(e.reply(pid).into()),
//!     }
//! }
//! ```
//!
//! ([`requests`] does the first two steps at once). Every failure is a
//! [`RequestError`] carrying the errno, the text and the offset the protocol
//! prescribes, plus the request header to echo. Replies are packed into
//! datagrams with [`pack_datagrams`] (or [`crate::msg::pack`]).

mod ctrl;

pub use ctrl::{ctrl_reply, family_attrs, op_flags};

use crate::attr::{align4, decode_attrs, Attr, AttrsExt};
use crate::errno;
use crate::msg::{
    self, DoneMsg, Emit, ErrorMsg, GenlMsg, Message, GENL_HDRLEN, NLMSG_DONE, NLMSG_ERROR,
    NLMSG_HDRLEN, NLMSG_MIN_TYPE, NLMSG_NOOP, NLMSG_OVERRUN, NLM_F_ACK, NLM_F_DUMP, NLM_F_MULTI,
    NLM_F_REQUEST,
};
use crate::spec::{self, overlay, CommandSpec, FamilySpec, Privilege};
use netlink_packet_core::{NetlinkBuffer, NetlinkHeader, Parseable};

/// A datagram size the daemon can aim for when it packs replies with
/// [`pack_datagrams`] (32 KiB). A single larger message still goes out on its
/// own; clients size their receive buffer from the datagram itself.
pub const DEFAULT_DATAGRAM_LIMIT: usize = 32 * 1024;

/// A request was refused: the errno, the text and the offset to send back.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message} ({})", errno::label(*.errno))]
pub struct RequestError {
    /// Positive errno.
    pub errno: i32,
    /// Text for `NLMSGERR_ATTR_MSG`.
    pub message: String,
    /// `NLMSGERR_ATTR_OFFS`: offset of the offending attribute from the
    /// start of the message's nlmsghdr, when one is to blame.
    pub offset: Option<u32>,
    /// The request's header as received (zero-filled where the datagram was
    /// too short), echoed in the error.
    pub header: NetlinkHeader,
    /// Offset of the message within its datagram.
    pub datagram_offset: usize,
}

impl RequestError {
    /// The `NLMSG_ERROR` answering the request, from the handle `pid`.
    pub fn reply(&self, pid: u32) -> ErrorMsg {
        msg::error(
            &self.header,
            self.errno,
            Some(&self.message),
            self.offset,
            pid,
        )
    }
}

/// One message cut out of a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawMsg<'a> {
    /// Offset of the message within the datagram.
    pub offset: usize,
    /// The message, `nlmsg_len` bytes long.
    pub bytes: &'a [u8],
}

/// Iterator over the messages of a datagram; see [`split_datagram`].
#[derive(Clone, Debug)]
pub struct SplitDatagram<'a> {
    datagram: &'a [u8],
    pos: usize,
    stopped: bool,
}

/// The header at the start of `bytes`, zero-filled past their end.
fn best_effort_header(bytes: &[u8]) -> NetlinkHeader {
    let mut raw = [0u8; NLMSG_HDRLEN];
    let n = bytes.len().min(NLMSG_HDRLEN);
    raw[..n].copy_from_slice(&bytes[..n]);
    // A 16-byte array: the accessors read fixed fields only.
    NetlinkHeader::parse(&NetlinkBuffer::new(&raw[..])).unwrap_or_default()
}

impl<'a> Iterator for SplitDatagram<'a> {
    type Item = Result<RawMsg<'a>, RequestError>;

    fn next(&mut self) -> Option<Self::Item> {
        // An empty datagram is one too short for a header, not "no
        // messages": it is answered like any other short datagram.
        let empty_first = self.pos == 0 && self.datagram.is_empty();
        if self.stopped || (self.pos >= self.datagram.len() && !empty_first) {
            return None;
        }
        let total = self.datagram.len();
        let at = self.pos;
        let rest = &self.datagram[at..];
        let fail = |message: String| RequestError {
            errno: libc::EINVAL,
            message,
            offset: None,
            header: best_effort_header(rest),
            datagram_offset: at,
        };
        if rest.len() < NLMSG_HDRLEN {
            self.stopped = true;
            let text = if at == 0 {
                format!("datagram of {total} bytes is shorter than the 16-byte netlink header")
            } else {
                format!(
                    "{} bytes left at byte {at} of the datagram are shorter than the 16-byte netlink header",
                    rest.len()
                )
            };
            return Some(Err(fail(text)));
        }
        let len = NetlinkBuffer::new(rest).length() as usize;
        if len < NLMSG_HDRLEN {
            self.stopped = true;
            return Some(Err(fail(format!(
                "message length {len} is shorter than the 16-byte netlink header"
            ))));
        }
        if len > rest.len() {
            self.stopped = true;
            let text = if at == 0 {
                format!("message length {len} exceeds the datagram's {total} bytes")
            } else {
                format!("message length {len} at byte {at} exceeds the datagram's {total} bytes")
            };
            return Some(Err(fail(text)));
        }
        self.pos = at + align4(len);
        Some(Ok(RawMsg {
            offset: at,
            bytes: &rest[..len],
        }))
    }
}

/// Cuts a datagram into its messages, each 4-byte aligned. A framing error
/// (fewer than 16 bytes left, `nlmsg_len` < 16, or `nlmsg_len` past the end
/// of the datagram) is yielded once, and the rest of the datagram is
/// discarded after it, since the header giving its length cannot be trusted.
pub fn split_datagram(datagram: &[u8]) -> SplitDatagram<'_> {
    SplitDatagram {
        datagram,
        pos: 0,
        stopped: false,
    }
}

/// A validated request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The request's netlink header (`length`, `message_type`, `flags`,
    /// `sequence_number`, `port_number`).
    pub header: NetlinkHeader,
    /// The family addressed.
    pub family: &'static FamilySpec,
    /// The command asked for.
    pub command: &'static CommandSpec,
    /// Whether `NLM_F_DUMP` was set.
    pub is_dump: bool,
    /// The genetlink version of the request.
    pub version: u8,
    /// The attributes, checked against the family's policy.
    pub attrs: Vec<Attr>,
    /// Offset of the message within its datagram.
    pub datagram_offset: usize,
}

fn control_type_name(t: u16) -> &'static str {
    match t {
        NLMSG_ERROR => " (NLMSG_ERROR)",
        NLMSG_DONE => " (NLMSG_DONE)",
        NLMSG_OVERRUN => " (NLMSG_OVERRUN)",
        _ => "",
    }
}

/// Validates one message (as cut by [`split_datagram`]) from a caller with
/// every privilege; see [`parse_request_as`].
pub fn parse_request(raw: &[u8], datagram_offset: usize) -> Result<Option<Request>, RequestError> {
    parse_request_as(raw, datagram_offset, Privilege::Admin)
}

/// Validates one message (as cut by [`split_datagram`]) sent by a caller
/// holding `access`, in the order the protocol prescribes: framing, message
/// type, `NLM_F_REQUEST`, family, genetlink header, command, operation kind,
/// privilege, version, attributes, required attributes. Returns `Ok(None)`
/// for `NLMSG_NOOP`, which is ignored.
///
/// A command whose table entry needs [`Privilege::Admin`] sent by a
/// [`Privilege::ReadOnly`] caller is refused with `EPERM` before its
/// attributes are even decoded, as Linux refuses a `GENL_ADMIN_PERM`
/// operation.
pub fn parse_request_as(
    raw: &[u8],
    datagram_offset: usize,
    access: Privilege,
) -> Result<Option<Request>, RequestError> {
    let header = best_effort_header(raw);
    let fail = |errno: i32, message: String, offset: Option<u32>| RequestError {
        errno,
        message,
        offset,
        header,
        datagram_offset,
    };
    if raw.len() < NLMSG_HDRLEN {
        return Err(fail(
            libc::EINVAL,
            format!(
                "message of {} bytes is shorter than the 16-byte netlink header",
                raw.len()
            ),
            None,
        ));
    }
    let len = header.length as usize;
    if len < NLMSG_HDRLEN {
        return Err(fail(
            libc::EINVAL,
            format!("message length {len} is shorter than the 16-byte netlink header"),
            None,
        ));
    }
    if len > raw.len() {
        return Err(fail(
            libc::EINVAL,
            format!(
                "message length {len} exceeds the datagram's {} bytes",
                raw.len()
            ),
            None,
        ));
    }
    let raw = &raw[..len];
    let kind = header.message_type;
    if kind == NLMSG_NOOP {
        return Ok(None);
    }
    if kind < NLMSG_MIN_TYPE {
        return Err(fail(
            libc::EINVAL,
            format!(
                "message type {kind}{} is a netlink control message, not a request",
                control_type_name(kind)
            ),
            None,
        ));
    }
    if header.flags & NLM_F_REQUEST == 0 {
        return Err(fail(
            libc::EINVAL,
            "NLM_F_REQUEST (0x1) is not set: only requests are accepted".into(),
            None,
        ));
    }
    let Some(family) = spec::family_by_id(kind) else {
        return Err(fail(
            libc::EOPNOTSUPP,
            format!("no family with id {kind}; resolve families with nlctrl CTRL_CMD_GETFAMILY"),
            None,
        ));
    };
    let payload = &raw[NLMSG_HDRLEN..];
    let fixed = GENL_HDRLEN + family.hdrsize as usize;
    if payload.len() < fixed {
        return Err(fail(
            libc::EINVAL,
            format!(
                "payload of {} bytes is shorter than the {fixed}-byte genetlink header",
                payload.len()
            ),
            None,
        ));
    }
    let (cmd, version) = (payload[0], payload[1]);
    let Some(command) = family.command(cmd) else {
        return Err(fail(
            libc::EOPNOTSUPP,
            format!("family {} has no command {cmd}", family.name),
            None,
        ));
    };
    let is_dump = header.flags & NLM_F_DUMP == NLM_F_DUMP;
    if let Some(text) = operation_error(command, is_dump) {
        return Err(fail(libc::EOPNOTSUPP, text, None));
    }
    if let Some(text) = privilege_error(family, command, access) {
        return Err(fail(libc::EPERM, text, None));
    }
    if version < command.min_version || version > family.version {
        return Err(fail(
            libc::EINVAL,
            format!(
                "family {} version {version} is not supported ({}..={})",
                family.name, command.min_version, family.version
            ),
            None,
        ));
    }
    let attrs = decode_attrs(family.attrs, &payload[fixed..], NLMSG_HDRLEN + fixed)
        .map_err(|e| fail(libc::EINVAL, e.message, Some(e.offset)))?;
    if !is_dump {
        if let Some(missing) = command.required.iter().find(|r| !attrs.has(**r)) {
            return Err(fail(
                libc::EINVAL,
                format!(
                    "command {} requires attribute {}",
                    command.name,
                    family.attr_label(*missing)
                ),
                None,
            ));
        }
    }
    Ok(Some(Request {
        header,
        family,
        command,
        is_dump,
        version,
        attrs,
        datagram_offset,
    }))
}

/// Why `command` refuses a request of this kind, if it does.
fn operation_error(command: &CommandSpec, is_dump: bool) -> Option<String> {
    if is_dump && !command.ops.allows_dump() {
        Some(format!(
            "command {} does not support dump requests (clear NLM_F_DUMP)",
            command.name
        ))
    } else if !is_dump && !command.ops.allows_do() {
        Some(format!(
            "command {} supports only dump requests (set NLM_F_DUMP)",
            command.name
        ))
    } else {
        None
    }
}

/// Why a caller holding `access` may not run `command`, if it may not.
fn privilege_error(
    family: &FamilySpec,
    command: &CommandSpec,
    access: Privilege,
) -> Option<String> {
    match (command.privilege, access) {
        (Privilege::Admin, Privilege::ReadOnly) => Some(format!(
            "command {} of family {} needs admin privilege (uid 0 or CAP_NET_ADMIN); \
             this connection may only run read-only commands",
            command.name, family.name
        )),
        _ => None,
    }
}

/// Splits a datagram and validates each message from a caller with every
/// privilege; `NLMSG_NOOP` messages are skipped.
pub fn requests(datagram: &[u8]) -> impl Iterator<Item = Result<Request, RequestError>> + '_ {
    requests_as(datagram, Privilege::Admin)
}

/// Splits a datagram and validates each message from a caller holding
/// `access` (see [`parse_request_as`]); `NLMSG_NOOP` messages are skipped.
pub fn requests_as(
    datagram: &[u8],
    access: Privilege,
) -> impl Iterator<Item = Result<Request, RequestError>> + '_ {
    split_datagram(datagram)
        .map(move |item| item.and_then(|raw| parse_request_as(raw.bytes, raw.offset, access)))
        .filter_map(Result::transpose)
}

/// How an overlay request names its device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceRef<'a> {
    /// By `NAME` (wins when both are given).
    Name(&'a str),
    /// By `LINKID`.
    LinkId(u32),
}

impl Request {
    /// `nlmsg_seq` of the request.
    pub fn seq(&self) -> u32 {
        self.header.sequence_number
    }

    /// Whether the request asked for an ack (`NLM_F_ACK`).
    pub fn wants_ack(&self) -> bool {
        self.header.flags & NLM_F_ACK != 0
    }

    /// An error for this request, for handlers to return.
    pub fn fail(&self, errno: i32, message: impl Into<String>) -> RequestError {
        RequestError {
            errno,
            message: message.into(),
            offset: None,
            header: self.header,
            datagram_offset: self.datagram_offset,
        }
    }

    /// The device an overlay request names: `NAME` when present, else
    /// `LINKID`; neither is `EINVAL`.
    pub fn device(&self) -> Result<DeviceRef<'_>, RequestError> {
        if let Some(name) = self.attrs.get_str(overlay::ATTR_NAME) {
            Ok(DeviceRef::Name(name))
        } else if let Some(id) = self.attrs.get_u32(overlay::ATTR_LINKID) {
            Ok(DeviceRef::LinkId(id))
        } else {
            Err(self.fail(libc::EINVAL, "name the device with NAME (2) or LINKID (1)"))
        }
    }

    /// One reply message carrying `attrs`: the request's command and
    /// sequence number, the family's version, `NLM_F_MULTI` when answering a
    /// dump, and `nlmsg_pid` = the handle's `pid`.
    pub fn reply(&self, pid: u32, attrs: Vec<Attr>) -> GenlMsg {
        GenlMsg {
            family: self.family.id,
            flags: if self.is_dump { NLM_F_MULTI } else { 0 },
            seq: self.seq(),
            pid,
            cmd: self.command.id,
            version: self.family.version,
            attrs,
        }
    }

    /// The ack of this request.
    pub fn ack(&self, pid: u32) -> ErrorMsg {
        msg::ack(&self.header, pid)
    }

    /// The `NLMSG_DONE` closing this dump.
    pub fn done(&self, pid: u32) -> DoneMsg {
        msg::done(self.seq(), pid)
    }

    /// Every message that answers a successful request, by the operation
    /// rules: a dump gets one `NLM_F_MULTI` message per item and
    /// `NLMSG_DONE`; a transaction its reply (one item) and an ack if
    /// `NLM_F_ACK` is set; a write (no items) an ack if `NLM_F_ACK` is set.
    pub fn respond(&self, pid: u32, items: Vec<Vec<Attr>>) -> Vec<Message> {
        let mut out: Vec<Message> = items
            .into_iter()
            .map(|attrs| self.reply(pid, attrs).into())
            .collect();
        if self.is_dump {
            out.push(self.done(pid).into());
        } else if self.wants_ack() {
            out.push(self.ack(pid).into());
        }
        out
    }
}

/// A notification of `family` carrying `attrs`: `nlmsg_seq` 0 and
/// `nlmsg_pid` 0 (it answers no request and comes from the daemon, as
/// Linux's kernel-originated multicasts do), flags 0, the family's version,
/// genetlink command `cmd`.
pub fn notification(family: &FamilySpec, cmd: u8, attrs: Vec<Attr>) -> GenlMsg {
    GenlMsg {
        family: family.id,
        flags: 0,
        seq: 0,
        pid: 0,
        cmd,
        version: family.version,
        attrs,
    }
}

/// Packs messages into as few datagrams as possible, each at most `limit`
/// bytes (a message larger than `limit` goes alone).
pub fn pack_datagrams(messages: &[Message], limit: usize) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut current = Vec::new();
    for m in messages {
        let bytes = m.emit();
        if !current.is_empty() && current.len() + bytes.len() > limit {
            out.push(std::mem::take(&mut current));
        }
        current.extend_from_slice(&bytes);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

#[cfg(test)]
mod tests;
