//! The control server: a Unix SOCK_SEQPACKET socket carrying generic
//! netlink, one event loop on `polling`, connections in a `slab`.
//!
//! Every connection is an open handle with its own non-zero PID. A
//! datagram may hold several requests; each is answered, in order. Replies
//! are queued per connection and written without blocking: a client that
//! does not read its replies stops being read from once its queue passes
//! [`OUT_QUEUE_CAP`], and never stalls the daemon or other clients.
//!
//! The socket file is created mode 0660, owned by root and the group given
//! at bind: only members of that group (and root) can connect at all. Each
//! connection's privilege is read once at accept ([`cred`]); a read-only
//! peer is refused every admin command by nlproto's validation, before any
//! handler runs.
//!
//! A connection may join multicast groups; the notifications a request
//! causes are queued on every member connection (bounded, see
//! [`crate::devices::notify::OutQueue`]) before the request's own reply, so a member
//! that made the change sees the notification first, as on Linux.
//!
//! Connections are polled edge-triggered for both directions. A writable
//! edge comes every time the client reads a datagram, which is what paces
//! dumps: while a dump is in progress on a connection, its next part is
//! produced only while little of what was sent is unread ([`DUMP_AHEAD`]:
//! a few parts), and no further request of that connection is read until
//! the dump is over, so replies stay in order.

pub mod cred;
mod handle;
pub mod handlers;
mod overlay;
mod reply;
mod target;

pub use reply::DUMP_PART_LIMIT;

use crate::{
    devices::notify::{Delivery, OutQueue},
    stats::{add, ServerStats},
    sys::{self, signal::ExitSignals},
};
use nix::sys::signal::Signal;
use nlproto::{server::pack_datagrams, server::DEFAULT_DATAGRAM_LIMIT, sys as seqpacket, Message};
use polling::{Event, Events, PollMode, Poller};
use slab::Slab;
use std::{
    collections::{BTreeSet, VecDeque},
    io,
    os::fd::{AsFd, AsRawFd, OwnedFd},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

/// Largest request datagram accepted.
pub const MAX_DATAGRAM: usize = 64 * 1024;
/// Connections served at once unless `--max-connections` says otherwise.
/// Each costs a descriptor and, at most, [`OUT_QUEUE_CAP`] of queued
/// replies; past the limit a new connection is told why and closed.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// Reply bytes a connection may have queued before the daemon stops
/// reading its requests.
pub const OUT_QUEUE_CAP: usize = 4 * 1024 * 1024;

/// How often connections with a dump in progress are looked at when no
/// event comes.
const DUMP_RECHECK: Duration = Duration::from_millis(100);
/// How far a paced dump may run ahead of its client: the next part is
/// produced while less than this is sent and unread (the socket's
/// `SIOCOUTQ`, which counts each datagram's whole buffer, about 1.5 times
/// a 4 KiB part). Linux's netlink goes on with a dump while the reader's
/// queue is under half its receive buffer; here a few parts in flight
/// spare a round trip per part, and a dump never holds more than this.
const DUMP_AHEAD: usize = 32 * 1024;

/// Request datagrams read per `recvmmsg`, and reply datagrams written per
/// `sendmmsg`: a pipelining client is served with a system call per
/// batch, not per datagram.
const BATCH: usize = 16;

const LISTENER_KEY: usize = usize::MAX - 1;
const SIGNAL_KEY: usize = usize::MAX - 2;
const ADDR_KEY: usize = usize::MAX - 3;

/// What the server knows of a connection when it hands over a request.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    /// The handle's PID.
    pub pid: u32,
    /// What the peer process may run (decided at accept).
    pub access: nlproto::spec::Privilege,
}

/// The request side the server drives: answers datagrams, continues dumps,
/// learns of closed connections.
pub trait Dispatch {
    /// Answers the messages of `datagram` into `out`. It may stop at a
    /// request that is not finished (a dump, a wait): [`Dispatch::busy`]
    /// is then true, and the rest of the datagram is answered by
    /// [`Dispatch::resume`] calls.
    fn datagram(&mut self, peer: Peer, datagram: &[u8], out: &mut Outbox);
    /// Whether a request of the connection is not finished.
    fn busy(&self, peer: Peer) -> bool;
    /// Takes the unfinished request a step further: the next part of a
    /// dump, the answer of a wait that is over (and, once it is finished,
    /// answers the rest of its datagram).
    fn resume(&mut self, peer: Peer, out: &mut Outbox);
    /// The connection with this PID went away.
    fn closed(&mut self, peer: Peer);
    /// Addresses of the host came or went (route netlink).
    fn addresses_changed(&mut self, _changes: &[sys::rtnl::AddrChange]) {}
    /// The notifications of changes made outside any request (a device
    /// degraded by its packet path or its underlay, entries invalidated
    /// by a lookup plugin), for [`Outgoing::Notify`] only. Called each time
    /// the loop wakes.
    fn changes(&mut self, _out: &mut Outbox) {}
}

/// What answering a request produces, in order.
#[derive(Debug)]
pub enum Outgoing {
    /// A reply message for the requesting connection, packed with its
    /// neighbours into datagrams.
    Reply(Message),
    /// A datagram for the requesting connection, sent as it is (a dump part).
    Datagram(Vec<u8>),
    /// A notification datagram for every member of the group.
    Notify {
        /// The multicast group.
        group: u32,
        /// The message, emitted.
        datagram: Vec<u8>,
    },
    /// The requesting connection joins a group.
    Join(u32),
    /// The requesting connection leaves a group.
    Leave(u32),
}

/// The output of [`Dispatch`] calls.
#[derive(Debug, Default)]
pub struct Outbox {
    /// The items, in the order they happened.
    pub items: Vec<Outgoing>,
}

impl Outbox {
    /// Appends an item.
    pub fn push(&mut self, item: Outgoing) {
        self.items.push(item);
    }

    /// Appends reply messages.
    pub fn replies(&mut self, messages: impl IntoIterator<Item = Message>) {
        self.items.extend(messages.into_iter().map(Outgoing::Reply));
    }
}

struct Conn {
    fd: OwnedFd,
    pid: u32,
    access: nlproto::spec::Privilege,
    out: OutQueue,
    groups: BTreeSet<u32>,
    /// Request datagrams read behind a request that is not finished.
    input: VecDeque<Vec<u8>>,
}

impl Conn {
    fn peer(&self) -> Peer {
        Peer {
            pid: self.pid,
            access: self.access,
        }
    }
}

/// The descriptors the loop watches besides connections: the exit
/// signals, and route netlink's address changes when the subscription
/// works (without it the daemon serves as before, only blind to a lost
/// underlay address).
struct Sources {
    signals: ExitSignals,
    addrs: Option<sys::rtnl::AddrWatch>,
}

impl Sources {
    fn register(poller: &Poller) -> io::Result<Sources> {
        let signals = ExitSignals::new()?;
        // SAFETY: the descriptors outlive their registration: `unregister`
        // deletes them before they drop.
        unsafe { poller.add(&signals.as_fd(), Event::readable(SIGNAL_KEY))? };
        let addrs = match sys::rtnl::AddrWatch::new() {
            // SAFETY: as above.
            Ok(w) => match unsafe { poller.add(&w.fd(), Event::readable(ADDR_KEY)) } {
                Ok(()) => Some(w),
                Err(e) => {
                    tracing::warn!("cannot poll address changes: {e}");
                    None
                }
            },
            Err(e) => {
                tracing::warn!("cannot subscribe to address changes: {e}; a lost underlay address will not show");
                None
            }
        };
        Ok(Sources { signals, addrs })
    }

    fn unregister(&self, poller: &Poller) {
        let _ = poller.delete(self.signals.as_fd());
        if let Some(w) = &self.addrs {
            let _ = poller.delete(w.fd());
        }
    }

    /// The exit signal that came, if one did.
    fn exit_signal(&self, poller: &Poller) -> io::Result<Option<Signal>> {
        let sig = self.signals.read();
        if sig.is_none() {
            poller.modify(self.signals.as_fd(), Event::readable(SIGNAL_KEY))?;
        }
        Ok(sig)
    }

    fn addresses_changed(&self, poller: &Poller, dispatch: &mut impl Dispatch) -> io::Result<()> {
        if let Some(w) = &self.addrs {
            let changes = w.read();
            if !changes.is_empty() {
                dispatch.addresses_changed(&changes);
            }
            poller.modify(w.fd(), Event::readable(ADDR_KEY))?;
        }
        Ok(())
    }
}

/// When paced dumps were last looked at without an edge.
struct Pacer {
    last_recheck: Instant,
    /// The last wait ended without an event (a wakeup or the timeout).
    woken: bool,
}

/// The listening socket and its connections.
pub struct Server {
    path: PathBuf,
    listener: OwnedFd,
    poller: std::sync::Arc<Poller>,
    conns: Slab<Conn>,
    max_conns: usize,
    /// When refusing a connection was last logged.
    refused_logged: Option<Instant>,
    next_pid: u32,
    stats: std::sync::Arc<ServerStats>,
    /// The receive buffers of one `recvmmsg`, [`MAX_DATAGRAM`] each.
    rx: Vec<Vec<u8>>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Another daemon answers on the socket path.
    #[error("another overlayd is already listening on {0}; stop it or use --socket")]
    InUse(PathBuf),
    /// Something other than a socket is at the path.
    #[error("{0} exists and is not a socket; remove it or choose another path with --socket")]
    NotASocket(PathBuf),
    /// A system call failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// The step.
        what: &'static str,
        /// The socket path.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

impl Server {
    /// Binds the socket at `path`, creating its directory, with mode 0660
    /// and group `gid`. A socket file nobody answers on (left by a killed
    /// daemon) is replaced.
    pub fn bind(path: &Path, gid: nix::unistd::Gid) -> Result<Server, ServerError> {
        let io_err = |what: &'static str| {
            let path = path.to_path_buf();
            move |source: io::Error| ServerError::Io { what, path, source }
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io_err("cannot create the directory of"))?;
        }
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if !std::os::unix::fs::FileTypeExt::is_socket(&meta.file_type()) {
                return Err(ServerError::NotASocket(path.to_path_buf()));
            }
            if seqpacket::connect(path).is_ok() {
                return Err(ServerError::InUse(path.to_path_buf()));
            }
            std::fs::remove_file(path).map_err(io_err("cannot remove stale socket"))?;
        }
        let fd = sys::socket::listen_private(path, 128).map_err(io_err("cannot listen on"))?;
        nix::unistd::chown(path, None, Some(gid))
            .map_err(|e| io_err("cannot give the group (choose it with --group) to")(e.into()))?;
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o660))
            .map_err(io_err("cannot set the mode of"))?;
        let poller =
            std::sync::Arc::new(Poller::new().map_err(io_err("cannot create poller for"))?);
        // SAFETY: the listener is deleted from the poller before it is dropped (in Drop).
        unsafe { poller.add(&fd, Event::readable(LISTENER_KEY)) }.map_err(io_err("cannot poll"))?;
        Ok(Server {
            path: path.to_path_buf(),
            listener: fd,
            poller,
            conns: Slab::new(),
            max_conns: DEFAULT_MAX_CONNECTIONS,
            refused_logged: None,
            next_pid: 1,
            stats: Default::default(),
            rx: vec![vec![0; MAX_DATAGRAM]; BATCH],
        })
    }

    /// A function that wakes the serving loop from another thread, so
    /// that it looks at every connection waiting for something (a parked
    /// `LOOKUP` whose request arrived).
    pub fn waker(&self) -> Box<dyn Fn() + Send + Sync> {
        let poller = self.poller.clone();
        Box::new(move || {
            let _ = poller.notify();
        })
    }

    /// The server's counters and open handles, as `SERVER_STATS` reports
    /// them (see [`handlers::Handlers::set_server_stats`]).
    pub fn stats(&self) -> std::sync::Arc<ServerStats> {
        self.stats.clone()
    }

    /// Serves at most `n` connections at once (at least 1).
    pub fn set_max_connections(&mut self, n: usize) {
        self.max_conns = n.max(1);
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serves until SIGTERM, SIGINT or SIGHUP. The caller must have blocked
    /// those signals in every thread (see
    /// [`sys::signal::block_exit_signals`]).
    pub fn run(&mut self, dispatch: &mut impl Dispatch) -> io::Result<Signal> {
        let sources = Sources::register(&self.poller)?;
        let result = self.serve(&sources, dispatch);
        sources.unregister(&self.poller);
        result
    }

    /// The event loop: connections, the listener, address changes, until
    /// an exit signal.
    fn serve(&mut self, sources: &Sources, dispatch: &mut impl Dispatch) -> io::Result<Signal> {
        let mut events = Events::new();
        let mut pacer = Pacer {
            last_recheck: Instant::now(),
            woken: false,
        };
        loop {
            events.clear();
            let timeout = self.recheck_dumps(&mut pacer, dispatch);
            match self.poller.wait(&mut events, timeout) {
                // Woken by `waker` (or the recheck timeout): look at the
                // waiting connections on the next turn.
                Ok(0) => pacer.woken = true,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            let mut stop = None;
            for ev in events.iter() {
                match ev.key {
                    LISTENER_KEY => {
                        self.accept_all();
                        self.poller
                            .modify(&self.listener, Event::readable(LISTENER_KEY))?;
                    }
                    ADDR_KEY => sources.addresses_changed(&self.poller, dispatch)?,
                    SIGNAL_KEY => stop = sources.exit_signal(&self.poller)?,
                    key => self.service(key, dispatch),
                }
            }
            self.broadcast(dispatch);
            if let Some(sig) = stop {
                return Ok(sig);
            }
        }
    }

    /// Sends the notifications of changes made outside any request to
    /// every member of their groups.
    fn broadcast(&mut self, dispatch: &mut impl Dispatch) {
        let mut out = Outbox::default();
        dispatch.changes(&mut out);
        if out.items.is_empty() {
            return;
        }
        let mut touched = BTreeSet::new();
        for item in out.items {
            if let Outgoing::Notify { group, datagram } = item {
                // No requester: every member is written to.
                self.notify(usize::MAX, group, datagram, &mut touched);
            }
        }
        self.flush_touched(touched, dispatch);
    }

    /// Writes what is queued on the connections in `touched` (the
    /// notifications just added to them), closing those whose peer is gone.
    fn flush_touched(&mut self, touched: BTreeSet<usize>, d: &mut impl Dispatch) {
        for k in touched {
            if let Some(conn) = self.conns.get_mut(k) {
                if !flush(conn) {
                    self.close(k, d);
                }
            }
        }
    }

    /// While a dump is paced, looks at it now and then even without an
    /// edge (and even while other clients keep the loop busy), so that a
    /// wakeup lost to a race can only delay it. Returns how long the next
    /// wait may last.
    fn recheck_dumps(
        &mut self,
        pacer: &mut Pacer,
        dispatch: &mut impl Dispatch,
    ) -> Option<Duration> {
        let dumping: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| dispatch.busy(c.peer()))
            .map(|(k, _)| k)
            .collect();
        if dumping.is_empty() {
            pacer.last_recheck = Instant::now();
        } else if pacer.last_recheck.elapsed() >= DUMP_RECHECK || pacer.woken {
            pacer.last_recheck = Instant::now();
            for key in dumping.iter().copied() {
                self.service(key, dispatch);
            }
        }
        pacer.woken = false;
        (!dumping.is_empty()).then_some(DUMP_RECHECK)
    }

    fn accept_all(&mut self) {
        loop {
            match seqpacket::accept(self.listener.as_fd(), true) {
                Ok(Some(fd)) if self.conns.len() >= self.max_conns => self.refuse(fd),
                Ok(Some(fd)) => {
                    let pid = self.next_pid;
                    self.next_pid = self.next_pid.checked_add(1).unwrap_or(1);
                    let peer = cred::peer_cred(&fd);
                    let entry = self.conns.vacant_entry();
                    let key = entry.key();
                    // Edge-triggered: a writable edge marks every datagram
                    // the client reads, which paces dumps (see the module
                    // documentation).
                    // SAFETY: the fd is deleted from the poller before the Conn drops (close()).
                    if let Err(e) = unsafe {
                        self.poller
                            .add_with_mode(&fd, Event::all(key), PollMode::Edge)
                    } {
                        tracing::warn!("cannot poll a new connection: {e}");
                        continue;
                    }
                    entry.insert(Conn {
                        fd,
                        pid,
                        access: peer.access,
                        out: OutQueue::new(),
                        groups: BTreeSet::new(),
                        input: VecDeque::new(),
                    });
                    add(&self.stats.counters.connections, 1);
                    self.count_handles();
                    tracing::debug!(
                        pid,
                        peer_pid = peer.pid,
                        peer_uid = peer.uid,
                        access = peer.access.name(),
                        "connection opened"
                    );
                }
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    return;
                }
            }
        }
    }

    /// Tells a connection past the limit why it is refused (one
    /// `NLMSG_ERROR`, sent without waiting), then closes it.
    fn refuse(&mut self, fd: OwnedFd) {
        let max = self.max_conns;
        let msg = nlproto::msg::ErrorMsg {
            seq: 0,
            pid: 0,
            errno: libc::EUSERS,
            request: Default::default(),
            message: Some(format!(
                "overlayd serves at most {max} connections at once and all are in use; \
                 close idle clients or raise --max-connections"
            )),
            offset: None,
        };
        let _ = seqpacket::try_send(fd.as_fd(), &nlproto::msg::Emit::emit(&msg));
        // Closing a socket with unread requests makes the client's next
        // read fail with ECONNRESET before it sees the reason: refuse
        // further sends (the client's fail with EPIPE and it reads the
        // reason), and drop what came before.
        let _ = nix::sys::socket::shutdown(fd.as_raw_fd(), nix::sys::socket::Shutdown::Read);
        let mut scratch = [0u8; 256];
        while let Ok(Some(n)) = seqpacket::try_recv(fd.as_fd(), &mut scratch) {
            if n == 0 {
                break;
            }
        }
        // Logged once per burst, not once per refused client.
        let now = Instant::now();
        if self
            .refused_logged
            .is_none_or(|t| now.duration_since(t) > Duration::from_secs(10))
        {
            self.refused_logged = Some(now);
            tracing::warn!("refusing connections: {max} are open, the --max-connections limit");
        }
    }

    /// Serves one connection after an edge: writes what is queued, moves a
    /// dump on while the client keeps up with it, answers requests while
    /// there is room and no request unfinished. Edge-triggered polling
    /// means it must go on until one of those is blocked. Requests are read
    /// [`BATCH`] datagrams at a time, and their replies written the same
    /// way; datagrams read behind a request that is not finished wait in
    /// the connection's input until it is.
    fn service(&mut self, key: usize, d: &mut impl Dispatch) {
        let mut rx = std::mem::take(&mut self.rx);
        let mut touched = BTreeSet::new();
        self.service_with(key, d, &mut rx, &mut touched);
        self.rx = rx;
        // Notifications queued on other members go out once per edge.
        self.flush_touched(touched, d);
    }

    fn service_with(
        &mut self,
        key: usize,
        d: &mut impl Dispatch,
        rx: &mut [Vec<u8>],
        touched: &mut BTreeSet<usize>,
    ) {
        loop {
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            if !flush(conn) {
                self.close(key, d);
                return;
            }
            let peer = conn.peer();
            if d.busy(peer) {
                if !conn.out.is_empty() || sys::socket::unread_bytes(conn.fd.as_fd()) >= DUMP_AHEAD
                {
                    return;
                }
                let mut out = Outbox::default();
                d.resume(peer, &mut out);
                if out.items.is_empty() {
                    // Still waiting (a parked LOOKUP): nothing to send.
                    return;
                }
                self.deliver(key, out, touched);
            } else if let Some(datagram) = conn.input.pop_front() {
                self.answer(key, peer, &datagram, d, touched);
            } else if conn.out.bytes() >= OUT_QUEUE_CAP {
                return;
            } else {
                let lens = match seqpacket::try_recv_many(conn.fd.as_fd(), rx) {
                    Ok(lens) if lens.is_empty() => return,
                    Ok(lens) => lens,
                    Err(_) => {
                        self.close(key, d);
                        return;
                    }
                };
                if !self.take_batch(key, peer, rx, &lens, d, touched) {
                    return;
                }
            }
        }
    }

    /// Answers the datagrams of one read, in order; those behind a request
    /// that is not finished wait in the connection's input. Returns false
    /// when the connection hung up (and is closed).
    fn take_batch(
        &mut self,
        key: usize,
        peer: Peer,
        rx: &[Vec<u8>],
        lens: &[usize],
        d: &mut impl Dispatch,
        touched: &mut BTreeSet<usize>,
    ) -> bool {
        for (buf, &len) in rx.iter().zip(lens) {
            let fd = self.conns[key].fd.as_fd();
            // A zero-length datagram also reads as 0: only a hang-up closes
            // the connection; the empty datagram gets its error.
            if len == 0 && seqpacket::hung_up(fd) {
                self.close(key, d);
                return false;
            }
            // A datagram longer than the buffer arrives cut; its last
            // message then overruns what is there and gets the ordinary
            // length error.
            let datagram = &buf[..len.min(buf.len())];
            if d.busy(peer) {
                self.conns[key].input.push_back(datagram.to_vec());
            } else {
                self.answer(key, peer, datagram, d, touched);
            }
        }
        true
    }

    /// Answers one request datagram and queues what it produced.
    fn answer(
        &mut self,
        key: usize,
        peer: Peer,
        datagram: &[u8],
        d: &mut impl Dispatch,
        touched: &mut BTreeSet<usize>,
    ) {
        let requests = nlproto::server::split_datagram(datagram).count();
        add(&self.stats.counters.requests, requests as u64);
        let mut out = Outbox::default();
        d.datagram(peer, datagram, &mut out);
        self.deliver(key, out, touched);
    }

    /// Queues what a request produced: replies on the requester, each
    /// notification on every member of its group (the requester's pending
    /// replies first, so they keep their order). The members other than
    /// the requester are added to `touched`, to be written to.
    fn deliver(&mut self, key: usize, out: Outbox, touched: &mut BTreeSet<usize>) {
        let mut replies: Vec<Message> = Vec::new();
        for item in out.items {
            match item {
                Outgoing::Reply(m) => {
                    if matches!(&m, Message::Error(e) if e.errno != 0) {
                        add(&self.stats.counters.errors, 1);
                    }
                    replies.push(m)
                }
                Outgoing::Datagram(datagram) => {
                    let conn = &mut self.conns[key];
                    queue_replies(conn, &mut replies);
                    conn.out.push_reply(datagram);
                }
                Outgoing::Notify { group, datagram } => {
                    let conn = &mut self.conns[key];
                    if conn.groups.contains(&group) {
                        queue_replies(conn, &mut replies);
                    }
                    self.notify(key, group, datagram, touched);
                }
                Outgoing::Join(g) => {
                    self.conns[key].groups.insert(g);
                }
                Outgoing::Leave(g) => {
                    self.conns[key].groups.remove(&g);
                }
            }
        }
        queue_replies(&mut self.conns[key], &mut replies);
    }

    /// Queues a notification on every member of `group`.
    fn notify(&mut self, key: usize, group: u32, datagram: Vec<u8>, touched: &mut BTreeSet<usize>) {
        for (k, c) in self.conns.iter_mut() {
            if !c.groups.contains(&group) {
                continue;
            }
            if k != key {
                touched.insert(k);
            }
            match c.out.push_notification(datagram.clone()) {
                Delivery::Queued => {}
                Delivery::Overrun => {
                    add(&self.stats.counters.notifications_dropped, 1);
                    tracing::warn!(
                        pid = c.pid,
                        "handle does not read its notifications: dropping them until its queue drains"
                    );
                }
                Delivery::Dropped => add(&self.stats.counters.notifications_dropped, 1),
            }
        }
    }

    fn close(&mut self, key: usize, d: &mut impl Dispatch) {
        let Some(conn) = self.conns.try_remove(key) else {
            return;
        };
        let _ = self.poller.delete(&conn.fd);
        self.count_handles();
        tracing::debug!(pid = conn.pid, "connection closed");
        d.closed(Peer {
            pid: conn.pid,
            access: conn.access,
        });
    }
}

impl Server {
    fn count_handles(&self) {
        self.stats.handles.store(
            self.conns.len() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        for conn in self.conns.drain() {
            let _ = self.poller.delete(&conn.fd);
        }
        let _ = self.poller.delete(&self.listener);
        let _ = std::fs::remove_file(&self.path);
    }
}

fn queue_replies(conn: &mut Conn, replies: &mut Vec<Message>) {
    for datagram in pack_datagrams(&std::mem::take(replies), DEFAULT_DATAGRAM_LIMIT) {
        conn.out.push_reply(datagram);
    }
}

/// Writes queued datagrams without blocking, [`BATCH`] per system call.
/// Returns false when the peer is gone.
fn flush(conn: &mut Conn) -> bool {
    while !conn.out.is_empty() {
        let batch: Vec<&[u8]> = conn.out.iter().take(BATCH).collect();
        match seqpacket::try_send_many(conn.fd.as_fd(), &batch) {
            Ok(n) => {
                let full = n < batch.len();
                for _ in 0..n {
                    conn.out.pop();
                }
                if full {
                    return true;
                }
            }
            Err(_) => return false,
        }
    }
    true
}
