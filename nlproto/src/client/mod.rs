//! A blocking client for the daemon's socket.
//!
//! ```no_run
//! use nlproto::client::Client;
//! use nlproto::spec::overlay;
//! use nlproto::AttrsExt;
//!
//! let mut c = Client::connect(nlproto::DEFAULT_SOCKET_PATH)?;
//! for dev in c.dump(overlay::NAME, overlay::CMD_LIST, vec![])? {
//!     println!("{:?}", dev.attrs.get_str(overlay::ATTR_NAME));
//! }
//! # Ok::<(), nlproto::client::Error>(())
//! ```
//!
//! Every request gets a fresh sequence number; replies are matched by it and
//! anything else (replies to a request that timed out) is dropped, so that a
//! late answer is never taken for the answer to a later request. After a
//! timeout the connection stays usable: the daemon answers in order, so the
//! next request's answer comes after the late one. Once the
//! client has joined a multicast group ([`Client::join_group`]),
//! notifications (sequence number 0) that arrive while it waits for a reply
//! are kept for [`Client::next_notification`] instead. Each wait for a
//! datagram is bounded by the client's timeout.
//!
//! ```no_run
//! use nlproto::client::{Client, Notification};
//! use nlproto::spec::overlay;
//!
//! let mut c = Client::connect(nlproto::DEFAULT_SOCKET_PATH)?;
//! let config = c.mcast_group_id(overlay::NAME, overlay::GROUP_CONFIG_NAME)?;
//! c.join_group(config)?;
//! match c.next_notification()? {
//!     Notification::Event(m) => println!("command {}", m.cmd),
//!     Notification::Overrun => println!("events were lost: dump again"),
//! }
//! # Ok::<(), nlproto::client::Error>(())
//! ```

pub use crate::sys::seqpacket_pair;

use crate::attr::{Attr, AttrsExt, Unknown};
use crate::errno;
use crate::msg::{
    ErrorMsg, GenlMsg, Message, NLMSG_ERROR, NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST,
};
use crate::server::split_datagram;
use crate::spec::{self, ctrl, handle, FamilySpec};
use crate::sys;
use crate::Emit;
use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a client waits for each datagram unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// What can go wrong talking to the daemon.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The socket could not be opened or connected.
    #[error("cannot connect to {}: {source}", path.display())]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Sending or receiving failed, or the daemon closed the connection.
    #[error("socket error: {0}")]
    Io(#[from] io::Error),
    /// The daemon refused the request. Displays as the daemon's text
    /// followed by the errno's name: `no device named foo (ENOENT)`.
    #[error("{}", netlink_text(*errno, message.as_deref()))]
    Netlink {
        /// Positive errno.
        errno: i32,
        /// The daemon's explanation (`NLMSGERR_ATTR_MSG`).
        message: Option<String>,
        /// Offset of the offending attribute in the request
        /// (`NLMSGERR_ATTR_OFFS`).
        offset: Option<u32>,
    },
    /// The daemon sent something this client cannot make sense of, or the
    /// caller asked for something the protocol does not have.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// No answer came within the client's timeout.
    #[error("no answer from the daemon within the timeout")]
    Timeout,
}

fn netlink_text(errno: i32, message: Option<&str>) -> String {
    match message {
        Some(m) => format!("{m} ({})", errno::label(errno)),
        None => format!("{} ({})", errno::describe(errno), errno::label(errno)),
    }
}

impl Error {
    /// The errno of a [`Error::Netlink`].
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Netlink { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

impl From<ErrorMsg> for Error {
    fn from(e: ErrorMsg) -> Error {
        Error::Netlink {
            errno: e.errno,
            message: e.message,
            offset: e.offset,
        }
    }
}

/// A family as nlctrl describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FamilyInfo {
    /// Family id.
    pub id: u16,
    /// Family name.
    pub name: String,
    /// Version.
    pub version: u32,
    /// Family header size.
    pub hdrsize: u32,
    /// Highest attribute number.
    pub maxattr: u32,
    /// `(command, op flags)` for each command.
    pub ops: Vec<(u32, u32)>,
    /// `(name, id)` for each multicast group.
    pub mcast_groups: Vec<(String, u32)>,
}

impl FamilyInfo {
    /// Reads a `CTRL_CMD_NEWFAMILY` message's attributes.
    pub fn from_attrs(attrs: &[Attr]) -> Result<FamilyInfo, Error> {
        let missing = |what: &str| Error::Protocol(format!("CTRL_CMD_NEWFAMILY without {what}"));
        let entries = |kind: u16| -> Vec<&[Attr]> {
            attrs
                .get_nested(kind)
                .unwrap_or(&[])
                .iter()
                .filter_map(|e| match &e.value {
                    crate::AttrValue::Nested(v) => Some(v.as_slice()),
                    _ => None,
                })
                .collect()
        };
        Ok(FamilyInfo {
            id: attrs
                .get_u16(ctrl::CTRL_ATTR_FAMILY_ID)
                .ok_or_else(|| missing("CTRL_ATTR_FAMILY_ID"))?,
            name: attrs
                .get_str(ctrl::CTRL_ATTR_FAMILY_NAME)
                .ok_or_else(|| missing("CTRL_ATTR_FAMILY_NAME"))?
                .to_string(),
            version: attrs.get_u32(ctrl::CTRL_ATTR_VERSION).unwrap_or(0),
            hdrsize: attrs.get_u32(ctrl::CTRL_ATTR_HDRSIZE).unwrap_or(0),
            maxattr: attrs.get_u32(ctrl::CTRL_ATTR_MAXATTR).unwrap_or(0),
            ops: entries(ctrl::CTRL_ATTR_OPS)
                .into_iter()
                .map(|e| {
                    (
                        e.get_u32(ctrl::CTRL_ATTR_OP_ID).unwrap_or(0),
                        e.get_u32(ctrl::CTRL_ATTR_OP_FLAGS).unwrap_or(0),
                    )
                })
                .collect(),
            mcast_groups: entries(ctrl::CTRL_ATTR_MCAST_GROUPS)
                .into_iter()
                .map(|e| {
                    (
                        e.get_str(ctrl::CTRL_ATTR_MCAST_GRP_NAME)
                            .unwrap_or("")
                            .to_string(),
                        e.get_u32(ctrl::CTRL_ATTR_MCAST_GRP_ID).unwrap_or(0),
                    )
                })
                .collect(),
        })
    }
}

/// Sees every datagram a [`Client`] sends and receives, for recording
/// (see [`crate::transcript::Recorder`]).
pub trait Tap: Send {
    /// A datagram about to be sent.
    fn sent(&mut self, datagram: &[u8]);
    /// A datagram just received.
    fn received(&mut self, datagram: &[u8]);
}

/// What [`Client::next_notification`] returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notification {
    /// A notification message of a group the handle joined.
    Event(GenlMsg),
    /// The daemon dropped notifications because this handle did not read
    /// them in time (`NLMSG_ERROR` `-ENOBUFS` with sequence number 0).
    /// Later ones arrive again; what was lost must be read back with a dump.
    Overrun,
}

/// The answer to a dump, with its consistency.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dump {
    /// The messages, in order.
    pub items: Vec<GenlMsg>,
    /// Whether any part carried `NLM_F_DUMP_INTR`: the table changed while
    /// the dump ran, so the items may mix old and new state. Dump again for
    /// a consistent picture.
    pub interrupted: bool,
}

/// A connection (a handle) to the daemon.
pub struct Client {
    fd: OwnedFd,
    pid: u32,
    seq: u32,
    timeout: Duration,
    family_ids: HashMap<String, u16>,
    /// Messages of an already received datagram not yet consumed.
    pending: VecDeque<Vec<u8>>,
    tap: Option<Box<dyn Tap>>,
    /// Whether a multicast group was joined: notifications are then kept.
    subscribed: bool,
    /// Notifications received while waiting for replies.
    notifications: VecDeque<Vec<u8>>,
    /// The requests sent by [`Client::start`] that [`Client::finish`] has
    /// not yet taken the answer of, oldest first.
    started: VecDeque<u32>,
    /// Messages answering those requests that arrived while another
    /// request waited for its own, kept for [`Client::finish`].
    held: VecDeque<Vec<u8>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("fd", &self.fd)
            .field("pid", &self.pid)
            .field("seq", &self.seq)
            .field("timeout", &self.timeout)
            .field("family_ids", &self.family_ids)
            .field("pending", &self.pending.len())
            .field("tapped", &self.tap.is_some())
            .field("subscribed", &self.subscribed)
            .field("notifications", &self.notifications.len())
            .field("started", &self.started)
            .field("held", &self.held.len())
            .finish()
    }
}

impl Client {
    /// Connects to the daemon's socket at `path` and fetches the handle's
    /// PID, with [`DEFAULT_TIMEOUT`].
    pub fn connect(path: impl AsRef<Path>) -> Result<Client, Error> {
        Client::connect_with(path, DEFAULT_TIMEOUT)
    }

    /// [`Client::connect`] with another timeout.
    pub fn connect_with(path: impl AsRef<Path>, timeout: Duration) -> Result<Client, Error> {
        let path = path.as_ref();
        let fd = sys::connect(path).map_err(|source| Error::Connect {
            path: path.to_path_buf(),
            source,
        })?;
        Client::from_fd(fd, timeout)
    }

    /// [`Client::connect_with`] with a [`Tap`] that sees every datagram,
    /// the PID request included.
    pub fn connect_tapped(
        path: impl AsRef<Path>,
        timeout: Duration,
        tap: Box<dyn Tap>,
    ) -> Result<Client, Error> {
        let mut c = Client::connect_bare(path, timeout)?;
        c.tap = Some(tap);
        c.fetch_pid()?;
        Ok(c)
    }

    /// Connects without asking for the handle's PID, so that nothing is
    /// sent until the caller sends it ([`Client::pid`] is 0 until then).
    /// For replaying recorded exchanges with [`Client::send_raw`] and
    /// [`Client::recv_raw`].
    pub fn connect_bare(path: impl AsRef<Path>, timeout: Duration) -> Result<Client, Error> {
        let path = path.as_ref();
        let fd = sys::connect(path).map_err(|source| Error::Connect {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Client::bare(fd, timeout))
    }

    fn bare(fd: OwnedFd, timeout: Duration) -> Client {
        Client {
            fd,
            pid: 0,
            seq: 0,
            timeout,
            family_ids: HashMap::new(),
            pending: VecDeque::new(),
            tap: None,
            subscribed: false,
            notifications: VecDeque::new(),
            started: VecDeque::new(),
            held: VecDeque::new(),
        }
    }

    /// Wraps an already connected `SOCK_SEQPACKET` socket and fetches the
    /// handle's PID (resolving `overlay_handle` through nlctrl first).
    pub fn from_fd(fd: OwnedFd, timeout: Duration) -> Result<Client, Error> {
        let mut c = Client::bare(fd, timeout);
        c.fetch_pid()?;
        Ok(c)
    }

    fn fetch_pid(&mut self) -> Result<(), Error> {
        let c = self;
        let reply = match c.transact(handle::NAME, handle::CMD_GET_PID, vec![]) {
            Ok(r) => r,
            // A daemon that refuses the connection (too many open) says
            // why in one datagram, then closes: that reason is the error.
            Err(Error::Io(e)) => return Err(c.refusal().unwrap_or(Error::Io(e))),
            Err(e) => return Err(e),
        };
        c.pid = reply
            .attrs
            .get_u32(handle::HANDLE_ATTR_PID)
            .ok_or_else(|| Error::Protocol("GET_PID reply without HANDLE_ATTR_PID".into()))?;
        Ok(())
    }

    /// The `NLMSG_ERROR` a daemon left on a connection it closed, if any.
    fn refusal(&mut self) -> Option<Error> {
        let mut buf = vec![0u8; 64 * 1024];
        let n = sys::try_recv(self.fd.as_fd(), &mut buf).ok()??;
        let e = ErrorMsg::parse(&buf[..n]).ok()?;
        (e.errno != 0).then_some(Error::Netlink {
            errno: e.errno,
            message: e.message,
            offset: e.offset,
        })
    }

    /// The handle's PID.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// How long each wait for a datagram may take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Changes the timeout.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// A fresh sequence number (never 0, which notifications use).
    pub fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1).max(1);
        self.seq
    }

    fn local_family(name: &str) -> Result<&'static FamilySpec, Error> {
        spec::family_by_name(name).ok_or_else(|| {
            Error::Protocol(format!(
                "unknown family {name}; known: {}",
                spec::family_names()
            ))
        })
    }

    /// The id of the family `name`, resolved through nlctrl once and cached.
    pub fn family_id(&mut self, name: &str) -> Result<u16, Error> {
        if name == ctrl::NAME {
            return Ok(ctrl::GENL_ID_CTRL);
        }
        if let Some(id) = self.family_ids.get(name) {
            return Ok(*id);
        }
        Client::local_family(name)?;
        let reply = self.transact(
            ctrl::NAME,
            ctrl::CTRL_CMD_GETFAMILY,
            vec![Attr::str(ctrl::CTRL_ATTR_FAMILY_NAME, name)],
        )?;
        let id = reply
            .attrs
            .get_u16(ctrl::CTRL_ATTR_FAMILY_ID)
            .ok_or_else(|| {
                Error::Protocol("CTRL_CMD_NEWFAMILY without CTRL_ATTR_FAMILY_ID".into())
            })?;
        self.family_ids.insert(name.to_string(), id);
        Ok(id)
    }

    /// Every family the daemon serves (an nlctrl dump).
    pub fn families(&mut self) -> Result<Vec<FamilyInfo>, Error> {
        self.dump(ctrl::NAME, ctrl::CTRL_CMD_GETFAMILY, vec![])?
            .iter()
            .map(|m| FamilyInfo::from_attrs(&m.attrs))
            .collect()
    }

    fn send_request(
        &mut self,
        family: &str,
        cmd: u8,
        attrs: Vec<Attr>,
        flags: u16,
    ) -> Result<(u32, &'static FamilySpec), Error> {
        let spec = Client::local_family(family)?;
        let id = self.family_id(family)?;
        let seq = self.next_seq();
        let msg = GenlMsg {
            family: id,
            flags,
            seq,
            pid: self.pid,
            cmd,
            version: spec.version,
            attrs,
        };
        if msg.attrs.iter().any(|a| !a.fits()) {
            return Err(Error::Protocol(
                "an attribute is longer than 65531 bytes".into(),
            ));
        }
        self.send_raw(&msg.emit())?;
        Ok((seq, spec))
    }

    /// Sends a request that expects one reply carrying data (a TRANSACTION)
    /// and returns that reply. `NLM_F_ACK` is set, so the ack that follows
    /// the reply is consumed too.
    pub fn transact(&mut self, family: &str, cmd: u8, attrs: Vec<Attr>) -> Result<GenlMsg, Error> {
        let (seq, spec) = self.send_request(family, cmd, attrs, NLM_F_REQUEST | NLM_F_ACK)?;
        let mut reply = None;
        loop {
            match self.next_message(seq, spec)? {
                Message::Genl(m) if reply.is_none() => reply = Some(m),
                Message::Genl(_) => {
                    return Err(Error::Protocol(
                        "more than one reply to a transaction".into(),
                    ))
                }
                Message::Error(e) if e.is_ack() => {
                    return reply.ok_or_else(|| {
                        Error::Protocol(
                            "the request was acknowledged without a reply; use write()".into(),
                        )
                    })
                }
                Message::Error(e) => return Err(e.into()),
                Message::Done(_) => {
                    return Err(Error::Protocol("NLMSG_DONE answering a transaction".into()))
                }
                Message::Noop { .. } => {}
            }
        }
    }

    /// Sends a request that only changes state (a WRITE) and waits for its
    /// ack. Reply data, if the command has any, is discarded.
    pub fn write(&mut self, family: &str, cmd: u8, attrs: Vec<Attr>) -> Result<(), Error> {
        let (seq, spec) = self.send_request(family, cmd, attrs, NLM_F_REQUEST | NLM_F_ACK)?;
        loop {
            match self.next_message(seq, spec)? {
                Message::Error(e) if e.is_ack() => return Ok(()),
                Message::Error(e) => return Err(e.into()),
                Message::Done(_) => {
                    return Err(Error::Protocol("NLMSG_DONE answering a write".into()))
                }
                Message::Genl(_) | Message::Noop { .. } => {}
            }
        }
    }

    /// Sends a dump request (`NLM_F_DUMP`) and collects every message until
    /// `NLMSG_DONE`.
    pub fn dump(&mut self, family: &str, cmd: u8, attrs: Vec<Attr>) -> Result<Vec<GenlMsg>, Error> {
        Ok(self.dump_checked(family, cmd, attrs)?.items)
    }

    /// [`Client::dump`], also telling whether the dump was interrupted by a
    /// change (`NLM_F_DUMP_INTR` on any part or on `NLMSG_DONE`).
    pub fn dump_checked(&mut self, family: &str, cmd: u8, attrs: Vec<Attr>) -> Result<Dump, Error> {
        let (seq, spec) = self.send_request(family, cmd, attrs, NLM_F_REQUEST | NLM_F_DUMP)?;
        let mut items = Vec::new();
        let mut interrupted = false;
        loop {
            match self.next_message(seq, spec)? {
                Message::Genl(m) => {
                    interrupted |= m.flags & NLM_F_DUMP_INTR != 0;
                    items.push(m)
                }
                Message::Done(d) if d.errno == 0 => {
                    return Ok(Dump {
                        items,
                        interrupted: interrupted || d.intr,
                    })
                }
                Message::Done(d) => {
                    return Err(Error::Netlink {
                        errno: d.errno,
                        message: d.message,
                        offset: d.offset,
                    })
                }
                // An ack after the dump's end would come later; one here is stray.
                Message::Error(e) if e.is_ack() => {}
                Message::Error(e) => return Err(e.into()),
                Message::Noop { .. } => {}
            }
        }
    }

    /// The next message carrying `seq`, decoded with `spec`'s policy
    /// (unknown attribute types kept as bytes). Others are dropped.
    fn next_message(&mut self, seq: u32, spec: &'static FamilySpec) -> Result<Message, Error> {
        loop {
            let Some(raw) = self.pending.pop_front() else {
                let datagram = self.recv_raw()?;
                for item in split_datagram(&datagram) {
                    let raw = item.map_err(|e| {
                        Error::Protocol(format!("bad datagram from the daemon: {}", e.message))
                    })?;
                    self.pending.push_back(raw.bytes.to_vec());
                }
                continue;
            };
            // split_datagram yields only messages of at least 16 bytes.
            let msg_seq = u32::from_ne_bytes([raw[8], raw[9], raw[10], raw[11]]);
            if msg_seq != seq {
                let Some(raw) = self.hold(msg_seq, raw) else {
                    continue;
                };
                if msg_seq == 0 {
                    // An error no request caused, other than the overrun
                    // report: the daemon refused the connection.
                    if let Ok(e) = ErrorMsg::parse(&raw) {
                        if e.errno != 0 && e.errno != libc::ENOBUFS {
                            return Err(Error::Netlink {
                                errno: e.errno,
                                message: e.message,
                                offset: e.offset,
                            });
                        }
                    }
                }
                if msg_seq == 0 && self.subscribed {
                    self.notifications.push_back(raw);
                }
                continue;
            }
            let msg = Message::parse(&raw, spec.attrs, Unknown::Keep)
                .map_err(|e| Error::Protocol(format!("bad message from the daemon: {e}")))?;
            return Ok(msg);
        }
    }

    /// The id of the multicast group `group` of `family`, as nlctrl lists
    /// it (`CTRL_ATTR_MCAST_GROUPS`).
    pub fn mcast_group_id(&mut self, family: &str, group: &str) -> Result<u32, Error> {
        let reply = self.transact(
            ctrl::NAME,
            ctrl::CTRL_CMD_GETFAMILY,
            vec![Attr::str(ctrl::CTRL_ATTR_FAMILY_NAME, family)],
        )?;
        let info = FamilyInfo::from_attrs(&reply.attrs)?;
        info.mcast_groups
            .iter()
            .find(|(name, _)| name == group)
            .map(|(_, id)| *id)
            .ok_or_else(|| {
                let names: Vec<&str> = info.mcast_groups.iter().map(|(n, _)| n.as_str()).collect();
                Error::Protocol(format!(
                    "family {family} has no multicast group {group}; it has: {}",
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                ))
            })
    }

    /// Subscribes the handle to the multicast group `id`
    /// (`overlay_handle` `JOIN_GROUP`). From then on notifications that
    /// arrive while waiting for replies are kept for
    /// [`Client::next_notification`].
    pub fn join_group(&mut self, id: u32) -> Result<(), Error> {
        self.write(
            handle::NAME,
            handle::CMD_JOIN_GROUP,
            vec![Attr::u32(handle::HANDLE_ATTR_MCAST_GROUP, id)],
        )?;
        self.subscribed = true;
        Ok(())
    }

    /// Unsubscribes the handle from the multicast group `id`
    /// (`overlay_handle` `LEAVE_GROUP`). Notifications already received
    /// stay readable.
    pub fn leave_group(&mut self, id: u32) -> Result<(), Error> {
        self.write(
            handle::NAME,
            handle::CMD_LEAVE_GROUP,
            vec![Attr::u32(handle::HANDLE_ATTR_MCAST_GROUP, id)],
        )
    }

    /// The next notification: one kept while waiting for a reply, or the
    /// next to arrive, waiting at most the timeout ([`Error::Timeout`]).
    /// Messages that are not notifications (late replies) are skipped.
    pub fn next_notification(&mut self) -> Result<Notification, Error> {
        loop {
            let raw = match self.notifications.pop_front() {
                Some(raw) => raw,
                None => {
                    let Some(raw) = self.pending.pop_front() else {
                        let datagram = self.recv_raw()?;
                        for item in split_datagram(&datagram) {
                            let raw = item.map_err(|e| {
                                Error::Protocol(format!(
                                    "bad datagram from the daemon: {}",
                                    e.message
                                ))
                            })?;
                            self.pending.push_back(raw.bytes.to_vec());
                        }
                        continue;
                    };
                    let msg_seq = u32::from_ne_bytes([raw[8], raw[9], raw[10], raw[11]]);
                    if msg_seq != 0 {
                        // A reply to no request in flight is dropped.
                        let _ = self.hold(msg_seq, raw);
                        continue;
                    }
                    raw
                }
            };
            let kind = u16::from_ne_bytes([raw[4], raw[5]]);
            let policy = spec::family_by_id(kind).map_or(&[][..], |f| f.attrs);
            let msg = Message::parse(&raw, policy, Unknown::Keep)
                .map_err(|e| Error::Protocol(format!("bad notification from the daemon: {e}")))?;
            match msg {
                Message::Genl(m) => return Ok(Notification::Event(m)),
                Message::Error(e) if e.errno == libc::ENOBUFS => return Ok(Notification::Overrun),
                Message::Error(e) => return Err(e.into()),
                Message::Done(_) | Message::Noop { .. } => {}
            }
        }
    }

    /// Sends a request without waiting for its answer, so that several
    /// can be in flight on the connection (pipelining), and returns its
    /// sequence number. `NLM_F_ACK` is set: every request sent this way
    /// ends with an `NLMSG_ERROR`, its ack or its error, which
    /// [`Client::finish`] waits for. The daemon answers in order. Other
    /// requests ([`Client::transact`], [`Client::write`],
    /// [`Client::dump`]) may be made meanwhile: the answers of started
    /// requests that arrive while they wait are kept for
    /// [`Client::finish`].
    pub fn start(&mut self, family: &str, cmd: u8, attrs: Vec<Attr>) -> Result<u32, Error> {
        let (seq, _) = self.send_request(family, cmd, attrs, NLM_F_REQUEST | NLM_F_ACK)?;
        self.started.push_back(seq);
        Ok(seq)
    }

    /// Waits for the oldest request sent by [`Client::start`] and not yet
    /// finished to be answered, and returns its sequence number and
    /// outcome: `Ok` for its ack, the daemon's error otherwise. Replies
    /// carrying data are read and dropped, and so are the late answers of
    /// requests given up; notifications are kept for
    /// [`Client::next_notification`].
    ///
    /// When the wait itself fails (no answer within the timeout, the
    /// connection lost, a malformed datagram), every request started and
    /// not finished is given up: nothing more is known of them, and their
    /// answers, should they come later, are dropped. The connection can go
    /// on serving new requests.
    pub fn finish(&mut self) -> Result<(u32, Result<(), Error>), Error> {
        let Some(&seq) = self.started.front() else {
            return Err(Error::Protocol(
                "finish() without a request started and not yet finished".into(),
            ));
        };
        let answer = self.answer_of(seq);
        if answer.is_err() {
            self.started.clear();
            self.held.clear();
        } else {
            self.started.pop_front();
        }
        answer.map(|outcome| (seq, outcome))
    }

    /// The outcome the `NLMSG_ERROR` answering the started request `seq`
    /// tells.
    fn answer_of(&mut self, seq: u32) -> Result<Result<(), Error>, Error> {
        loop {
            let Some(raw) = self.held.pop_front().or_else(|| self.pending.pop_front()) else {
                let datagram = self.recv_raw()?;
                for item in split_datagram(&datagram) {
                    let raw = item.map_err(|e| {
                        Error::Protocol(format!("bad datagram from the daemon: {}", e.message))
                    })?;
                    self.pending.push_back(raw.bytes.to_vec());
                }
                continue;
            };
            let msg_seq = u32::from_ne_bytes([raw[8], raw[9], raw[10], raw[11]]);
            let kind = u16::from_ne_bytes([raw[4], raw[5]]);
            if msg_seq == 0 {
                if self.subscribed {
                    self.notifications.push_back(raw);
                }
                continue;
            }
            if kind != NLMSG_ERROR {
                continue;
            }
            if msg_seq != seq {
                if self.started.contains(&msg_seq) {
                    return Err(Error::Protocol(format!(
                        "the daemon answered request {msg_seq} before request {seq}"
                    )));
                }
                // The late answer of a request given up after a timeout.
                continue;
            }
            let e = ErrorMsg::parse(&raw)
                .map_err(|e| Error::Protocol(format!("bad message from the daemon: {e}")))?;
            return Ok(if e.errno == 0 { Ok(()) } else { Err(e.into()) });
        }
    }

    /// Keeps `raw`, of sequence number `seq`, for [`Client::finish`] when
    /// it answers a request started and not yet finished; else gives it
    /// back.
    fn hold(&mut self, seq: u32, raw: Vec<u8>) -> Option<Vec<u8>> {
        if seq != 0 && self.started.contains(&seq) {
            self.held.push_back(raw);
            None
        } else {
            Some(raw)
        }
    }

    /// Sends raw bytes as one datagram (for tests that send malformed
    /// requests).
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<(), Error> {
        if let Some(tap) = self.tap.as_mut() {
            tap.sent(bytes);
        }
        sys::send(self.fd.as_fd(), bytes).map_err(Error::Io)
    }

    /// Receives one raw datagram, waiting at most the timeout. Messages
    /// already received but not consumed by a request are not returned.
    pub fn recv_raw(&mut self) -> Result<Vec<u8>, Error> {
        if !sys::wait_readable(self.fd.as_fd(), self.timeout)? {
            return Err(Error::Timeout);
        }
        let datagram = sys::recv(self.fd.as_fd())?;
        if let Some(tap) = self.tap.as_mut() {
            tap.received(&datagram);
        }
        Ok(datagram)
    }
}

impl AsFd for Client {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests;
