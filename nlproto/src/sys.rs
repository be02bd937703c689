//! The transport: Unix `SOCK_SEQPACKET` sockets, through `nix`. The
//! client uses it, and the daemon builds its listening socket and serves
//! its connections with the same calls (std has no `SOCK_SEQPACKET`).
//!
//! Every call retries on `EINTR`. The non-blocking forms say "would
//! block" with `None` or `false` rather than an error.

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{
    self, AddressFamily, Backlog, MsgFlags, MultiHeaders, SockFlag, SockType, UnixAddr,
};
use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// Runs `f` again while it fails with `EINTR`.
fn retry<T>(mut f: impl FnMut() -> nix::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Err(Errno::EINTR) => continue,
            r => return r.map_err(io::Error::from),
        }
    }
}

/// A new `SOCK_SEQPACKET` socket, close-on-exec, non-blocking if asked.
pub fn seqpacket_socket(nonblocking: bool) -> io::Result<OwnedFd> {
    let mut flags = SockFlag::SOCK_CLOEXEC;
    if nonblocking {
        flags |= SockFlag::SOCK_NONBLOCK;
    }
    Ok(socket::socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        flags,
        None,
    )?)
}

/// The address of the socket file at `path`; the error says what a usable
/// path is.
pub fn unix_addr(path: &Path) -> io::Result<UnixAddr> {
    let bytes = path.as_os_str().as_bytes();
    // sun_path holds 108 bytes with the terminating NUL.
    if bytes.is_empty() || bytes.len() >= 108 || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} is not a usable Unix socket path (1..=107 bytes, no NUL)",
                path.display()
            ),
        ));
    }
    Ok(UnixAddr::new(path)?)
}

/// Opens a blocking `SOCK_SEQPACKET` connection to the socket at `path`.
pub fn connect(path: &Path) -> io::Result<OwnedFd> {
    let addr = unix_addr(path)?;
    let fd = seqpacket_socket(false)?;
    retry(|| socket::connect(fd.as_raw_fd(), &addr))?;
    Ok(fd)
}

/// Binds `fd` to `path` and listens with room for `backlog` pending
/// connections.
pub fn bind_listen(fd: BorrowedFd<'_>, path: &Path, backlog: i32) -> io::Result<()> {
    socket::bind(fd.as_raw_fd(), &unix_addr(path)?)?;
    let backlog = Backlog::new(backlog).map_err(io::Error::from)?;
    Ok(socket::listen(&fd, backlog)?)
}

/// Accepts a connection (close-on-exec, non-blocking if asked); `None`
/// when a non-blocking listener has none waiting.
pub fn accept(listener: BorrowedFd<'_>, nonblocking: bool) -> io::Result<Option<OwnedFd>> {
    let mut flags = SockFlag::SOCK_CLOEXEC;
    if nonblocking {
        flags |= SockFlag::SOCK_NONBLOCK;
    }
    match retry(|| socket::accept4(listener.as_raw_fd(), flags)) {
        // SAFETY: accept4 returned a new descriptor that nothing else owns.
        Ok(raw) => Ok(Some(unsafe { OwnedFd::from_raw_fd(raw) })),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(e) => Err(e),
    }
}

/// A connected pair of `SOCK_SEQPACKET` sockets.
pub fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(socket::socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?)
}

/// Sends one datagram, waiting for room (never raising `SIGPIPE`).
pub fn send(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<()> {
    let n = retry(|| socket::send(fd.as_raw_fd(), buf, MsgFlags::MSG_NOSIGNAL))?;
    if n != buf.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            format!("sent {n} of {} bytes", buf.len()),
        ));
    }
    Ok(())
}

/// Sends one datagram if there is room now: `false` when there is not
/// (nothing was sent).
pub fn try_send(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<bool> {
    let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL;
    match retry(|| socket::send(fd.as_raw_fd(), buf, flags)) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
        Err(e) => Err(e),
    }
}

/// Receives one datagram into `buf` if one is waiting: its whole length
/// (which exceeds `buf.len()` when it was cut to fit), or `None` when none
/// is waiting. A zero-length datagram and the peer's hang-up both read
/// as 0 ([`hung_up`] tells them apart).
pub fn try_recv(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<Option<usize>> {
    let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_TRUNC;
    match retry(|| socket::recv(fd.as_raw_fd(), buf, flags)) {
        Ok(n) => Ok(Some(n)),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(e) => Err(e),
    }
}

/// Receives, without waiting, as many waiting datagrams as there are
/// buffers, each into its own, with one `recvmmsg`. Returns the whole
/// length of each (more than its buffer's when it was cut, as
/// [`try_recv`]), in order; empty when none is waiting. A zero-length
/// datagram and the peer's hang-up both read as 0 ([`hung_up`] tells them
/// apart); after a hang-up the rest of the lengths are 0 too.
pub fn try_recv_many(fd: BorrowedFd<'_>, bufs: &mut [Vec<u8>]) -> io::Result<Vec<usize>> {
    match retry(|| recv_many_once(fd, bufs)) {
        Ok(lens) => Ok(lens),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

fn recv_many_once(fd: BorrowedFd<'_>, bufs: &mut [Vec<u8>]) -> nix::Result<Vec<usize>> {
    let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_TRUNC;
    let mut iovs: Vec<[IoSliceMut<'_>; 1]> = bufs
        .iter_mut()
        .map(|b| [IoSliceMut::new(b.as_mut_slice())])
        .collect();
    let mut headers = MultiHeaders::<()>::preallocate(iovs.len(), None);
    let msgs = socket::recvmmsg(fd.as_raw_fd(), &mut headers, iovs.iter_mut(), flags, None)?;
    Ok(msgs.map(|m| m.bytes).collect())
}

/// Sends, without waiting, as many of `datagrams` (in order) as there is
/// room for, with one `sendmmsg` (never raising `SIGPIPE`): how many went.
pub fn try_send_many(fd: BorrowedFd<'_>, datagrams: &[&[u8]]) -> io::Result<usize> {
    if datagrams.is_empty() {
        return Ok(0);
    }
    match retry(|| send_many_once(fd, datagrams)) {
        Ok(n) => Ok(n),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
        Err(e) => Err(e),
    }
}

fn send_many_once(fd: BorrowedFd<'_>, datagrams: &[&[u8]]) -> nix::Result<usize> {
    let iovs: Vec<[IoSlice<'_>; 1]> = datagrams.iter().map(|d| [IoSlice::new(d)]).collect();
    let addrs = vec![None; iovs.len()];
    let mut headers = MultiHeaders::<UnixAddr>::preallocate(iovs.len(), None);
    let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL;
    let sent = socket::sendmmsg(fd.as_raw_fd(), &mut headers, &iovs, &addrs, [], flags)?;
    Ok(sent.count())
}

/// Receives one whole datagram, whatever its size, waiting for it. The
/// peer closing the connection is `UnexpectedEof`.
pub fn recv(fd: BorrowedFd<'_>) -> io::Result<Vec<u8>> {
    // With MSG_TRUNC, an AF_UNIX datagram socket reports the record's full
    // length even into an empty buffer.
    let peek = MsgFlags::MSG_PEEK | MsgFlags::MSG_TRUNC;
    let size = retry(|| socket::recv(fd.as_raw_fd(), &mut [], peek))?;
    if size == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the daemon closed the connection",
        ));
    }
    let mut buf = vec![0u8; size];
    let n = retry(|| socket::recv(fd.as_raw_fd(), &mut buf, MsgFlags::MSG_TRUNC))?;
    buf.truncate(n.min(size));
    Ok(buf)
}

/// Waits until `fd` is readable; `false` when `timeout` passes first.
pub fn wait_readable(fd: BorrowedFd<'_>, timeout: Duration) -> io::Result<bool> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ms = left.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
        let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
        let ms = PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX);
        match retry(|| nix::poll::poll(&mut fds, ms))? {
            0 if left.is_zero() => return Ok(false),
            0 => continue,
            _ => return Ok(true),
        }
    }
}

/// Whether the peer of a connected socket has hung up (or the socket
/// failed), without waiting.
pub fn hung_up(fd: BorrowedFd<'_>) -> bool {
    // nix does not name POLLRDHUP (Linux-only: the peer shut down
    // writing). Asked for it alone, any event reported (it, POLLHUP or
    // POLLERR, which poll always reports) means the peer is gone.
    let rdhup = PollFlags::from_bits_retain(libc::POLLRDHUP);
    let mut fds = [PollFd::new(fd, rdhup)];
    matches!(retry(|| nix::poll::poll(&mut fds, PollTimeout::ZERO)), Ok(n) if n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn a_listener_accepts_and_datagrams_keep_their_bounds() {
        let dir = std::env::temp_dir().join(format!("nlproto-sys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        let _ = std::fs::remove_file(&path);
        let listener = seqpacket_socket(true).unwrap();
        bind_listen(listener.as_fd(), &path, 4).unwrap();
        assert!(accept(listener.as_fd(), true).unwrap().is_none());
        let client = connect(&path).unwrap();
        let server = accept(listener.as_fd(), true).unwrap().expect("waiting");
        let mut buf = [0u8; 4];
        assert_eq!(try_recv(server.as_fd(), &mut buf).unwrap(), None);
        send(client.as_fd(), b"hello").unwrap();
        send(client.as_fd(), b"").unwrap();
        assert!(wait_readable(server.as_fd(), Duration::from_secs(5)).unwrap());
        // Cut to fit, with the whole length reported.
        assert_eq!(try_recv(server.as_fd(), &mut buf).unwrap(), Some(5));
        assert_eq!(&buf, b"hell");
        assert_eq!(try_recv(server.as_fd(), &mut buf).unwrap(), Some(0));
        assert!(!hung_up(server.as_fd()), "an empty datagram is no hang-up");
        assert!(try_send(server.as_fd(), b"reply").unwrap());
        assert_eq!(recv(client.as_fd()).unwrap(), b"reply");
        assert!(!wait_readable(client.as_fd(), Duration::from_millis(20)).unwrap());
        drop(client);
        assert!(hung_up(server.as_fd()));
        assert_eq!(try_recv(server.as_fd(), &mut buf).unwrap(), Some(0));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unusable_paths_are_named() {
        for p in ["", &"x".repeat(108), "a\0b"] {
            let e = connect(Path::new(p)).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
            assert!(
                e.to_string().contains("not a usable Unix socket path"),
                "{e}"
            );
        }
        let e = connect(Path::new("/nonexistent/x.sock")).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
    }

    #[test]
    fn a_full_peer_makes_try_send_say_so() {
        let (a, _b) = seqpacket_pair().unwrap();
        let chunk = vec![0u8; 16 * 1024];
        let mut sent = 0;
        while try_send(a.as_fd(), &chunk).unwrap() {
            sent += 1;
            assert!(sent < 100_000, "the socket never filled");
        }
        assert!(sent > 0);
    }

    #[test]
    fn batches_keep_datagram_bounds_and_order() {
        let (a, b) = seqpacket_pair().unwrap();
        let mut bufs = vec![vec![0u8; 8]; 4];
        assert!(try_recv_many(b.as_fd(), &mut bufs).unwrap().is_empty());
        let sent: [&[u8]; 6] = [b"one", b"", b"three", b"a datagram cut short", b"5", b"6"];
        assert_eq!(try_send_many(a.as_fd(), &sent).unwrap(), 6);
        // Four buffers: the first four datagrams, the fourth cut to its
        // buffer and reported whole.
        assert_eq!(try_recv_many(b.as_fd(), &mut bufs).unwrap(), [3, 0, 5, 20]);
        assert_eq!(&bufs[0][..3], b"one");
        assert_eq!(&bufs[2][..5], b"three");
        assert_eq!(&bufs[3][..], b"a datagr");
        assert_eq!(try_recv_many(b.as_fd(), &mut bufs).unwrap(), [1, 1]);
        assert_eq!((bufs[0][0], bufs[1][0]), (b'5', b'6'));
        assert!(try_recv_many(b.as_fd(), &mut bufs).unwrap().is_empty());
        assert_eq!(try_send_many(a.as_fd(), &[]).unwrap(), 0);
        // A hang-up reads as 0, told apart from an empty datagram by hung_up.
        drop(a);
        let lens = try_recv_many(b.as_fd(), &mut bufs).unwrap();
        assert_eq!(lens.first(), Some(&0));
        assert!(hung_up(b.as_fd()));
    }

    #[test]
    fn a_full_peer_takes_part_of_a_batch() {
        let (a, _b) = seqpacket_pair().unwrap();
        let chunk = vec![0u8; 16 * 1024];
        let batch: Vec<&[u8]> = (0..64).map(|_| chunk.as_slice()).collect();
        let first = try_send_many(a.as_fd(), &batch).unwrap();
        assert!(
            0 < first && first < batch.len(),
            "{first} of {}",
            batch.len()
        );
        assert_eq!(try_send_many(a.as_fd(), &batch).unwrap(), 0);
    }
}
