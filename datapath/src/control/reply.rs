//! What the handlers of every family share: the part of a paced dump
//! being filled, the device a request names, lists of named counters,
//! and the error of a command that has no handler.

use crate::devices::registry::DevRef;
use nlproto::{
    server::{DeviceRef, Request, RequestError},
    Attr, Emit, GenlMsg, Message,
};

/// A handler's answer: the reply messages, or the error to send.
pub(super) type Reply = Result<Vec<Message>, RequestError>;

/// The size a part of a paced dump aims for: about a page, like Linux's
/// first dump buffer (`NLMSG_GOODSIZE`). A larger message goes in a part
/// of its own.
pub const DUMP_PART_LIMIT: usize = 4096;

/// The part of a paced dump being filled.
pub(super) struct Part {
    pub(super) bytes: Vec<u8>,
    /// `NLM_F_DUMP_INTR` when the dump was interrupted.
    pub(super) flags: u16,
}

impl Part {
    /// Adds `m`, with the dump's flags, unless the part is full (then
    /// returns false, and `m` goes in the next part). A message larger
    /// than [`DUMP_PART_LIMIT`] goes in a part of its own.
    pub(super) fn add(&mut self, mut m: GenlMsg) -> bool {
        m.flags |= self.flags;
        if !self.bytes.is_empty() && self.bytes.len() + m.encoded_len() > DUMP_PART_LIMIT {
            return false;
        }
        m.emit_into(&mut self.bytes);
        true
    }
}

/// The device a request names (`NAME` or `LINKID`).
pub(super) fn dev_ref(req: &Request) -> Result<DevRef, RequestError> {
    Ok(match req.device()? {
        DeviceRef::Name(n) => DevRef::Name(n.to_string()),
        DeviceRef::LinkId(id) => DevRef::LinkId(id),
    })
}

/// A command in the table without a handler: a daemon bug, reported as such.
pub(super) fn unhandled(req: &Request) -> RequestError {
    req.fail(
        libc::EOPNOTSUPP,
        format!(
            "command {} of family {} is not implemented by this daemon",
            req.command.name, req.family.name
        ),
    )
}

/// The attribute numbers of a list of named counters in one family: the
/// list, each entry, and an entry's name and value.
#[derive(Clone, Copy)]
pub(super) struct StatAttrs {
    pub(super) list: u16,
    pub(super) entry: u16,
    pub(super) name: u16,
    pub(super) value: u16,
}

/// Named values as one nested list of `{name, value}` entries, in order.
pub(super) fn stat_list(
    ids: StatAttrs,
    values: impl IntoIterator<Item = (&'static str, u64)>,
) -> Attr {
    let entries = values
        .into_iter()
        .map(|(name, value)| {
            Attr::nested(
                ids.entry,
                vec![Attr::str(ids.name, name), Attr::u64(ids.value, value)],
            )
        })
        .collect();
    Attr::nested(ids.list, entries)
}
