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

pub mod cred;
pub mod handlers;

use nix::sys::{
    signal::{SigSet, Signal},
    signalfd::{SfdFlags, SignalFd},
    socket::{
        accept4, bind, listen, recv, send, socket, AddressFamily, Backlog, MsgFlags, SockFlag,
        SockType, UnixAddr,
    },
};
use polling::{Event, Events, Poller};
use slab::Slab;
use std::{
    collections::VecDeque,
    io,
    os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd},
    path::{Path, PathBuf},
};

/// Largest request datagram accepted.
pub const MAX_DATAGRAM: usize = 64 * 1024;
/// Reply bytes a connection may have queued before the daemon stops
/// reading its requests.
pub const OUT_QUEUE_CAP: usize = 4 * 1024 * 1024;

const LISTENER_KEY: usize = usize::MAX - 1;
const SIGNAL_KEY: usize = usize::MAX - 2;

/// What the server knows of a connection when it hands over a request.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    /// The handle's PID.
    pub pid: u32,
    /// What the peer process may run (decided at accept).
    pub access: nlproto::spec::Privilege,
}

/// The request side the server drives: answers datagrams, learns of closed
/// connections.
pub trait Dispatch {
    /// Answers every message of `datagram`, appending reply datagrams to `out`.
    fn datagram(&mut self, peer: Peer, datagram: &[u8], out: &mut Vec<Vec<u8>>);
    /// The connection with this PID went away.
    fn closed(&mut self, peer: Peer);
}

struct Conn {
    fd: OwnedFd,
    pid: u32,
    access: nlproto::spec::Privilege,
    out: VecDeque<Vec<u8>>,
    out_bytes: usize,
}

/// The listening socket and its connections.
pub struct Server {
    path: PathBuf,
    listener: OwnedFd,
    poller: Poller,
    conns: Slab<Conn>,
    next_pid: u32,
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
            if connect_seqpacket(path).is_ok() {
                return Err(ServerError::InUse(path.to_path_buf()));
            }
            std::fs::remove_file(path).map_err(io_err("cannot remove stale socket"))?;
        }
        let fd = socket(
            AddressFamily::Unix,
            SockType::SeqPacket,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(|e| io_err("cannot create socket")(e.into()))?;
        let addr = UnixAddr::new(path).map_err(|e| io_err("invalid socket path")(e.into()))?;
        // The file is created with no access for others at all, so nobody
        // outside root's group can connect before the group is set.
        let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o117));
        let bound = bind(fd.as_raw_fd(), &addr);
        nix::sys::stat::umask(old);
        bound.map_err(|e| io_err("cannot bind")(e.into()))?;
        nix::unistd::chown(path, None, Some(gid))
            .map_err(|e| io_err("cannot give the group (choose it with --group) to")(e.into()))?;
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o660))
            .map_err(io_err("cannot set the mode of"))?;
        listen(&fd, Backlog::new(128).expect("valid backlog"))
            .map_err(|e| io_err("cannot listen on")(e.into()))?;
        let poller = Poller::new().map_err(io_err("cannot create poller for"))?;
        // SAFETY: the listener is deleted from the poller before it is dropped (in Drop).
        unsafe { poller.add(&fd, Event::readable(LISTENER_KEY)) }.map_err(io_err("cannot poll"))?;
        Ok(Server {
            path: path.to_path_buf(),
            listener: fd,
            poller,
            conns: Slab::new(),
            next_pid: 1,
        })
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serves until SIGTERM, SIGINT or SIGHUP. The caller must have blocked
    /// those signals in every thread (see [`block_exit_signals`]).
    pub fn run(&mut self, dispatch: &mut impl Dispatch) -> io::Result<Signal> {
        let mut mask = SigSet::empty();
        for s in EXIT_SIGNALS {
            mask.add(s);
        }
        let sigfd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)?;
        // SAFETY: sigfd outlives its registration: it is deleted before returning.
        unsafe {
            self.poller
                .add(sigfd.as_fd().as_raw_fd(), Event::readable(SIGNAL_KEY))?
        };
        let mut events = Events::new();
        let result = loop {
            events.clear();
            match self.poller.wait(&mut events, None) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => break Err(e),
            }
            let mut stop = None;
            for ev in events.iter() {
                match ev.key {
                    LISTENER_KEY => {
                        self.accept_all();
                        self.poller
                            .modify(&self.listener, Event::readable(LISTENER_KEY))?;
                    }
                    SIGNAL_KEY => match sigfd.read_signal() {
                        Ok(Some(info)) => {
                            stop = Signal::try_from(info.ssi_signo as i32).ok();
                        }
                        _ => {
                            self.poller
                                .modify(sigfd.as_fd(), Event::readable(SIGNAL_KEY))?;
                        }
                    },
                    key => self.service(key, ev.readable, ev.writable, dispatch),
                }
            }
            if let Some(sig) = stop {
                break Ok(sig);
            }
        };
        let _ = self.poller.delete(sigfd.as_fd());
        result
    }

    fn accept_all(&mut self) {
        loop {
            match accept4(
                self.listener.as_raw_fd(),
                SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            ) {
                Ok(raw) => {
                    // SAFETY: accept4 returned a new descriptor that nothing else owns.
                    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
                    let pid = self.next_pid;
                    self.next_pid = self.next_pid.checked_add(1).unwrap_or(1);
                    let peer = cred::peer_cred(&fd);
                    let entry = self.conns.vacant_entry();
                    let key = entry.key();
                    // SAFETY: the fd is deleted from the poller before the Conn drops (close()).
                    if let Err(e) = unsafe { self.poller.add(&fd, Event::readable(key)) } {
                        tracing::warn!("cannot poll a new connection: {e}");
                        continue;
                    }
                    entry.insert(Conn {
                        fd,
                        pid,
                        access: peer.access,
                        out: VecDeque::new(),
                        out_bytes: 0,
                    });
                    tracing::debug!(
                        pid,
                        peer_pid = peer.pid,
                        peer_uid = peer.uid,
                        access = peer.access.name(),
                        "connection opened"
                    );
                }
                Err(nix::errno::Errno::EAGAIN) => return,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    return;
                }
            }
        }
    }

    fn service(&mut self, key: usize, readable: bool, writable: bool, d: &mut impl Dispatch) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let mut alive = true;
        if writable {
            alive = flush(conn);
        }
        if alive && readable {
            alive = read_requests(conn, d);
            if alive {
                alive = flush(conn);
            }
        }
        if !alive {
            self.close(key, d);
            return;
        }
        let conn = &self.conns[key];
        let interest = Event::new(key, conn.out_bytes < OUT_QUEUE_CAP, !conn.out.is_empty());
        if self.poller.modify(&conn.fd, interest).is_err() {
            self.close(key, d);
        }
    }

    fn close(&mut self, key: usize, d: &mut impl Dispatch) {
        let conn = self.conns.remove(key);
        let _ = self.poller.delete(&conn.fd);
        tracing::debug!(pid = conn.pid, "connection closed");
        d.closed(Peer {
            pid: conn.pid,
            access: conn.access,
        });
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

/// Reads queued requests until the socket is empty or the reply queue is
/// full. Returns false when the connection is gone.
fn read_requests(conn: &mut Conn, d: &mut impl Dispatch) -> bool {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    while conn.out_bytes < OUT_QUEUE_CAP {
        let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_TRUNC;
        match recv(conn.fd.as_raw_fd(), &mut buf, flags) {
            // A zero-length datagram also reads as 0: only a hang-up
            // closes the connection; the empty datagram gets its error.
            Ok(0) if peer_hung_up(&conn.fd) => return false,
            Ok(n) => {
                let peer = Peer {
                    pid: conn.pid,
                    access: conn.access,
                };
                let mut replies = Vec::new();
                // A datagram longer than the buffer arrives cut; its last
                // message then overruns what is there and gets the ordinary
                // length error.
                d.datagram(peer, &buf[..n.min(buf.len())], &mut replies);
                for r in replies {
                    conn.out_bytes += r.len();
                    conn.out.push_back(r);
                }
            }
            Err(nix::errno::Errno::EAGAIN) => return true,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return false,
        }
    }
    true
}

fn peer_hung_up(fd: &OwnedFd) -> bool {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    let r = unsafe { libc::poll(&mut p, 1, 0) };
    r > 0 && p.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0
}

/// Writes queued replies without blocking. Returns false when the peer is gone.
fn flush(conn: &mut Conn) -> bool {
    while let Some(front) = conn.out.front() {
        match send(
            conn.fd.as_raw_fd(),
            front,
            MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
        ) {
            Ok(_) => {
                conn.out_bytes -= front.len();
                conn.out.pop_front();
            }
            Err(nix::errno::Errno::EAGAIN) => return true,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return false,
        }
    }
    true
}

/// The signals that make the daemon exit cleanly.
pub const EXIT_SIGNALS: [Signal; 3] = [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP];

/// Blocks the exit signals in the calling thread (and the threads it
/// starts afterwards), so that they are only seen through the signalfd.
pub fn block_exit_signals() -> nix::Result<()> {
    let mut mask = SigSet::empty();
    for s in EXIT_SIGNALS {
        mask.add(s);
    }
    mask.thread_block()
}

fn connect_seqpacket(path: &Path) -> nix::Result<OwnedFd> {
    let fd = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    nix::sys::socket::connect(fd.as_raw_fd(), &UnixAddr::new(path)?)?;
    Ok(fd)
}
